"""Self-supervised adaptation of the 2× model to one scene, scored at reduced scale (a probe)

    python experiments/scene_adaptation.py SCENE... --out runs/adapt [--model dsen2]

The paper's self-similarity assumption, used per scene at test time: the network sees only what
the reduced-scale protocol gives it (the scene's 10 m and 20 m bands degraded ×2, i.e. 20 m and
40 m), fine-tunes on pairs cut from that alone (degraded ×2 once more: 40/80 m → 40 m), and is
then scored on the protocol's target next to the unadapted model, bicubic and bilinear, in one
`dsen2.evaluation.evaluate` call. The original 20 m bands are never seen by the adaptation; at
native resolution the same recipe would fine-tune on the scene's 20/40 m → 20 m pairs.

The recipe is fixed (the shipped 2× model's fine-tune settings, a short schedule, the last epoch
kept); nothing is chosen on the scores. Each scene's run folder, ONNX and scores stay in
OUT/<scene>/; OUT/<scene>/scores.json is `dsen2 evaluate --json`'s document for that scene, and
OUT/rows/ holds one summary line per finished scene (a rerun skips those). Run it from the
repository root, with runs/data/ben-mock made by experiments/prepare_bigearthnet_mock.py
(MONITOR_SCENE below) and the scenes as the 2× card describes them.
The probe and its scores: models/dsen2-t2x-detail-d8.md, "Adapting this model to one scene".
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import time
from pathlib import Path

from dsen2.catalogue import ResolvedModel, resolve_models, sha256_of
from dsen2.degradation import wald_pair
from dsen2.evaluation import evaluate, json_document, load_scene
from dsen2.modelmeta import read_metadata
from dsen2.scene_archive import write_scene_archive
from dsen2.train.config import ExperimentConfig, load_config
from dsen2.train.loop import export_run, train

# The shipped 2× model's last leg: the adaptation keeps its network, augmentation, patch size,
# batch, learning rate and precision, and changes only what makes it one scene's adaptation.
SHIPPED_RECIPE = Path(__file__).resolve().parent / "finetune-l1c-seed1-d8-t2x.toml"
# A training patch of the shipped model: its validation loss only logs forgetting (the last
# epoch is kept whatever it says), and it is never a scored scene.
MONITOR_SCENE = "runs/data/ben-mock/S2A_MSIL2A_20170717T113321_82_31.npz"


def adaptation_config(
    name: str, reduced: Path, model: Path, epochs: int, learning_rate: float, seed: int
) -> ExperimentConfig:
    """One scene's adaptation: the shipped recipe on ``reduced`` alone, at factor 2, from
    ``model``, for a fixed ``epochs`` with no plateau halving, the last epoch kept."""
    recipe = load_config(SHIPPED_RECIPE)
    data = dataclasses.replace(
        recipe.data,
        train=(str(reduced.resolve()),),
        validation=(str(Path(MONITOR_SCENE).resolve()),),
        factors=(2,),
    )
    optim = dataclasses.replace(
        recipe.optim,
        learning_rate=learning_rate,
        epochs=epochs,
        keep="last",
        plateau_patience=epochs,
        early_stop_patience=epochs,
        time_budget_min=None,
    )
    return dataclasses.replace(
        recipe,
        name=f"adapt-{name}",
        init_from=str(model),
        seed=seed,
        data=data,
        optim=optim,
        detail_weights=read_metadata(model).detail_weights,  # the network the model has
    )


def adapt_scene(
    scene: str, out: Path, shipped: ResolvedModel, epochs: int, learning_rate: float, seed: int
) -> dict[str, object]:
    name, arrays = load_scene(scene, {2})
    folder = out / name
    folder.mkdir(parents=True, exist_ok=True)
    inputs, _ = wald_pair(arrays, 2)  # what the protocol gives the network; the target is not kept
    reduced = write_scene_archive(folder / "reduced.npz", {1: inputs[1], 2: inputs[2]})
    config = adaptation_config(name, reduced, shipped.path, epochs, learning_rate, seed)
    started = time.perf_counter()
    train(config, folder / "run")
    onnx = export_run(folder / "run", name=f"adapted-{name}")
    seconds = time.perf_counter() - started
    adapted = ResolvedModel(onnx, read_metadata(onnx), sha256_of(onnx), from_catalogue=False)
    report = evaluate(name, arrays, 2, [shipped, adapted])
    scores = json_document([report], [shipped, adapted])
    (folder / "scores.json").write_text(json.dumps(scores, indent=1))
    rmse = {s.method: s.mean_rmse for s in report.scores}
    row = {
        "scene": name,
        "bicubic": rmse["bicubic"],
        "shipped": rmse[shipped.metadata.name],
        "adapted": rmse[adapted.metadata.name],
        "adapt_s": seconds,
    }
    print(
        f"{name}: bicubic {row['bicubic']:.2f}  shipped {row['shipped']:.2f} "
        f"({row['shipped'] / row['bicubic']:.4f})  adapted {row['adapted']:.2f} "
        f"({row['adapted'] / row['bicubic']:.4f})  {seconds:.0f} s",
        flush=True,
    )
    return row


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("scenes", nargs="+")
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument(
        "--model",
        default="dsen2",
        help="the 2× model to adapt, of the shipped recipe's network (default: the shipped one; "
        "the card's probe ran on dsen2-t2x-d8-l1c: git show bc42333:models/dsen2-t2x-d8-l1c.onnx)",
    )
    parser.add_argument("--epochs", type=int, default=20)
    parser.add_argument("--learning-rate", type=float, default=1e-4)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    shipped = resolve_models(args.model, {2})[2]
    rows = []
    for scene in args.scenes:
        done = args.out / "rows" / f"{Path(scene).name}.json"
        if done.is_file():  # resumable: a finished scene is not adapted again
            rows.append(json.loads(done.read_text()))
            continue
        row = adapt_scene(scene, args.out, shipped, args.epochs, args.learning_rate, args.seed)
        done.parent.mkdir(parents=True, exist_ok=True)
        done.write_text(json.dumps(row))
        rows.append(row)
    for row in rows:
        print(json.dumps(row))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
