"""The reduced-scale protocol end to end on real scenes."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
from osgeo import gdal

from dsen2.catalogue import resolve_models, sha256_of
from dsen2.degradation import wald_pair
from dsen2.evaluation import evaluate, read_scene
from dsen2.product import open_product
from tests.band_folders import band_rasters, nested_crops
from tests.safe_fixture import SafeSpec, write_safe
from tests.test_cli import dsen2


def test_wald_pair_shapes_and_target() -> None:
    arrays = {
        1: np.ones((4, 144, 144), np.float32),
        2: np.ones((6, 72, 72), np.float32),
        6: np.ones((2, 24, 24), np.float32),
    }
    inputs, target = wald_pair(arrays, 6)
    assert inputs[1].shape == (4, 24, 24) and inputs[2].shape == (6, 12, 12)
    assert inputs[6].shape == (2, 4, 4) and target.shape == (2, 24, 24)
    inputs, target = wald_pair(arrays, 2)
    assert inputs[1].shape == (4, 72, 72) and inputs[2].shape == (6, 36, 36)
    assert 6 not in inputs and target.shape == (6, 72, 72)


def test_baseline_model_scores_exactly_like_bilinear(tmp_path: Path) -> None:
    """The shipped untrained baseline is bilinear upsampling inside the graph: the protocol must
    give it bilinear's scores, and bicubic must beat both on real data (as in the paper)."""
    (tmp_path / "safe").mkdir()
    product = open_product([write_safe(tmp_path / "safe", SafeSpec("L1C", "04.00", size_px=288))])
    arrays = read_scene(product, {2, 6})
    models = list(resolve_models("baseline", {2, 6}).values())
    for scale in (2, 6):
        report = evaluate(product.product_id, arrays, scale, models)
        by_method = {s.method: s for s in report.scores}
        baseline = by_method[f"dsen2-{'t2x' if scale == 2 else 's6x'}-baseline"]
        np.testing.assert_allclose(baseline.rmse, by_method["bilinear"].rmse, rtol=1e-4)
        assert abs(baseline.sam_deg - by_method["bilinear"].sam_deg) < 1e-4
        assert by_method["bicubic"].mean_rmse < by_method["bilinear"].mean_rmse
    coarser = evaluate(product.product_id, arrays, 2, models, factor=4)  # 80 m → 40 m
    assert coarser.factor == 4 and coarser.size_px == (72, 72)
    assert {s.method for s in coarser.scores} == {"bicubic", "bilinear", "dsen2-t2x-baseline"}


def test_evaluate_command_writes_tables_and_json(
    bigearthnet_patches: list[Path], tiny_models: Path, tmp_path: Path
) -> None:
    report = tmp_path / "scores.json"
    table = tmp_path / "scores.md"
    figures = tmp_path / "figures"
    result = dsen2(
        "evaluate",
        bigearthnet_patches[0],
        bigearthnet_patches[1],
        "--model",
        tiny_models,
        "--json",
        report,
        "--markdown",
        table,
        "--figures",
        figures,
    )
    assert result.returncode == 0, result.stderr
    assert "| RMSE (DN) | B5 | B6 | B7 | B8A | B11 | B12 | mean |" in result.stdout
    document = json.loads(report.read_text())
    assert document["dsen2_version"] and len(document["scenes"]) == 2
    (model,) = document["models"]  # the 2× model of the folder: the numbers' provenance
    assert model["name"] == "tiny-2x-random" and model["sha256"] == sha256_of(Path(model["file"]))
    methods = [s["method"] for s in document["scenes"][0]["scores"]]
    assert methods == ["bicubic", "bilinear", "tiny-2x-random"]
    assert all(len(s["rmse"]) == 6 for s in document["scenes"][0]["scores"])
    text = table.read_text()
    assert text.count("### ") == 3 and "### Over 2 scenes — 2× network, degraded ×2" in text
    summary = text.split("### Over 2 scenes")[1].splitlines()
    bicubic = next(line for line in summary if line.startswith("| bicubic |")).split(" | ")
    assert bicubic[2] == "1.000" and bicubic[-1] == "0/2 |"  # the reference never beats itself
    scenes = [next(s for s in d["scores"] if s["method"] == "bilinear") for d in document["scenes"]]
    expected = sum(s["mean_rmse"] for s in scenes) / 2
    bilinear = next(line for line in summary if line.startswith("| bilinear |")).split(" | ")
    assert bilinear[1] == f"{expected:.1f}"
    bicubic_mean = sum(next(s for s in d["scores"] if s["method"] == "bicubic")["mean_rmse"]
                       for d in document["scenes"]) / 2  # fmt: skip
    assert bilinear[3] == f"{expected / bicubic_mean:.3f}"  # the ratio of the mean RMSEs
    (group,) = document["summaries"]  # the JSON holds the table's numbers unrounded
    summary_row = next(m for m in group["methods"] if m["method"] == "bilinear")
    assert summary_row["mean_rmse"] == pytest.approx(expected)
    assert summary_row["ratio_of_means"] == pytest.approx(expected / bicubic_mean)
    assert f"{summary_row['ratio_mean_of_scenes']:.3f}" == bilinear[2]
    pngs = sorted(figures.glob("*.png"))
    assert len(pngs) == 6  # metrics, residuals and comparison for each scene
    for png in pngs:
        assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and png.stat().st_size > 5000


def test_exact_bands_score_a_finite_sre_and_strict_json(
    bigearthnet_patches: list[Path], tiny_models: Path, tmp_path: Path
) -> None:
    """Bicubic reconstructs a constant band exactly (clipped calm water can be one): SRE then
    saturates at the rounding noise of integer DN instead of going infinite, so the means stay
    usable and the JSON stays valid for strict parsers (no ``Infinity``)."""
    patch = tmp_path / bigearthnet_patches[0].name
    shutil.copytree(bigearthnet_patches[0], patch)
    band = next(patch.glob("*_B12.tif"))
    raster = gdal.Open(str(band), gdal.GA_Update)
    raster.GetRasterBand(1).WriteArray(np.full((raster.RasterYSize, raster.RasterXSize), 123))
    raster = None
    report = tmp_path / "scores.json"
    result = dsen2(
        "evaluate", patch, bigearthnet_patches[1], "--model", tiny_models, "--json", report
    )
    assert result.returncode == 0, result.stderr

    def refuse(constant: str) -> float:
        raise AssertionError(f"{constant} in the JSON report")

    document = json.loads(report.read_text(), parse_constant=refuse)
    bicubic = next(s for s in document["scenes"][0]["scores"] if s["method"] == "bicubic")
    assert bicubic["rmse"][-1] == 0  # B12, exact
    assert bicubic["sre_db"][-1] == pytest.approx(10 * np.log10(12 * 123.0**2))
    assert "inf" not in result.stdout.split("### Over 2 scenes")[1]


def test_scale_all_scores_each_scale_as_if_asked_alone(tiny_models: Path, tmp_path: Path) -> None:
    """--scale all once cropped the scene to the 60 m lattice for the 2× scores as well, so
    they differed from --scale 2 (the demo's 28.6 DN read 28.5)."""
    folder = band_rasters(tmp_path / "bands", nested_crops(250))
    documents = {}
    for scale in ("2", "all"):
        out = tmp_path / f"{scale}.json"
        result = dsen2("evaluate", folder, "--scale", scale, "--model", tiny_models, "--json", out)
        assert result.returncode == 0, result.stderr
        documents[scale] = json.loads(out.read_text())
    alone, both = documents["2"]["scenes"], documents["all"]["scenes"]
    assert [d["scale"] for d in both] == [2, 6]
    assert alone[0]["size_px"] == [124, 124]  # 20 m target pixels; 120 when cropped to 60 m
    assert both[0] == alone[0]


def test_without_a_model_the_tables_say_they_hold_the_baselines_only(tmp_path: Path) -> None:
    folder = band_rasters(tmp_path / "bands", nested_crops(240))
    result = dsen2("evaluate", folder, "--scale", "6")
    assert result.returncode == 0, result.stderr
    assert "### bands — bicubic and bilinear only (no 6× model given), degraded ×6" in result.stdout
    assert "network" not in result.stdout
