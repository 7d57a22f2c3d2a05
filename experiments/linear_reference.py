"""A per-pixel linear reference for each scene's target detail (both models' cards)

    python experiments/linear_reference.py SCENE... [--scale 6] [--model dsen2]

For each scene and coarse band, the reduced-scale protocol's target is fitted by least squares
on the scene itself: the band's own bicubic upsampling, every finer input band at the target's
grid (the 20 m ones bicubic-upsampled there for the 6× network), and a constant. The fit sees
the target, so it is the best a per-pixel linear method can do: the error a linear detail transfer
tuned to that very scene would leave, next to bicubic and the model from
`dsen2.evaluation.evaluate`, in one run. It is not a bound for a network, which also sees each
pixel's neighbourhood: a model below it uses spatial context; a model far above it has room to
learn even without any. Prints RMSE per band (DN) and per scene the ratio
of mean RMSEs to bicubic's, as `dsen2 evaluate`'s summary.
"""

from __future__ import annotations

import argparse

import numpy as np

from dsen2.bands import BANDS_BY_GRID
from dsen2.catalogue import resolve_models
from dsen2.degradation import wald_pair
from dsen2.evaluation import FloatArray, evaluate, load_scene
from dsen2.resample import upsample


def reference_rmse(arrays: dict[int, FloatArray], scale: int) -> list[float]:
    """Per target band, the RMSE of its in-sample least-squares fit (see the module's text)."""
    inputs, target = wald_pair(arrays, scale)
    bicubic = upsample(inputs[scale], scale, "bicubic")
    finer = [inputs[1]] + ([upsample(inputs[2], 2, "bicubic")] if scale == 6 else [])
    valid = np.all(target != 0, axis=0)
    errors = []
    for band in range(target.shape[0]):
        design = np.concatenate([bicubic[band : band + 1], *finer, np.ones_like(bicubic[:1])])
        rows, truth = design[:, valid].T, target[band][valid]
        weights, *_ = np.linalg.lstsq(rows, truth, rcond=None)
        errors.append(float(np.sqrt(np.mean((rows @ weights - truth) ** 2))))
    return errors


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("scenes", nargs="+", help="products, band folders or scene archives")
    parser.add_argument("--scale", type=int, default=6, choices=(2, 6))
    parser.add_argument("--model", default="dsen2", help="catalogue family or .onnx path")
    args = parser.parse_args()
    model = resolve_models(args.model, {args.scale})[args.scale]
    bands = BANDS_BY_GRID[args.scale]
    print("| scene | band | bicubic | model | reference |")
    print("|---|---|---:|---:|---:|")
    for source in args.scenes:
        name, arrays = load_scene(source, {args.scale})
        scores = {s.method: s for s in evaluate(name, arrays, args.scale, [model]).scores}
        bicubic, learned = scores["bicubic"].rmse, scores[model.metadata.name].rmse
        reference = reference_rmse(arrays, args.scale)
        for band, row in zip(bands, zip(bicubic, learned, reference, strict=True), strict=True):
            print(f"| {name} | {band} | " + " | ".join(f"{v:.1f}" for v in row) + " |")
        mean = {k: float(np.mean(v)) for k, v in (("b", bicubic), ("m", learned), ("o", reference))}
        print(
            f"| {name} | ratio to bicubic | 1 | {mean['m'] / mean['b']:.3f} "
            f"| {mean['o'] / mean['b']:.3f} |"
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
