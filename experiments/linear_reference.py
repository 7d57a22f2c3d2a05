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
of mean RMSEs to bicubic's, as `dsen2 evaluate`'s summary. ``--without-20m`` (6×) leaves the
20 m bands out of the fit: what they add to a fit on the 10 m bands.
"""

from __future__ import annotations

import argparse

import numpy as np
from detail_injection import finer_bands  # experiments/, the script's own folder

from dsen2.bands import BANDS_BY_GRID
from dsen2.catalogue import resolve_models
from dsen2.degradation import wald_pair
from dsen2.evaluation import FloatArray, SceneReport, evaluate, load_scene
from dsen2.metrics import rmse


def linear_reference(
    arrays: dict[int, FloatArray], report: SceneReport, with_20m: bool = True
) -> FloatArray:
    """Each target band's in-sample least-squares fit (see the module's text), as an image;
    ``with_20m`` False leaves the 20 m bands out at 6×."""
    scale = report.scale
    inputs, _ = wald_pair(arrays, scale)  # the finer bands (evaluate keeps only the estimates)
    bicubic, target = report.estimates["bicubic"], report.target
    finer = finer_bands(inputs, scale == 6 and with_20m)
    valid = np.all(target != 0, axis=0)
    fitted = np.empty_like(target)
    for band in range(target.shape[0]):
        design = np.concatenate([bicubic[band : band + 1], finer, np.ones_like(bicubic[:1])])
        weights, *_ = np.linalg.lstsq(design[:, valid].T, target[band][valid], rcond=None)
        fitted[band] = np.tensordot(weights, design, axes=1)
    return fitted


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("scenes", nargs="+", help="products, band folders or scene archives")
    parser.add_argument("--scale", type=int, default=6, choices=(2, 6))
    parser.add_argument("--model", default="dsen2", help="catalogue family or .onnx path")
    parser.add_argument("--without-20m", action="store_true", help="fit without them (6×)")
    args = parser.parse_args()
    if args.without_20m and args.scale != 6:
        parser.error("--without-20m needs --scale 6: at 2× the 20 m bands are the targets")
    model = resolve_models(args.model, {args.scale})[args.scale]
    print("| scene | band | bicubic | model | reference |")
    print("|---|---|---:|---:|---:|")
    for source in args.scenes:
        name, arrays = load_scene(source, {args.scale})
        report = evaluate(name, arrays, args.scale, [model])
        scores = {s.method: s for s in report.scores}
        valid = np.all(report.target != 0, axis=0)
        columns = (
            np.array(scores["bicubic"].rmse),
            np.array(scores[model.metadata.name].rmse),
            rmse(linear_reference(arrays, report, not args.without_20m), report.target, valid),
        )
        for band, row in zip(BANDS_BY_GRID[args.scale], zip(*columns, strict=True), strict=True):
            print(f"| {name} | {band} | " + " | ".join(f"{v:.1f}" for v in row) + " |")
        ratios = [f"{column.mean() / columns[0].mean():.3f}" for column in columns]
        print(f"| {name} | ratio to bicubic | " + " | ".join(ratios) + " |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
