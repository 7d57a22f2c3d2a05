"""ONNX export of DSen2 networks with the dsen2 metadata, and the shipped baseline models.

    python -m dsen2.train.export baseline models/   # re-create the untrained baselines

The graph inputs are ``b10`` [N,4,H,W], ``b20`` [N,6,H/2,W/2] (and ``b60`` [N,2,H/6,W/6] for
6×, and for a net built with detail weights ``w60`` [N,2,4] at 6×, ``w20`` [N,6,4] at 2×:
dsen2.detail), the output
``sr20`` [N,6,H,W] or ``sr60`` [N,2,H,W], float32 DN, dynamic N, H and W. The 4×
(5 m) networks take ``b10`` [N,4,H,W] and ``b20`` [N,4,H/2,W/2] (B5 B6 B7 B8A) and give ``sr05``
[N,8,2H,2W].
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np
import onnx
import torch
from onnx import numpy_helper

from dsen2 import __version__
from dsen2.catalogue import CATALOGUE_FILE, sha256_of
from dsen2.errors import ModelError
from dsen2.modelmeta import (
    CONTRACTS,
    DETAIL_SCHEMA_VERSION,
    METADATA_KEY,
    ModelMetadata,
    read_metadata,
)
from dsen2.train.network import DSEN2, Network, build, zero_last_layer

OPSET = 17
_GRID_FACTORS = {"b10": 1, "b20": 2, "b60": 6}  # input grid over the 10 m grid
_DETAIL_LAYERS = ("detail_head.", "detail_gain")  # what an export without detail weights lacks


def metadata_for(
    model: Network, name: str, variant: str, trained: bool, training: str, version: str
) -> ModelMetadata:
    inputs, outputs = CONTRACTS[model.scale]
    detail_weights = model.detail_weights
    return ModelMetadata(
        name=name,
        variant=variant,
        scale=model.scale,
        num_blocks=model.num_blocks,
        feature_size=model.feature_size,
        input_bands=inputs,
        output_bands=outputs,
        receptive_field_px=model.receptive_field_px,
        macs_per_px=model.macs_per_px,
        trained=trained,
        training=training,
        version=version,
        schema_version=DETAIL_SCHEMA_VERSION if detail_weights else 1,
        detail_weights=detail_weights,
    )


def export(model: Network, path: Path, metadata: ModelMetadata) -> Path:
    """Export ``model`` to ``path`` as one self-contained .onnx file carrying ``metadata``."""
    model = model.eval()
    names = list(metadata.graph_inputs)
    args = tuple(torch.from_numpy(array) for array in _example_inputs(metadata).values())
    output = metadata.output_name
    dynamic = {
        name: {0: "batch", 2: f"rows_{name}", 3: f"cols_{name}"}
        for name in [*metadata.input_bands, output]
    }
    if metadata.detail_weights:
        dynamic[metadata.detail_input] = {0: "batch"}
    path.parent.mkdir(parents=True, exist_ok=True)
    with torch.no_grad():
        torch.onnx.export(
            model,
            args,
            str(path),
            input_names=names,
            output_names=[output],
            dynamic_axes=dynamic,
            opset_version=OPSET,
            dynamo=False,
        )
    proto = onnx.load(str(path))
    del proto.metadata_props[:]
    entry = proto.metadata_props.add()
    entry.key, entry.value = METADATA_KEY, metadata.to_json()
    proto.producer_name, proto.producer_version = "dsen2", __version__
    proto.doc_string = f"{metadata.name}: {metadata.variant} {metadata.scale}× super-resolution"
    onnx.checker.check_model(proto)
    onnx.save(proto, str(path))
    return path


def _example_inputs(metadata: ModelMetadata, size_px: int = 36) -> dict[str, np.ndarray]:
    """One random float32 DN patch per graph input, ``size_px`` on the 10 m grid (a multiple of
    6): what export traces the graph with and what load_exported compares outputs on."""
    rng = np.random.default_rng(0)
    inputs = {}
    for name, bands in metadata.input_bands.items():
        side_px = size_px // _GRID_FACTORS[name]
        inputs[name] = (rng.random((1, len(bands), side_px, side_px)) * 3000).astype(np.float32)
    if metadata.detail_weights:
        shape = (1, len(metadata.output_bands), len(metadata.input_bands["b10"]))
        inputs[metadata.detail_input] = (rng.random(shape) * 2 - 0.5).astype(np.float32)
    return inputs


def load_exported(model: Network, path: Path) -> Network:
    """Load into ``model`` the weights of a model that :func:`export` wrote (the inverse of
    export, for fine-tuning a shipped model on new scenes), and check that the loaded network
    reproduces the file's own output: same scale, depth, width and consistency layer.

    A network built with detail weights may start from an export without them: its detail
    layers keep their zero start, so it computes what the export computes.

    Raises:
        ModelError: not a dsen2 export, or a network of another shape than ``model``.
    """
    metadata = read_metadata(path)
    shape = (model.scale, model.num_blocks, model.feature_size)
    if (metadata.scale, metadata.num_blocks, metadata.feature_size) != shape:
        raise ModelError(
            f"{str(path)!r} is a {metadata.scale}× network with d={metadata.num_blocks}, "
            f"f={metadata.feature_size}; the experiment builds {shape[0]}× d={shape[1]}, "
            f"f={shape[2]}: set scale, num_blocks and feature_size to the model's"
        )
    if metadata.detail_weights and not model.detail_weights:
        raise ModelError(
            f"{str(path)!r} takes the scene's detail weights ({metadata.detail_input}); the "
            "experiment builds a network without them: set detail_weights = true"
        )
    weights = {
        tensor.name: torch.from_numpy(numpy_helper.to_array(tensor).copy())
        for tensor in onnx.load(str(path)).graph.initializer
    }
    state = model.state_dict()
    if model.detail_weights and not metadata.detail_weights:
        weights.update({k: v for k, v in state.items() if k.startswith(_DETAIL_LAYERS)})
    missing = [key for key in state if key not in weights or weights[key].shape != state[key].shape]
    if missing:
        raise ModelError(f"{str(path)!r} lacks weights {missing[:4]} of this network")
    model.load_state_dict({key: weights[key] for key in state})
    _check_reproduces(model, path, metadata)
    return model


def _check_reproduces(model: Network, path: Path, metadata: ModelMetadata) -> None:
    import onnxruntime as ort  # here only: training on a GPU box needs torch and numpy alone

    feeds = _example_inputs(metadata)
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    (expected,) = session.run(None, feeds)
    args = [torch.from_numpy(array) for array in feeds.values()]
    if model.detail_weights and not metadata.detail_weights:
        args.append(torch.ones(1, model.out_bands, len(metadata.input_bands["b10"])))
    with torch.no_grad():
        got = model.eval()(*args).numpy()
    if not np.allclose(got, expected, rtol=1e-4, atol=0.05):
        raise ModelError(
            f"the network built from the experiment does not reproduce {str(path)!r} "
            f"(largest difference {np.abs(got - expected).max():.3g} DN): check `consistent`"
        )


BASELINE_TRAINING = (
    "UNTRAINED BASELINE: the DSen2 graph with its last convolution zeroed, so the output is "
    "exactly the in-graph bilinear upsampling of the coarse bands. Not a trained model."
)


BASELINE_FAMILY = "baseline"


def export_baselines(folder: Path) -> list[dict[str, object]]:
    """Export the untrained baseline pair and list them as family ``baseline`` in the folder's
    catalogue (other families' entries are kept)."""
    entries = []
    for scale, tag in ((2, "t2x"), (6, "s6x")):
        name = f"dsen2-{tag}-baseline"
        model = zero_last_layer(build(scale, DSEN2, seed=scale))
        metadata = metadata_for(model, name, "DSen2", False, BASELINE_TRAINING, "0.1.0")
        path = export(model, folder / f"{name}.onnx", metadata)
        entries.append(
            {
                "family": BASELINE_FAMILY,
                "scale": scale,
                "file": path.name,
                "sha256": sha256_of(path),
                "description": f"DSen2 {scale}× untrained baseline (in-graph bilinear upsampling)",
            }
        )
    catalogue_path = folder / CATALOGUE_FILE
    kept = []
    if catalogue_path.exists():
        existing = json.loads(catalogue_path.read_text(encoding="utf-8"))["models"]
        kept = [e for e in existing if e["family"] != BASELINE_FAMILY]
    catalogue = {"schema_version": 1, "models": [*kept, *entries]}
    catalogue_path.write_text(json.dumps(catalogue, indent=2) + "\n", encoding="utf-8")
    return entries


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m dsen2.train.export")
    sub = parser.add_subparsers(dest="command", required=True)
    baseline = sub.add_parser("baseline", help="export the untrained baseline models")
    baseline.add_argument("folder", type=Path)
    args = parser.parse_args(argv)
    for entry in export_baselines(args.folder):
        print(f"{entry['file']}  sha256 {entry['sha256']}")


if __name__ == "__main__":
    main()
