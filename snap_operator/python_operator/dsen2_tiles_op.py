"""DSen2Tiles: dsen2 as an in-process SNAP GPF operator (esa_snappy's PyOperator), tile by tile.

SNAP hands over a Sentinel-2 product as its S2 reader opens it: bands B1…B12 and B8A at their
native sizes (10980, 5490 and 1830 px for a full tile), no resampling. The operator makes a
single-size 10 m target product on the bands' nested grid (for a full tile: B2's size and
geocoding), with the source's metadata and sensing times, and for every target rectangle reads
each source band's window (÷2 on 20 m bands, ÷6 on 60 m bands) plus dsen2's halo, runs dsen2's
own tile step (the code ``dsen2 run`` runs, nothing re-implemented here) and sets the samples.

Pixels outside the bands' nested area are mirrored exactly as ``dsen2 run`` mirrors them: when a
band's nested window is its whole raster (every full tile), SNAP's own
``BorderExtender.BORDER_REFLECT`` does it (JAI's reflection repeats the edge pixel, as dsen2's
symmetric padding does); otherwise the window is clipped to the nested area and padded with
the same numpy padding dsen2's tile reader uses.

SNAP finds the operator through ``META-INF/services/<PyOperatorSpi>`` and
``dsen2_tiles_op-info.xml`` next to this file (``dsen2 snap install`` writes both). The module
imports without SNAP: the Java bridge (``esa_snappy`` in SNAP 10+, ``snappy`` in SNAP 9) is
reached only through :func:`bridge`, which tests replace with doubles.
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt

from dsen2 import engine
from dsen2.bands import BANDS_10M, BY_NAME, OUTPUT_ALL
from dsen2.catalogue import ResolvedModel, resolve_models
from dsen2.detail import DetailWeights
from dsen2.engine import RunOptions, image_window
from dsen2.errors import MissingBandError, ProductFormatError
from dsen2.grid import Grid, Nesting, nest
from dsen2.inference import Device, Precision, Session, create_session
from dsen2.product import radiometry_from_scaling
from dsen2.radiometry import Radiometry
from dsen2.tiling import TilePlan, plan_tiles
from dsen2.window import Window

# The Java bridge module, newest first: esa_snappy (SNAP 10+), snappy (SNAP 9).
BRIDGE_MODULES = ("esa_snappy", "snappy")
DEFAULT_TILE_SIZE_PX = engine.DEFAULT_TILE_SIZE_PX
_ALIGN_PX = 6  # 60 m pixels: tile corners and sizes are multiples of this on the 10 m grid

_bridge: Any = None


def bridge() -> Any:
    """The SNAP Java bridge module, imported on first use (never at import time).

    Raises:
        ImportError: neither esa_snappy nor snappy is importable (this Python is not configured
            for SNAP: run SNAP's ``snappy-conf`` with it).
    """
    global _bridge
    if _bridge is None:
        errors = []
        for name in BRIDGE_MODULES:
            try:
                _bridge = importlib.import_module(name)
                break
            except ImportError as error:
                errors.append(f"{name}: {error}")
        else:
            raise ImportError(
                "the DSen2Tiles operator runs inside SNAP, whose Python bridge is missing here "
                f"({'; '.join(errors)}); configure SNAP for this Python with "
                "<SNAP>/bin/snappy-conf"
            )
    return _bridge


@dataclass(frozen=True)
class OperatorOptions:
    """The operator's parameters, validated.

    Attributes:
        model: catalogue family, folder of .onnx exports or comma-separated .onnx paths.
        bands: ``"all"`` (the 10 m bands too) or ``"20m"`` (super-resolved bands only).
        device: where the networks run.
        include_60m: also super-resolve B1 and B9 (runs the 6× network).
        tile_size_px: SNAP's preferred tile size (rounded down to a multiple of 6).
        precision: ``fp32``, or ``bf16`` (CPU with native bf16 and OpenVINO: dsen2.bf16).
    """

    model: str = "dsen2"
    bands: str = "all"
    device: Device = Device.AUTO
    include_60m: bool = True
    tile_size_px: int = DEFAULT_TILE_SIZE_PX
    precision: Precision = Precision.FP32

    def __post_init__(self) -> None:
        if self.bands not in ("all", "20m"):
            raise ValueError(f"bands must be 'all' or '20m', got {self.bands!r}")
        if self.tile_size_px < _ALIGN_PX:
            raise ValueError(f"tileSize must be at least {_ALIGN_PX} px, got {self.tile_size_px}")

    @property
    def core_bands(self) -> str:
        """The dsen2 band set computed: ``all`` runs both networks, ``20m`` only the 2× one."""
        return "all" if self.include_60m else "20m"

    @property
    def run_options(self) -> RunOptions:
        """The core's options for the same run (what ``dsen2 run`` would be given)."""
        return RunOptions(
            model=self.model,
            bands=self.core_bands,
            device=self.device,
            tile_size_px=self.tile_size_px,
            precision=self.precision,
        )

    @property
    def output_bands(self) -> tuple[str, ...]:
        """Target bands in dsen2's output order."""
        wanted = {10: self.bands == "all", 20: True, 60: self.include_60m}
        return tuple(band for band in OUTPUT_ALL if wanted[BY_NAME[band].gsd_m])


def grid_of(band: Any) -> Grid:
    """A SNAP band's pixel grid from its image-to-model (map) transform."""
    transform = band.getImageToModelTransform()
    geotransform = (
        transform.getTranslateX(),
        transform.getScaleX(),
        transform.getShearX(),
        transform.getTranslateY(),
        transform.getShearY(),
        transform.getScaleY(),
    )
    return Grid.from_geotransform(
        geotransform, band.getRasterWidth(), band.getRasterHeight(), band.getName()
    )


class DSen2TilesOp:
    """The operator class SNAP's PyOperator drives: initialize, computeTileStack, dispose."""

    def __init__(self) -> None:
        self._options = OperatorOptions()
        self._run_options = self._options.run_options
        self._sources: dict[str, Any] = {}
        self._targets: dict[str, Any] = {}
        self._extender: Any = None
        self._whole_raster: dict[str, bool] = {}
        self._nesting: Nesting | None = None
        self._plan: TilePlan | None = None
        self._groups: dict[int, tuple[str, ...]] = {}
        self._models: dict[int, ResolvedModel] = {}
        self._sessions: dict[int, Session] = {}
        self._radiometry = Radiometry()
        self._detail: dict[int, DetailWeights] = {}

    def initialize(self, context: Any) -> None:
        """Check the source, load the networks and define the 10 m target product."""
        snap = bridge()
        source = context.getSourceProduct("sourceProduct")
        self._options = OperatorOptions(
            model=str(context.getParameter("model")),
            bands=str(context.getParameter("bands")),
            device=Device(str(context.getParameter("device"))),
            include_60m=bool(context.getParameter("include60m")),
            tile_size_px=int(context.getParameter("tileSize")),
            precision=Precision(str(context.getParameter("precision"))),
        )
        options = self._run_options = self._options.run_options
        self._models = resolve_models(options.model, options.scales)
        self._groups = engine.input_groups(self._models)
        needed = [band for factor in sorted(self._groups) for band in self._groups[factor]]
        self._sources = {name: _source_band(source, name) for name in needed}
        grids = {name: grid_of(band) for name, band in self._sources.items()}
        self._nesting = nest(
            grids["B2"], {name: (BY_NAME[name].gsd_m // 10, g) for name, g in grids.items()}
        )
        self._whole_raster = {
            name: self._nesting.band_windows[name]
            == Window(0, 0, grids[name].width_px, grids[name].height_px)
            for name in needed
        }
        self._radiometry = radiometry_from_scaling(
            {
                name: (band.getScalingFactor(), band.getScalingOffset())
                for name, band in self._sources.items()
            },
            f"SNAP product {source.getName()!r}",
        )
        receptive_field_px = max(m.metadata.receptive_field_px for m in self._models.values())
        fill_reach_px = max(f * engine.fill_passes(receptive_field_px, f) for f in self._groups)
        self._plan = plan_tiles(
            image_window(self._nesting, None),
            options.tile_size_px,
            self._nesting.align_px,
            receptive_field_px,
            fill_reach_px,
        )
        self._sessions = {
            scale: create_session(model.path, options.device, precision=options.precision)
            for scale, model in self._models.items()
        }
        self._extender = snap.jpy.get_type("javax.media.jai.BorderExtender").createInstance(
            snap.jpy.get_type("javax.media.jai.BorderExtender").BORDER_REFLECT
        )

        def read(bands: tuple[str, ...], window: Window) -> npt.NDArray[np.uint16]:
            return np.stack([self._read(context, band, window) for band in bands])

        self._detail = engine.scene_detail_weights(  # the scene's, once, as dsen2 run fits them
            read, image_window(self._nesting, None), self._groups, self._radiometry, self._models
        )
        warnings = (
            engine.resolution_warnings(grids["B2"])
            + engine.tile_size_warnings(options.tile_size_px, self._plan)
            + engine.detail_warnings(self._detail)
        )
        for warning in warnings:
            snap.jpy.get_type("org.esa.snap.core.util.SystemUtils").LOG.warning(warning)
        context.setTargetProduct(self._target_product(snap, source, grids["B2"]))

    def computeTileStack(  # noqa: N802 (SNAP's PyOperator calls this name)
        self, context: Any, target_tiles: Any, target_rectangle: Any
    ) -> None:
        """Compute every target band over ``target_rectangle`` (10 m pixels of the target)."""
        assert self._plan is not None and self._nesting is not None  # set by initialize
        wanted = Window(
            target_rectangle.x, target_rectangle.y, target_rectangle.width, target_rectangle.height
        )
        nested = self._nesting.window_10m
        # dsen2 works on windows aligned to the 60 m lattice: widen, compute, then crop.
        aligned = image_window(self._nesting, wanted.shifted(nested.col_off, nested.row_off))
        padded = aligned.grown(self._plan.read_halo_px)
        tile = engine.Tile(
            aligned,
            {
                factor: np.stack([self._read(context, band, padded) for band in bands])
                for factor, bands in self._groups.items()
            },
        )
        options = self._run_options
        stack = engine.process_tile(
            tile,
            self._plan,
            self._groups,
            self._sessions,
            self._models,
            self._radiometry,
            options,
            {scale: fit.values for scale, fit in self._detail.items()},
        )
        computed = dict(zip(options.output_bands, stack, strict=True))
        raw_10m = engine.crop_margin(tile.raw[1], self._plan.read_halo_px)
        rows = slice(wanted.row_off - aligned.row_off, wanted.row_end - aligned.row_off)
        cols = slice(wanted.col_off - aligned.col_off, wanted.col_end - aligned.col_off)
        snap = bridge()
        for name in self._options.output_bands:
            # 10 m bands are copied unchanged, as dsen2 run copies them.
            values = computed[name] if name in computed else raw_10m[BANDS_10M.index(name)]
            dn = np.ascontiguousarray(values[rows, cols], dtype=np.uint16)
            target = target_tiles.get(self._targets[name])
            samples = snap.jpy.array("short", dn.view(np.int16).ravel())
            target.setRawSamples(
                snap.ProductData.createInstance(snap.ProductData.TYPE_UINT16, samples)
            )

    def dispose(self, context: Any) -> None:
        """Release the inference sessions."""
        self._sessions = {}

    def _read(self, context: Any, name: str, padded: Window) -> npt.NDArray[np.uint16]:
        """Raw DN of band ``name`` over ``padded`` (10 m pixels of the nested window),
        mirrored beyond the nested area exactly as dsen2's tile reader mirrors it."""
        assert self._nesting is not None
        factor = BY_NAME[name].gsd_m // 10
        own = self._nesting.band_windows[name]
        band = self._sources[name]
        snap = bridge()
        if self._whole_raster[name]:
            window = padded.divided(factor).shifted(own.col_off, own.row_off)
            rect = snap.Rectangle(window.col_off, window.row_off, window.width, window.height)
            return _tile_dn(context.getSourceTile(band, rect, self._extender), window)
        image = Window(0, 0, self._nesting.window_10m.width, self._nesting.window_10m.height)
        inside = padded.intersection(image)
        window = inside.divided(factor).shifted(own.col_off, own.row_off)
        rect = snap.Rectangle(window.col_off, window.row_off, window.width, window.height)
        data = _tile_dn(context.getSourceTile(band, rect), window)
        pads = (
            (
                (inside.row_off - padded.row_off) // factor,
                (padded.row_end - inside.row_end) // factor,
            ),
            (
                (inside.col_off - padded.col_off) // factor,
                (padded.col_end - inside.col_end) // factor,
            ),
        )
        return np.pad(data, pads, mode="symmetric") if any(sum(p) for p in pads) else data

    def _target_product(self, snap: Any, source: Any, b2_grid: Grid) -> Any:
        assert self._nesting is not None
        nested = self._nesting.window_10m
        grid = b2_grid.sub_grid(nested)
        target = snap.Product(
            f"{source.getName()}_DSen2", source.getProductType(), nested.width, nested.height
        )
        target.setDescription("Sentinel-2 bands super-resolved to 10 m with dsen2 (DSen2Tiles)")
        snap.ProductUtils.copyMetadata(source, target)
        provenance = snap.jpy.get_type("org.esa.snap.core.datamodel.MetadataElement")("DSen2")
        tags = engine.provenance_tags(
            self._models, self._run_options.precision, self._groups, self._detail
        )
        for name, value in tags.items():  # the GeoTIFF tags of dsen2 run, same names
            provenance.setAttributeString(name, value)
        root = target.getMetadataRoot()
        earlier = root.getElement("DSen2")  # a source that is itself a DSen2Tiles output
        if earlier is not None:
            root.removeElement(earlier)
        root.addElement(provenance)
        target.setStartTime(source.getStartTime())
        target.setEndTime(source.getEndTime())
        crs = self._sources["B2"].getGeoCoding().getMapCRS()
        target.setSceneGeoCoding(
            snap.CrsGeoCoding(
                crs,
                nested.width,
                nested.height,
                grid.x_origin_m,
                grid.y_origin_m,
                grid.pixel_size_m,
                grid.pixel_size_m,
                0.0,
                0.0,
            )
        )
        tile_px = self._options.tile_size_px // _ALIGN_PX * _ALIGN_PX
        target.setPreferredTileSize(tile_px, tile_px)
        quantification = self._radiometry.quantification
        self._targets = {}
        for name in self._options.output_bands:
            band = target.addBand(name, snap.ProductData.TYPE_UINT16)
            source_band = source.getBand(name)
            snap.ProductUtils.copySpectralBandProperties(source_band, band)
            band.setDescription(BY_NAME[name].description)
            band.setScalingFactor(1.0 / quantification)
            band.setScalingOffset(self._radiometry.offset(name) / quantification)
            band.setNoDataValue(0.0)
            band.setNoDataValueUsed(True)
            self._targets[name] = band
        return target


def _source_band(source: Any, name: str) -> Any:
    band = source.getBand(name)
    if band is None:
        raise MissingBandError(
            f"the source product {source.getName()!r} has no band {name}; DSen2Tiles needs a "
            "Sentinel-2 product as SNAP's S2 reader opens it (bands B1…B12, B8A at native size); "
            "set include60m=false to do without B1 and B9"
        )
    if band.getDataType() != bridge().ProductData.TYPE_UINT16:
        raise ProductFormatError(
            f"band {name} of {source.getName()!r} is not uint16 DN; DSen2Tiles reads the "
            "original Sentinel-2 bands (not resampled or converted copies)"
        )
    return band


def _tile_dn(tile: Any, window: Window) -> npt.NDArray[np.uint16]:
    """A source tile's raw (unscaled) uint16 samples as [rows, cols]."""
    elems = tile.getRawSamples().getElems()  # a Java short[]: uint16 bits in signed shorts
    return np.frombuffer(elems, dtype=np.uint16).reshape(window.height, window.width).copy()
