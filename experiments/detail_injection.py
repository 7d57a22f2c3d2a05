"""A classical, scene-adaptive detail injection next to the model (both models' cards)

    python experiments/detail_injection.py SCENE... [--scale 6] [--model dsen2]

A regression-based pansharpening of each coarse band that, unlike `linear_reference.py`, never
sees the target: it only uses what the reduced-scale protocol gives the network. For each scene
and coarse band, the weights of the four 10 m bands are fitted by least squares at the coarse
band's own grid, between the high-pass parts (the image minus its Gaussian blur of σ = 1 px) of
the coarse band and of the 10 m bands degraded to that grid. The estimate is the coarse band's
bicubic upsampling plus the detail of the weighted 10 m bands (their sum minus its own
degradation, bicubic-upsampled). The weights assume that the bands' detail relation at the
coarse scale holds one scale finer: the paper's self-similarity assumption, made per scene
instead of learned across scenes.

Prints RMSE per band (DN) for bicubic, the model (`dsen2.evaluation.evaluate`), the detail
injection and the plain average of the model's and the injection's outputs, all in one run, and
per scene the ratio of mean RMSEs to bicubic's, as `dsen2 evaluate`'s summary. With
``--weights``, a second table checks the assumption: each band's weights as fitted (at the coarse
grid) next to the same fit made one scale finer, between the target and the 10 m bands at the
target's grid. That second fit sees the target, so it is a diagnostic, never an estimate.

With ``--with-20m`` (6× only) the six 20 m bands, bicubic-upsampled to the 10 m grid, join the
four 10 m bands in the fit and the injection: does a scene's 20 m detail tell more about B1 and
B9 than its 10 m detail does (B8A and B9 are neighbours in the near infrared)?
"""

from __future__ import annotations

import argparse

import numpy as np

from dsen2.bands import BANDS_BY_GRID
from dsen2.catalogue import resolve_models
from dsen2.degradation import degrade, wald_pair
from dsen2.detail import fit_detail_weights
from dsen2.evaluation import FloatArray, evaluate, load_scene
from dsen2.metrics import rmse
from dsen2.resample import upsample


def detail_injection(fine: FloatArray, coarse: FloatArray, scale: int) -> FloatArray:
    """Each coarse band sharpened by the detail of ``fine`` (:func:`finer_bands`), weights
    fitted per scene by `dsen2.detail.fit_detail_weights` (the module's text). Both are degraded
    arrays of `dsen2.degradation.wald_pair`."""
    estimate = upsample(coarse, scale, "bicubic")
    for band, weights in enumerate(fit_detail_weights(fine, coarse, scale)):
        synthetic = np.tensordot(weights, fine, axes=1)[np.newaxis].astype(np.float32)
        detail = synthetic - upsample(degrade(synthetic, scale), scale, "bicubic")
        estimate[band] += detail[0]
    return estimate


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("scenes", nargs="+", help="products, band folders or scene archives")
    parser.add_argument("--scale", type=int, default=6, choices=(2, 6))
    parser.add_argument("--model", default="dsen2", help="catalogue family or .onnx path")
    parser.add_argument("--weights", action="store_true", help="also print the fitted weights")
    parser.add_argument("--with-20m", action="store_true", help="fit the 20 m bands too (6×)")
    args = parser.parse_args()
    if args.with_20m and args.scale != 6:
        parser.error("--with-20m needs --scale 6: at 2× the 20 m bands are the targets")
    model = resolve_models(args.model, {args.scale})[args.scale]
    weights_rows: list[str] = []
    print("| scene | band | bicubic | model | detail injection | average of the two |")
    print("|---|---|---:|---:|---:|---:|")
    for source in args.scenes:
        name, arrays = load_scene(source, {args.scale})
        report = evaluate(name, arrays, args.scale, [model])
        inputs, target = wald_pair(arrays, args.scale)
        valid = np.all(target != 0, axis=0)
        learned = report.estimates[model.metadata.name]
        fine = finer_bands(inputs, args.with_20m)
        injected = detail_injection(fine, inputs[args.scale], args.scale)
        estimates = (report.estimates["bicubic"], learned, injected, (learned + injected) / 2)
        columns = [rmse(estimate, target, valid) for estimate in estimates]
        for band, row in zip(BANDS_BY_GRID[args.scale], zip(*columns, strict=True), strict=True):
            print(f"| {name} | {band} | " + " | ".join(f"{v:.1f}" for v in row) + " |")
        ratios = [f"{column.mean() / columns[0].mean():.3f}" for column in columns]
        print(f"| {name} | ratio to bicubic | " + " | ".join(ratios) + " |")
        if args.weights:
            fitted = fit_detail_weights(fine, inputs[args.scale], args.scale)
            one_finer = fit_detail_weights(fine, target, 1)
            weights_rows.extend(
                f"| {name} | {band} | {_listed(a)} | {_listed(b)} |"
                for band, a, b in zip(BANDS_BY_GRID[args.scale], fitted, one_finer, strict=True)
            )
    if weights_rows:
        named = BANDS_BY_GRID[1] + (BANDS_BY_GRID[2] if args.with_20m else ())
        print(f"\n| scene | band | weights of {', '.join(named)} | one scale finer |")
        print("|---|---|---|---|")
        print("\n".join(weights_rows))
    return 0


def finer_bands(inputs: dict[int, FloatArray], with_20m: bool) -> FloatArray:
    """The bands finer than a 6× target, at its grid (``inputs`` of
    `dsen2.degradation.wald_pair`): the 10 m bands, and with ``with_20m`` the 20 m bands
    bicubic-upsampled to it (`linear_reference.py` fits on the same stack)."""
    if not with_20m:
        return inputs[1]
    return np.concatenate([inputs[1], upsample(inputs[2], 2, "bicubic")])


def _listed(weights: FloatArray) -> str:
    return " ".join(f"{w:+.2f}" for w in weights)


if __name__ == "__main__":
    raise SystemExit(main())
