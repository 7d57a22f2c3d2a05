"""SAFE products (folder, zip, MTD XML; L1C and L2A; before and after baseline 04.00) and band
folders: detection, radiometric offsets and the DN convention of the output."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F  # noqa: N812
from osgeo import gdal

from dsen2.degradation import block_mean
from dsen2.engine import RunOptions, superresolve
from dsen2.errors import ProductFormatError
from dsen2.product import open_product
from dsen2.radiometry import Radiometry, lifted_to_floor
from tests.band_folders import band_rasters, nested_crops
from tests.conftest import read_raster
from tests.safe_fixture import SafeSpec, original_dn, write_safe

SPECS = [
    SafeSpec("L1C", "02.01"),
    SafeSpec("L1C", "04.00"),
    SafeSpec("L2A", "02.08"),
    SafeSpec("L2A", "05.09"),
]


@pytest.fixture(scope="module")
def safes(tmp_path_factory: pytest.TempPathFactory) -> dict[tuple[str, str], Path]:
    folder = tmp_path_factory.mktemp("safe")
    return {(s.level, s.baseline): write_safe(folder, s) for s in SPECS}


@pytest.mark.parametrize("spec", SPECS, ids=lambda s: f"{s.level}-{s.baseline}")
def test_metadata_offsets_and_quantification(safes, spec: SafeSpec) -> None:
    product = open_product([safes[(spec.level, spec.baseline)]])
    assert product.kind == "SAFE" and product.level == spec.level
    assert product.processing_baseline == spec.baseline
    assert product.spacecraft == "Sentinel-2A"
    assert product.product_id == spec.name
    assert product.radiometry.quantification == 10000
    assert product.radiometry.offset("B5") == spec.offset_dn
    assert product.radiometry.offset("B12") == spec.offset_dn
    expected = 13 if spec.level == "L1C" else 12
    assert len(product.band_files) == expected
    if spec.level == "L2A":  # native-resolution files only: B5 from R20m, not the R60m copy
        assert "R20m" in product.band_files["B5"] and "R60m" in product.band_files["B1"]


def _bilinear(data: np.ndarray, factor: int) -> np.ndarray:
    tensor = torch.from_numpy(data.astype(np.float32))[None, None]
    return F.interpolate(tensor, scale_factor=float(factor), mode="bilinear", align_corners=False)[
        0, 0
    ].numpy()


@pytest.mark.parametrize("spec", SPECS, ids=lambda s: f"{s.level}-{s.baseline}")
def test_reflectance_is_the_same_for_every_baseline(safes, spec: SafeSpec, tmp_path: Path) -> None:
    """The stored DN differ by the offset between baselines; reflectance out must not.

    The shipped baseline model is bilinear upsampling in reflectance × 10000, so B5's expected
    reflectance is bilinear(original DN) / 10000 whatever the product's offset convention.
    """
    product = open_product([safes[(spec.level, spec.baseline)]])
    output = tmp_path / "out.tif"
    superresolve(product, output, RunOptions(model="baseline", reflectance=True, bands="20m"))
    b5 = read_raster(output)[0]
    expected = _bilinear(original_dn("B5", spec), 2) / 10000
    inner = (slice(6, -6), slice(6, -6))  # away from the mirrored image edge
    assert np.abs(b5[inner] - expected[inner]).max() < 1e-5
    # A missed -1000 offset would shift every reflectance by 0.1.


@pytest.mark.parametrize("spec", SPECS, ids=lambda s: f"{s.level}-{s.baseline}")
def test_dn_output_keeps_the_input_convention(safes, spec: SafeSpec, tmp_path: Path) -> None:
    product = open_product([safes[(spec.level, spec.baseline)]])
    output = tmp_path / "out.tif"
    superresolve(product, output, RunOptions(model="baseline"))
    cube = read_raster(output)
    stored_b2 = original_dn("B2", spec).astype(np.int32) - spec.offset_dn
    np.testing.assert_array_equal(cube[1], stored_b2)  # 10 m bands copied unchanged
    expected_b5 = _bilinear(original_dn("B5", spec), 2) - spec.offset_dn
    assert np.abs(cube[4][6:-6, 6:-6] - expected_b5[6:-6, 6:-6]).max() <= 0.5 + 1e-3
    dataset = gdal.Open(str(output))
    band = dataset.GetRasterBand(5)
    assert band.GetDescription() == "B5 (705 nm)"
    assert band.GetNoDataValue() == 0
    assert band.GetScale() == pytest.approx(1e-4)
    assert band.GetOffset() == pytest.approx(spec.offset_dn * 1e-4)
    tags = dataset.GetMetadata()
    assert tags["PROCESSING_BASELINE"] == spec.baseline
    assert tags["PRODUCT_LEVEL"] == spec.level
    assert tags["INPUT_PRODUCT"] == spec.name
    assert f'"B5": {float(spec.offset_dn)}' in tags["RADIOMETRIC_OFFSETS_DN"]
    assert "sha256" in tags["DSEN2_MODELS"]
    dataset = None


def test_zip_and_mtd_inputs_equal_the_folder(tmp_path: Path) -> None:
    spec = SafeSpec("L2A", "04.00", size_px=60)
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    folder = write_safe(tmp_path / "a", spec)
    archive = write_safe(tmp_path / "b", spec, zipped=True)
    results = []
    for source in (folder, archive, folder / "MTD_MSIL2A.xml"):
        product = open_product([source])
        assert product.processing_baseline == "04.00"
        if source == archive:
            assert all(p.startswith("/vsizip/") for p in product.band_files.values())
        output = tmp_path / f"out{len(results)}.tif"
        superresolve(product, output, RunOptions())
        results.append(read_raster(output))
    np.testing.assert_array_equal(results[0], results[1])
    np.testing.assert_array_equal(results[0], results[2])
    read = product.source_files()  # each band's file, at its native resolution
    assert len(read) == len(product.band_files) and read <= set(folder.resolve().rglob("*.jp2"))
    assert open_product([archive]).source_files() == {archive.resolve()}


def test_metadata_without_its_band_images_is_refused_clearly(tmp_path: Path) -> None:
    """An MTD file copied out of its SAFE, or a SAFE whose GRANULE folder is gone."""
    safe = write_safe(tmp_path, SafeSpec("L2A", "04.00", size_px=60))
    lone = tmp_path / "lone"
    lone.mkdir()
    (lone / "MTD_MSIL2A.xml").write_bytes((safe / "MTD_MSIL2A.xml").read_bytes())
    for source in (lone / "MTD_MSIL2A.xml", lone):
        with pytest.raises(ProductFormatError, match="no band images"):
            open_product([source])


def test_a_band_folder_is_named_as_given_even_through_a_link(tmp_path: Path) -> None:
    folder = band_rasters(tmp_path / "downloads-1234", nested_crops(60))
    alias = tmp_path / "T18SVG_2016-01-12"
    alias.symlink_to(folder, target_is_directory=True)
    assert open_product([alias]).product_id == "T18SVG_2016-01-12"
    assert open_product(str(alias)).product_id == "T18SVG_2016-01-12"  # one path, given bare
    assert open_product([alias / ".." / "downloads-1234"]).product_id == "downloads-1234"
    band = next(alias.glob("*B02*"))
    assert open_product([band, *alias.glob("*B0[3-4]*")]).product_id == "T18SVG_2016-01-12"


@pytest.mark.parametrize("seed", range(4))
def test_values_below_the_dn_floor_are_lifted_keeping_each_block_mean(seed: int) -> None:
    """Undershoots (as a 6× net makes next to strong 10 m detail) are raised to the lowest
    value the product's DN hold, taking the difference from the same 60 m block's brighter
    pixels: every block keeps its mean, nothing stays below the floor, untouched blocks are
    bit for bit the input, and a block whose mean is itself below the floor is clipped flat."""
    radiometry = Radiometry(offsets_dn={"B9": -1000.0})
    floor, ceiling = radiometry.network_range("B9")
    assert (floor, ceiling) == (-999.0, 64535.0)  # DN 1 and 65535 with the 04.00 offset
    rng = np.random.default_rng(seed)
    values = rng.normal(-900, 60, (24, 36)).astype(np.float32)
    values[:6, :6] = -1200  # a block wholly below the floor
    lifted = lifted_to_floor(values, floor, 6)
    assert lifted.min() >= floor - 1e-3
    means, before = block_mean(lifted, 6), block_mean(values, 6)
    below = before < floor
    assert below[0, 0] and np.all(lifted[:6, :6] == np.float32(floor))
    np.testing.assert_allclose(means[~below], before[~below], atol=1e-3)
    untouched = np.repeat(np.repeat(block_mean(values < floor, 6) == 0, 6, 0), 6, 1)
    assert untouched.any() and np.array_equal(lifted[untouched], values[untouched])
    assert (~untouched).sum() > 36  # blocks beside the flat one were lifted


def test_reflectance_is_clipped_to_what_the_dn_can_hold() -> None:
    """Baseline 04.00 (offset −1000): DN 1…65535 hold reflectance −0.0999…6.4535."""
    radiometry = Radiometry(offsets_dn={"B5": -1000.0})
    values = np.array([[[-5000.0, 500.0, 70000.0, 800.0]]], np.float32)  # reflectance × 10000
    valid = np.array([[True, True, True, False]])
    out = radiometry.network_to_reflectance(values, ("B5",), valid)
    np.testing.assert_allclose(out[0, 0, :3], [-0.0999, 0.05, 6.4535], rtol=1e-6)
    assert np.isnan(out[0, 0, 3])
    dn = radiometry.network_to_dn(values, ("B5",), valid)
    np.testing.assert_array_equal(dn[0, 0], [1, 1500, 65535, 0])


def test_lifting_leaves_blocks_with_no_data_to_a_plain_clip() -> None:
    """A block holding a no-data pixel keeps no mean worth keeping (its prediction saw filled
    data): its valid pixels are clipped, not given another pixel's surplus."""
    values = np.full((6, 12), 50.0, np.float32)
    values[0, 0] = values[0, 6] = -40.0  # one undershoot in each 6×6 block
    valid = np.ones((6, 12), bool)
    valid[5, 11] = False  # the right block holds a no-data pixel
    lifted = lifted_to_floor(values, 1.0, 6, valid)
    assert lifted[0, 6] == 1.0 and np.all(lifted[:, 7:][valid[:, 7:]] == 50.0)  # clipped
    assert lifted[0, 0] == 1.0 and block_mean(lifted[:, :6], 6)[0, 0] == pytest.approx(
        block_mean(values[:, :6], 6)[0, 0]
    )  # lifted, mean kept
    nothing = np.zeros((6, 12), np.float32)
    assert lifted_to_floor(nothing, 1.0, 6, np.zeros((6, 12), bool)) is nothing
