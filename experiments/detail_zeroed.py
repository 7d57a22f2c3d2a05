"""A detail-weights export with its detail layers zeroed: the same network given no weights.

    python experiments/detail_zeroed.py MODEL.onnx OUT.onnx

The copy is renamed ``<name>-w0`` so `experiments/validate_shipped.py --candidate` can score it
beside the model it came from: what a run whose detail fit fails (zero weights) would get, the
diagnostic of models/dsen2-t2x-detail-d8.md ("How much it leans on the weights").
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np
import onnx
from onnx import numpy_helper

from dsen2.modelmeta import METADATA_KEY

DETAIL_LAYERS = ("detail_gain", "detail_head.weight", "detail_head.bias")


def zeroed(source: Path, target: Path) -> Path:
    model = onnx.load(str(source))
    found = 0
    for tensor in model.graph.initializer:
        if tensor.name in DETAIL_LAYERS:
            zeros = np.zeros_like(numpy_helper.to_array(tensor))
            tensor.CopyFrom(numpy_helper.from_array(zeros, tensor.name))
            found += 1
    if not found:
        raise SystemExit(f"{source} has no detail layers {DETAIL_LAYERS}")
    for entry in model.metadata_props:
        if entry.key == METADATA_KEY:
            metadata = json.loads(entry.value)
            metadata["name"] += "-w0"
            entry.value = json.dumps(metadata, sort_keys=True)
    target.parent.mkdir(parents=True, exist_ok=True)
    onnx.save(model, str(target))
    return target


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("model", type=Path)
    parser.add_argument("out", type=Path)
    args = parser.parse_args()
    print(zeroed(args.model, args.out))


if __name__ == "__main__":
    main()
