"""ONNX export: contract, metadata without a session, parity with PyTorch on real data."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnxruntime as ort
import pytest
import torch
import torch.nn.functional as F  # noqa: N812

from dsen2 import catalogue
from dsen2.degradation import block_mean
from dsen2.errors import ModelError
from dsen2.modelmeta import read_metadata
from dsen2.train.export import export, metadata_for
from dsen2.train.network import DSEN2, build
from tests.safe_fixture import SafeSpec, original_dn


def _real_inputs(size_px: int) -> dict[str, np.ndarray]:
    spec = SafeSpec("L1C", "02.01", size_px=size_px)
    stack = {
        "b10": [original_dn(b, spec) for b in ("B2", "B3", "B4", "B8")],
        "b20": [original_dn(b, spec) for b in ("B5", "B6", "B7", "B8A", "B11", "B12")],
        "b60": [original_dn(b, spec) for b in ("B1", "B9")],
    }
    return {k: np.stack(v)[np.newaxis].astype(np.float32) for k, v in stack.items()}


def _skip_of(feeds: dict[str, np.ndarray], scale: int) -> np.ndarray:
    lowres = torch.from_numpy(feeds["b20" if scale == 2 else "b60"])
    return F.interpolate(lowres, scale_factor=float(scale), mode="bilinear").numpy()


@pytest.mark.parametrize("scale", [2, 6])
@pytest.mark.parametrize("residual_gain", [0.05, 1.0])
def test_onnx_matches_pytorch_on_real_data(
    tmp_path: Path, scale: int, residual_gain: float
) -> None:
    """Full DSen2 (d=6, f=128) with random He-uniform weights on a real 96×96 crop.

    Untrained, the residual branch adds thousands of DN (float32 rounding then reaches
    ~1e-2 DN, in PyTorch as much as in ONNX Runtime). With the last layer scaled by 0.05 the
    residual is a few hundred DN, as for a trained model, and parity must hold to 1e-3 DN;
    at full gain it must hold to 2e-6 of the residual's size.
    """
    model = build(scale, DSEN2, seed=scale).eval()
    with torch.no_grad():
        model.tail.weight.mul_(residual_gain)
    metadata = metadata_for(model, f"parity-{scale}", "DSen2", False, "random", "test")
    path = export(model, tmp_path / "model.onnx", metadata)
    inputs = _real_inputs(96)
    feeds = {k: v for k, v in inputs.items() if scale == 6 or k != "b60"}
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    (onnx_out,) = session.run(None, feeds)
    with torch.no_grad():
        torch_out = model(*(torch.from_numpy(v) for v in feeds.values())).numpy()
    assert onnx_out.shape == (1, 6 if scale == 2 else 2, 96, 96)
    residual = np.abs(torch_out - _skip_of(feeds, scale)).max()
    assert residual > 50  # the network really contributes, not a degenerate output
    tolerance = 1e-3 if residual_gain < 1 else 2e-6 * residual
    if residual_gain < 1:
        assert residual < 1000
    assert np.abs(onnx_out - torch_out).max() <= tolerance


def test_graph_has_the_contract_names_and_dynamic_axes(tmp_path: Path) -> None:
    model = build(6, DSEN2, seed=0)
    path = export(model, tmp_path / "m.onnx", metadata_for(model, "m", "DSen2", False, "-", "t"))
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    assert [i.name for i in session.get_inputs()] == ["b10", "b20", "b60"]
    assert [o.name for o in session.get_outputs()] == ["sr60"]
    for graph_input, channels in zip(session.get_inputs(), (4, 6, 2), strict=True):
        batch_dim, channel_dim, rows, cols = graph_input.shape
        assert channel_dim == channels
        assert all(isinstance(d, str) for d in (batch_dim, rows, cols))  # dynamic N, H, W
    batch = {
        "b10": np.ones((2, 4, 60, 48), np.float32),
        "b20": np.ones((2, 6, 30, 24), np.float32),
        "b60": np.ones((2, 2, 10, 8), np.float32),
    }
    assert session.run(None, batch)[0].shape == (2, 2, 60, 48)


def test_metadata_reads_without_a_session(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    model = build(2, DSEN2, seed=0)
    path = export(model, tmp_path / "m.onnx", metadata_for(model, "m2", "DSen2", True, "x", "1"))

    def no_session(*args: object, **kwargs: object) -> None:
        raise AssertionError("reading metadata must not build a session")

    monkeypatch.setattr(ort, "InferenceSession", no_session)
    metadata = read_metadata(path)
    assert metadata.name == "m2" and metadata.scale == 2 and metadata.trained
    assert len(metadata.input_bands["b10"]) == 4 and len(metadata.input_bands["b20"]) == 6
    assert metadata.receptive_field_px == 16
    assert metadata.macs_per_px == model.macs_per_px


def test_shipped_baselines_verify_and_are_labelled_untrained() -> None:
    resolved = catalogue.resolve_models("baseline", {2, 6})
    for scale, model in resolved.items():
        assert model.from_catalogue and model.metadata.scale == scale
        assert not model.metadata.trained
        assert "UNTRAINED" in model.metadata.training


def test_sha256_mismatch_is_refused(tmp_path: Path) -> None:
    folder = tmp_path / "models"
    folder.mkdir()
    for entry in catalogue.load_catalogue():
        (folder / entry.file).write_bytes((catalogue.models_dir() / entry.file).read_bytes())
    (folder / catalogue.CATALOGUE_FILE).write_text(
        (catalogue.models_dir() / catalogue.CATALOGUE_FILE).read_text()
    )
    target = folder / catalogue.load_catalogue(folder)[0].file
    data = bytearray(target.read_bytes())
    data[-10] ^= 0xFF
    target.write_bytes(bytes(data))
    with pytest.raises(ModelError, match="sha256"):
        catalogue.resolve_models("dsen2", {2}, directory=folder)


def test_a_folder_without_the_6x_model_points_at_bands_20m(
    tiny_models: Path, tmp_path: Path
) -> None:
    folder = tmp_path / "only-2x"
    folder.mkdir()
    for onnx_file in tiny_models.glob("*.onnx"):
        if read_metadata(onnx_file).scale == 2:
            (folder / onnx_file.name).write_bytes(onnx_file.read_bytes())
    with pytest.raises(ModelError, match=r"has no 6× model \(--bands 20m needs only the 2×"):
        catalogue.resolve_models(str(folder), {2, 6})
    assert set(catalogue.resolve_models(str(folder), {2})) == {2}


def test_unknown_families_are_refused_and_vdsen2_says_why() -> None:
    with pytest.raises(ModelError, match=r"no model family 'edsr' in the catalogue \(available"):
        catalogue.resolve_models("edsr", {2})
    with pytest.raises(ModelError, match="VDSen2 weights are not shipped"):
        catalogue.resolve_models("VDSen2", {2})


def test_file_without_dsen2_metadata_is_refused(tmp_path: Path) -> None:
    bogus = tmp_path / "bogus.onnx"
    bogus.write_bytes(b"\x08\x07")  # a valid protobuf (ir_version=7) with no metadata
    with pytest.raises(ModelError, match="no dsen2 metadata"):
        read_metadata(bogus)
    bogus.write_bytes(b"not an onnx file at all")
    with pytest.raises(ModelError):
        read_metadata(bogus)


def test_consistent_graph_keeps_the_block_means_of_real_data(tmp_path: Path) -> None:
    """The exported 6× graph with the consistency layer, in ONNX Runtime on a real crop: each
    6×6 output block averages to its input 60 m pixel, and it matches PyTorch."""
    model = build(6, DSEN2, seed=6, consistent=True).eval()
    with torch.no_grad():
        model.tail.weight.mul_(0.05)  # a trained-size residual (a few hundred DN)
    metadata = metadata_for(model, "consistent-6", "DSen2", False, "random", "test")
    path = export(model, tmp_path / "model.onnx", metadata)
    assert read_metadata(path).receptive_field_px == 14 + 6 + 5
    feeds = _real_inputs(96)
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    (onnx_out,) = session.run(None, feeds)
    with torch.no_grad():
        torch_out = model(*(torch.from_numpy(v) for v in feeds.values())).numpy()
    assert np.abs(onnx_out - _skip_of(feeds, 6)).max() > 50
    assert np.abs(onnx_out - torch_out).max() <= 1e-3
    assert np.abs(block_mean(onnx_out, 6) - feeds["b60"]).max() <= 1e-2
