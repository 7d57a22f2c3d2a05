"""How much a 6× detail-weights model leans on the weights it is given (its model card)

    python experiments/detail_sensitivity.py SCENE... [--model dsen2] [--draws 8]

The reduced-scale protocol (the scene's 60 m bands degraded to 360 m and super-resolved back),
run with the ``w60`` input set several ways instead of the fit `dsen2 evaluate` makes (60 m
against 360 m, on the whole degraded scene). Per scene, RMSE over bicubic's (ratio of mean
RMSEs, as `dsen2 evaluate`'s summary) with:

- ``evaluated``: that fit, what the model is scored with;
- ``native``: the fit one scale finer, 10 m against 60 m on the whole scene, what `dsen2 run`
  would fit on a scene this size if it read all of it (the self-similarity assumption's test);
- ``engine``: the same native fit pooled over the engine's own windows (`detail_windows`);
- ``one window``: each of those windows fitted alone (median, best, worst): a scene whose
  windows all but one miss the valid data;
- ``zeros``: no weights (what the fit gives a scene too small or degenerate to fit);
- ``σ``: the evaluated fit plus independent Gaussian noise on all eight weights (median and
  worst of ``--draws``, seed 0).

It also prints the largest difference between the native fit and the engine's windowed one.
"""

from __future__ import annotations

import argparse

import numpy as np

from dsen2.catalogue import ResolvedModel, resolve_models
from dsen2.degradation import wald_pair
from dsen2.detail import DetailFit, fit_detail_weights
from dsen2.engine import detail_windows
from dsen2.evaluation import FloatArray, load_scene, mirrored_feeds
from dsen2.inference import Device, Session, create_session, run_session
from dsen2.metrics import rmse
from dsen2.modelmeta import DETAIL_INPUTS
from dsen2.resample import upsample
from dsen2.tiling import round_up
from dsen2.window import Window

SCALE = 6
NOISE_SIGMAS = (0.05, 0.1, 0.2)


class Scorer:
    """One scene's degraded inputs, fed to one model with any weights."""

    def __init__(self, model: ResolvedModel, session: Session, arrays: dict[int, FloatArray]):
        self.inputs, self.target = wald_pair(arrays, SCALE, None)
        self.valid = np.all(self.target != 0, axis=0)
        bicubic = upsample(self.inputs[SCALE], SCALE, "bicubic")
        self.bicubic_rmse = float(rmse(bicubic, self.target, self.valid).mean())
        self.halo = round_up(model.metadata.receptive_field_px, SCALE)
        self.session = session
        self.feeds = mirrored_feeds(self.inputs, SCALE, self.halo)

    def __call__(self, weights: FloatArray) -> float:
        feeds = {**self.feeds, DETAIL_INPUTS[6]: weights[np.newaxis].astype(np.float32)}
        crop = slice(self.halo, -self.halo)
        output = run_session(self.session, feeds)[0][:, crop, crop]
        return float(rmse(output, self.target, self.valid).mean()) / self.bicubic_rmse


def window_fits(arrays: dict[int, FloatArray]) -> tuple[FloatArray, list[FloatArray]]:
    """The engine's pooled native fit and each of its windows' own."""
    coarse = arrays[SCALE]
    rows, cols = coarse.shape[1] * SCALE, coarse.shape[2] * SCALE
    fine = arrays[1][:, :rows, :cols]
    pooled = DetailFit(fine.shape[0], coarse.shape[0])
    singles = []
    for w in detail_windows(Window(0, 0, cols, rows)):
        fine_part = fine[:, w.row_off : w.row_end, w.col_off : w.col_end]
        coarse_part = coarse[
            :, w.row_off // SCALE : w.row_end // SCALE, w.col_off // SCALE : w.col_end // SCALE
        ]
        pooled.add(fine_part, coarse_part, SCALE)
        singles.append(fit_detail_weights(fine_part, coarse_part, SCALE))
    return pooled.weights(), singles


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("scenes", nargs="+", metavar="SCENE")
    parser.add_argument("--model", default="dsen2", help="a 6× model that takes w60")
    parser.add_argument("--draws", type=int, default=8)
    args = parser.parse_args()
    model = resolve_models(args.model, {SCALE})[SCALE]
    if not model.metadata.detail_weights:
        raise SystemExit(f"{model.metadata.name} takes no detail weights")
    session = create_session(model.path, Device.CPU)
    rng = np.random.default_rng(0)
    print(f"model {model.metadata.name}; RMSE / bicubic, reduced-scale protocol ×{SCALE}")
    for scene in args.scenes:
        name, arrays = load_scene(scene, {SCALE})
        score = Scorer(model, session, arrays)
        evaluated = fit_detail_weights(score.inputs[1], score.inputs[SCALE], SCALE)
        native = fit_detail_weights(arrays[1], arrays[SCALE], SCALE)
        engine, singles = window_fits(arrays)
        ones = np.array([score(w) for w in singles])
        print(f"\n{name}: {len(singles)} engine windows")
        print(
            f"  evaluated {score(evaluated):.3f}   native {score(native):.3f}   "
            f"engine {score(engine):.3f}   zeros {score(np.zeros_like(evaluated)):.3f}"
        )
        print(
            f"  one window: median {np.median(ones):.3f}, best {ones.min():.3f}, "
            f"worst {ones.max():.3f}"
        )
        noisy = []
        for sigma in NOISE_SIGMAS:
            draws = [
                score(evaluated + rng.normal(0, sigma, evaluated.shape)) for _ in range(args.draws)
            ]
            noisy.append(f"σ {sigma}: {np.median(draws):.3f} (worst {max(draws):.3f})")
        print("  " + "   ".join(noisy))
        print(
            f"  largest weight difference: native − evaluated "
            f"{np.abs(native - evaluated).max():.3f}, native − engine "
            f"{np.abs(native - engine).max():.3f}"
        )


if __name__ == "__main__":
    main()
