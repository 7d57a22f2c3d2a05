"""Train several experiments at once on a lent GPU box, in one call, without GDAL or an install.

The lent machine has torch, CUDA and numpy but no GDAL and no network, so the scenes travel as
packed .npz files (experiments/pack_scenes.py, into runs/pack/, carried with the call) and this
script imports dsen2 straight from the checkout. Each config trains in its own process, all at
the same time (small nets leave a big GPU mostly idle, so they share it well); each stops at its
config's time_budget_min. Then best.pt (weights only), log.csv and experiment.json of every
run go to OUT/<name>/.

On the device machine (the `run` tool; carry runs/pack):
    python3 experiments/device_train.py experiments/gpu-*.toml --out $OUT
The same code path on CPU, tiny (what tests/test_training.py runs):
    python experiments/device_train.py experiments/gpu-*.toml --out /tmp/dry --device cpu \\
        --epochs 1 --patches-per-scene 4
Back here: dsen2 export OUT/<name> (ONNX + card), then dsen2 evaluate as in the model cards.
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def _importable_env() -> dict[str, str]:
    """The environment in which ``import dsen2`` finds this checkout's core/ (installed or not)."""
    env = dict(os.environ, PYTHONUNBUFFERED="1")
    probe = [sys.executable, "-c", "import dsen2.train.loop"]
    if subprocess.run(probe, env=env, capture_output=True, check=False).returncode == 0:
        return env
    stage = Path(tempfile.mkdtemp(prefix="dsen2-import-"))
    (stage / "dsen2").symlink_to(ROOT / "core", target_is_directory=True)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(stage), env.get("PYTHONPATH")]))
    return env


def _train_one(args: argparse.Namespace) -> int:
    """Child process: train one config into its run folder."""
    from dsen2.train.config import load_config
    from dsen2.train.loop import train

    config = load_config(args.train_one)
    optim, data = config.optim, config.data
    if args.epochs is not None:
        optim = dataclasses.replace(optim, epochs=args.epochs)
    if args.patches_per_scene is not None:
        data = dataclasses.replace(
            data,
            patches_per_scene=args.patches_per_scene,
            validation_patches_per_scene=args.patches_per_scene,
        )
    config = dataclasses.replace(
        config, optim=optim, data=data, device=args.device or config.device
    )
    train(config, args.run_dir, config_path=args.train_one)
    return 0


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("configs", type=Path, nargs="*", help="experiment TOML files")
    parser.add_argument("--out", type=Path, help="where best.pt and log.csv of each run go")
    parser.add_argument("--runs", type=Path, default=Path(tempfile.gettempdir()) / "dsen2-runs")
    parser.add_argument("--device", help="override the configs' device (cpu for a dry run)")
    parser.add_argument("--epochs", type=int, help="override the configs' epochs")
    parser.add_argument("--patches-per-scene", type=int, help="override, for a dry run")
    parser.add_argument("--train-one", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--run-dir", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.train_one:
        return _train_one(args)
    if not args.configs or args.out is None:
        parser.error("give one or more configs and --out")
    env = _importable_env()
    overrides = [
        f"--{name.replace('_', '-')}={value}"
        for name in ("device", "epochs", "patches_per_scene")
        if (value := getattr(args, name)) is not None
    ]
    started = time.perf_counter()
    children = {}
    args.runs.mkdir(parents=True, exist_ok=True)
    for config in args.configs:
        run_dir = args.runs / config.stem
        log = open(args.runs / f"{config.stem}.out", "w", encoding="utf-8")  # closed after wait
        command = [sys.executable, __file__, "--train-one", str(config), "--run-dir", str(run_dir)]
        children[config.stem] = (
            subprocess.Popen(command + overrides, env=env, stdout=log, stderr=subprocess.STDOUT),
            run_dir,
            log,
        )
    failed = []
    for name, (child, run_dir, log) in children.items():
        code = child.wait()
        log.close()
        print(f"== {name}: exit {code} after {time.perf_counter() - started:.0f} s")
        print(Path(log.name).read_text(encoding="utf-8")[-3000:])
        if (run_dir / "log.csv").exists():
            print((run_dir / "log.csv").read_text(encoding="utf-8"))
        if code:
            failed.append(name)
            continue
        _bring_back(run_dir, args.out / name)
    return 1 if failed else 0


def _bring_back(run_dir: Path, destination: Path) -> None:
    """best.pt without the optimiser's state (a third of the size: what comes back from a lent
    machine is limited) and log.csv, what `dsen2 export` needs, and experiment.json, the record
    of what was trained."""
    import torch

    destination.mkdir(parents=True, exist_ok=True)
    checkpoint = torch.load(run_dir / "best.pt", map_location="cpu", weights_only=False)
    torch.save({k: checkpoint[k] for k in ("model", "state", "config")}, destination / "best.pt")
    for name in ("log.csv", "experiment.json"):
        shutil.copy2(run_dir / name, destination / name)


if __name__ == "__main__":
    raise SystemExit(main())
