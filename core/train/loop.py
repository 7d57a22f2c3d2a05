"""Training (paper Sec. 4.5, 5.1): L1 loss (or mean squared error), NAdam, learning rate halved
on plateaus, early stopping (and an optional wall-time budget per call), a checkpoint every
epoch and a resume that reproduces the same curve (so a resume under another config, but for
RESUMABLE_KEYS, is refused).

A run directory holds ``config.toml`` (a copy of the file as written), ``experiment.json`` (the
experiment as the latest call trained it: any ``extends`` chain merged, paths absolute,
command-line overrides applied; the scenes of each side are its ``data``),
``log.csv`` (epoch, losses, learning rate, seconds), ``last.pt`` and ``best.pt``, and after
:func:`export_run` the ONNX model with its model card.
"""

from __future__ import annotations

import csv
import json
import platform
import shutil
import time
from dataclasses import MISSING, asdict, dataclass, fields
from pathlib import Path
from typing import Any

import torch
from torch.nn import functional as F  # noqa: N812

from dsen2 import __version__
from dsen2.catalogue import sha256_of
from dsen2.errors import DeviceError
from dsen2.train.atmosphere import random_atmosphere
from dsen2.train.config import (
    LOSS_LABELS,
    ConfigError,
    DataConfig,
    ExperimentConfig,
    OptimConfig,
)
from dsen2.train.data import PatchSet, augment, random_band_gain, random_gain, sample_patches
from dsen2.train.export import export, load_exported, metadata_for
from dsen2.train.network import INPUT_SCALE_DN, Architecture, Network, build, zero_last_layer
from dsen2.train.sen2venus import venus_patches


@dataclass(frozen=True)
class TrainState:
    """Where a run stands after an epoch (stored in every checkpoint)."""

    epoch: int
    best: float
    stale_epochs: int


LOG_FIELDS = ("epoch", "train_loss", "validation_loss", "learning_rate", "seconds")
# the function of each [optim] loss (keys as LOSS_LABELS), on the network's normalised units
LOSSES = {"l1": F.l1_loss, "mse": F.mse_loss}


def train(config: ExperimentConfig, run_dir: Path, config_path: Path | None = None) -> Path:
    """Train (or resume) the experiment in ``run_dir``; return the best checkpoint's path.

    Raises:
        ConfigError: ``run_dir`` holds a run started with another config (see
            :func:`config_changes`); nothing in it is touched.
    """
    if torch.device(config.device).type == "cuda" and not torch.cuda.is_available():
        raise DeviceError(
            f"the config asks for device {config.device!r}, but this torch sees no CUDA GPU "
            f"(torch {torch.__version__}): train with --device cpu, or on a machine with a GPU "
            "and a CUDA build of torch"
        )
    last = run_dir / "last.pt"
    checkpoint = _load(last, config.device) if last.exists() else None
    if checkpoint is not None:
        changes = config_changes(checkpoint["config"], config)
        if changes:
            raise ConfigError(
                f"{run_dir} was started with another config ({'; '.join(changes)}). A resume "
                f"continues a run as it started, so only {', '.join(RESUMABLE_KEYS)} may "
                "change: train with the config it started with, or use a new run folder"
            )
    run_dir.mkdir(parents=True, exist_ok=True)
    if config_path is not None and not (run_dir / "config.toml").exists():
        shutil.copy(config_path, run_dir / "config.toml")
    (run_dir / "experiment.json").write_text(json.dumps(asdict(config), indent=2), "utf-8")
    device = torch.device(config.device)
    train_set, validation_set = (patches.to(device) for patches in _patch_sets(config))
    if device.type == "cuda":
        torch.backends.cudnn.benchmark = True  # fixed patch shapes: pick the fastest kernels
    model = build(
        config.scale,
        config.architecture,
        seed=config.seed,
        consistent=config.consistent,
        detail_weights=config.detail_weights,
    )
    if checkpoint is None:  # a resume takes last.pt's weights instead (below)
        if config.init_from is not None:
            load_exported(model, Path(config.init_from))  # fine-tuning: init does not apply
        elif config.init == "bilinear":
            zero_last_layer(model)  # start from exactly the in-graph bilinear upsampling
    model = model.to(device)
    optimizer = torch.optim.NAdam(model.parameters(), lr=config.optim.learning_rate)
    scheduler = torch.optim.lr_scheduler.ReduceLROnPlateau(
        optimizer, mode="min", factor=0.5, patience=config.optim.plateau_patience
    )
    if checkpoint is not None:
        model.load_state_dict(checkpoint["model"])
        optimizer.load_state_dict(checkpoint["optimizer"])
        scheduler.load_state_dict(checkpoint["scheduler"])
        state = TrainState(**checkpoint["state"])
    else:
        # epoch 0 is a candidate like any other: a fine-tune that never beats the model it
        # started from exports that model, not its first (worse) epoch
        untrained = _evaluate(model, validation_set, config.optim.loss, device)
        state = TrainState(epoch=0, best=untrained, stale_epochs=0)
        _save(_checkpoint(model, optimizer, scheduler, state, config), run_dir / "best.pt")
        _log(
            run_dir,
            {
                "epoch": 0,
                "train_loss": "",
                "validation_loss": untrained,
                "learning_rate": config.optim.learning_rate,
                "seconds": 0.0,
            },
            header=True,
        )
    budget_s = None if config.optim.time_budget_min is None else config.optim.time_budget_min * 60
    keep_last = config.optim.keep == "last"  # best.pt is then every epoch's, the last one's
    call_started = time.perf_counter()
    while (
        state.epoch < config.optim.epochs
        and (keep_last or state.stale_epochs < config.optim.early_stop_patience)
        and (budget_s is None or time.perf_counter() - call_started < budget_s)
    ):
        started = time.perf_counter()
        epoch = state.epoch + 1
        train_loss = _train_epoch(model, optimizer, train_set, config, epoch, device)
        validation_loss = _evaluate(model, validation_set, config.optim.loss, device)
        scheduler.step(validation_loss)
        improved = validation_loss < state.best
        state = TrainState(
            epoch=epoch,
            best=validation_loss if keep_last else min(state.best, validation_loss),
            stale_epochs=0 if improved else state.stale_epochs + 1,
        )
        checkpoint = _checkpoint(model, optimizer, scheduler, state, config)
        if improved or keep_last:
            _save(checkpoint, run_dir / "best.pt")
        _save(checkpoint, last)
        _log(
            run_dir,
            {
                "epoch": epoch,
                "train_loss": train_loss,
                "validation_loss": validation_loss,
                "learning_rate": optimizer.param_groups[0]["lr"],
                "seconds": time.perf_counter() - started,
            },
        )
    return run_dir / "best.pt"


def _checkpoint(
    model: Network,
    optimizer: torch.optim.Optimizer,
    scheduler: torch.optim.lr_scheduler.ReduceLROnPlateau,
    state: TrainState,
    config: ExperimentConfig,
) -> dict[str, object]:
    return {
        "model": model.state_dict(),
        "optimizer": optimizer.state_dict(),
        "scheduler": scheduler.state_dict(),
        "state": asdict(state),
        "config": asdict(config),
    }


# what may differ between the calls of one run: the schedule's length, a call's time budget,
# where it runs, and the file the first call started from (a resume starts from last.pt);
# anything else would make the resumed curve another experiment's
RESUMABLE_KEYS = ("optim.epochs", "optim.time_budget_min", "device", "init_from")
# scene lists compare by file name, so a project or data folder moved elsewhere still resumes
_SCENE_KEYS = ("data.train", "data.validation")


def config_changes(stored: dict[str, Any], config: ExperimentConfig) -> list[str]:
    """How ``config`` differs from the config a run's checkpoint ``stored`` (``asdict`` of an
    ExperimentConfig), as ``key: before → now`` lines, RESUMABLE_KEYS left out. A key the
    stored config lacks (added to dsen2 after the run started) counts as its default."""
    before, now = _flat(stored), _flat(asdict(config))
    for flat in (before, now):
        for key in _SCENE_KEYS:
            if key in flat:
                flat[key] = [Path(scene).name for scene in flat[key]]
    defaults = _flat(_defaults())
    changes = []
    for key, value in now.items():
        old = before.get(key, defaults.get(key, value))
        if key not in RESUMABLE_KEYS and old != value:
            changes.append(f"{key}: {_shown(old)} → {_shown(value)}")
    return changes


def _flat(document: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    """``document`` as dotted keys (``optim.loss``), sequences as lists, so a checkpoint's
    config compares with a fresh ``asdict``."""
    flat: dict[str, Any] = {}
    for key, value in document.items():
        if isinstance(value, dict):
            flat.update(_flat(value, f"{prefix}{key}."))
        else:
            flat[f"{prefix}{key}"] = list(value) if isinstance(value, tuple | list) else value
    return flat


def _defaults() -> dict[str, Any]:
    """The config's fields that have defaults (any field added after a run started has one)."""

    def of(cls: type) -> dict[str, Any]:
        return {f.name: f.default for f in fields(cls) if f.default is not MISSING}

    return {**of(ExperimentConfig), "optim": asdict(OptimConfig()), "data": of(DataConfig)}


def _shown(value: Any) -> str:
    if isinstance(value, list) and len(value) > 3:
        return f"[{len(value)} items]"
    return repr(value)


def _load(path: Path, device: str) -> dict[str, Any]:
    return dict(torch.load(path, map_location=torch.device(device), weights_only=False))


def _save(checkpoint: dict[str, object], path: Path) -> None:
    """Write a checkpoint through a temporary file: a run stopped mid-write (a time limit, a
    kill) keeps the previous checkpoint intact."""
    partial = path.with_name(path.name + ".partial")
    torch.save(checkpoint, partial)
    partial.replace(path)


def _patch_sets(config: ExperimentConfig) -> tuple[PatchSet, PatchSet]:
    """Training and validation patches: synthesised from scenes, or SEN2VENµS's real pairs."""
    data = config.data
    if config.scale == 4:
        return (
            venus_patches(data.train, data.patch_px, data.patches_per_scene, config.seed),
            venus_patches(
                data.validation, data.patch_px, data.validation_patches_per_scene, config.seed + 1
            ),
        )
    factors = config.train_factors
    train_set = sample_patches(
        data.train,
        config.scale,
        data.patch_px,
        data.patches_per_scene,
        factors,
        config.seed,
        data.offset_dn,
        config.detail_weights,
    )
    validation_set = sample_patches(
        data.validation,
        config.scale,
        data.patch_px,
        data.validation_patches_per_scene,
        (config.scale,),
        config.seed + 1,
        data.offset_dn,
        config.detail_weights,
    )
    return train_set, validation_set


def _train_epoch(
    model: Network,
    optimizer: torch.optim.Optimizer,
    data: PatchSet,
    config: ExperimentConfig,
    epoch: int,
    device: torch.device,
) -> float:
    """One pass over shuffled batches; the shuffle and augmentation depend only on
    (seed, epoch), so a resumed run repeats the same epochs exactly."""
    generator = torch.Generator().manual_seed(config.seed * 100_003 + epoch)
    order = torch.randperm(len(data), generator=generator)
    model.train()
    total, count = torch.zeros((), device=device), 0  # summed on the device: no sync per step
    for start in range(0, len(data), config.optim.batch_size):
        index = order[start : start + config.optim.batch_size].to(data.target.device)
        inputs = {f: t[index] for f, t in data.inputs.items()}
        target = data.target[index]
        weights = None if data.detail_weights is None else data.detail_weights[index]
        if config.data.augment:
            inputs, target = augment(inputs, target, generator)
        if config.data.atmosphere_probability is not None:
            inputs, target = random_atmosphere(
                inputs, target, config.scale, config.data.atmosphere_probability, generator
            )
        if config.data.gain_range is not None:
            inputs, target = random_gain(inputs, target, config.data.gain_range, generator)
        if config.data.band_gain_range is not None:
            inputs, target, weights = random_band_gain(
                inputs, target, config.scale, config.data.band_gain_range, generator, weights
            )
        with torch.autocast(device.type, torch.bfloat16, enabled=config.precision == "bf16"):
            loss = _loss(model, inputs, target, weights, config.optim.loss, device)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        total += loss.detach() * len(index)
        count += len(index)
    return float(total) / count


@torch.no_grad()
def _evaluate(model: Network, data: PatchSet, loss: str, device: torch.device) -> float:
    model.eval()
    total = 0.0
    for start in range(0, len(data), 256):
        inputs = {f: t[start : start + 256] for f, t in data.inputs.items()}
        target = data.target[start : start + 256]
        weights = None if data.detail_weights is None else data.detail_weights[start : start + 256]
        total += float(_loss(model, inputs, target, weights, loss, device)) * len(target)
    return total / len(data)


def _loss(
    model: Network,
    inputs: dict[int, torch.Tensor],
    target: torch.Tensor,
    detail_weights: torch.Tensor | None,
    loss: str,
    device: torch.device,
) -> torch.Tensor:
    """The loss in the network's normalised units (DN / 2000), as the paper trains."""
    args = [inputs[f].to(device) for f in sorted(inputs)]
    if detail_weights is not None:
        args.append(detail_weights.to(device))
    output = model(*args).float()
    return LOSSES[loss](output / INPUT_SCALE_DN, target.to(device) / INPUT_SCALE_DN)


def _log(run_dir: Path, row: dict[str, object], header: bool = False) -> None:
    with open(run_dir / "log.csv", "w" if header else "a", newline="", encoding="utf-8") as handle:
        writer = csv.DictWriter(handle, fieldnames=LOG_FIELDS)
        if header:
            writer.writeheader()
        writer.writerow(row)


def read_log(run_dir: Path) -> list[dict[str, str]]:
    with open(run_dir / "log.csv", encoding="utf-8") as handle:
        return list(csv.DictReader(handle))


_ROLE_TAGS = {2: "t2x", 6: "s6x", 4: "x4-5m"}


def export_run(run_dir: Path, version: str = "0.1.0", name: str | None = None) -> Path:
    """Export the best checkpoint of a run to ONNX with metadata, and write its model card.

    The model is named ``name``, or ``<experiment name>-<t2x|s6x|x4-5m>``.
    """
    checkpoint = torch.load(run_dir / "best.pt", map_location="cpu", weights_only=False)
    config = checkpoint["config"]  # the resolved experiment, as trained
    architecture, data, scale = config["architecture"], config["data"], config["scale"]
    consistent = bool(config.get("consistent", False))
    detail_weights = bool(config.get("detail_weights", False))
    model = build(
        scale,
        Architecture(**architecture),
        seed=None,
        consistent=consistent,
        detail_weights=detail_weights,
    )
    model.load_state_dict(checkpoint["model"])
    log = read_log(run_dir)
    seconds = sum(float(row["seconds"]) for row in log)
    name = name or f"{config['name']}-{_ROLE_TAGS[scale]}"
    loss = LOSS_LABELS[config["optim"].get("loss", "l1")]
    source = (
        f"SEN2VENµS site(s) ({', '.join(Path(s).name for s in data['train'])}: real Sentinel-2 / "
        "VENµS 5 m pairs)"
        if scale == 4
        else f"degradation factors {tuple(data['factors']) or (scale,)}"
    )
    summary = (
        f"trained by dsen2 on {len(data['train'])} scene(s) "
        f"({', '.join(Path(s).name for s in data['train'])}), validated on "
        f"{', '.join(Path(s).name for s in data['validation'])}; {source}; "
        f"{data['patches_per_scene']} patches of "
        f"{data['patch_px']} px per scene and factor; "
        + (
            f"last epoch {checkpoint['state']['epoch']} of {config['optim']['epochs']} planned "
            if config["optim"].get("keep") == "last"
            else f"best epoch {checkpoint['state']['epoch']} of {log[-1]['epoch']} "
        )
        + f"(validation {loss} {checkpoint['state']['best']:.5f}); "
        f"{seconds / 60:.1f} min on {config['device']} ({platform.machine()}), "
        f"{config.get('precision', 'fp32')} training"
        + ("; block-mean consistency layer" if consistent else "")
        + ("; scene detail weights input" if detail_weights else "")
        + (f"; fine-tuned from {Path(config['init_from']).name}" if config.get("init_from") else "")
    )
    metadata = metadata_for(model, name, architecture["name"], True, summary, version)
    path = export(model, run_dir / f"{name}.onnx", metadata)
    optim = config["optim"]
    augmentation = ", ".join(
        [
            "flips and 90° rotations" if data.get("augment", True) else "no flips or rotations",
            *(
                f"{label} {tuple(data[key])}"
                for key, label in (("gain_range", "gain"), ("band_gain_range", "band gain"))
                if data.get(key)
            ),
        ]
    )
    card = [
        f"# {name}",
        "",
        f"- variant: {architecture['name']} (d={architecture['num_blocks']}, "
        f"f={architecture['feature_size']}), {scale}×",
        f"- training: {summary}",
        f"- recipe: seed {config.get('seed', 0)}, batch {optim['batch_size']}, NAdam at "
        f"learning rate {optim['learning_rate']:g} (halved after {optim['plateau_patience']} "
        f"epochs without improvement), {loss} loss, {augmentation}",
        f"- exported {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())} by dsen2 "
        f"{__version__}: `{path.name}`, sha256 {sha256_of(path)}",
        "",
        f"| epoch | train {loss} | validation {loss} | learning rate | seconds |",
        "|---|---|---|---|---|",
        *(
            f"| {r['epoch']} | {r['train_loss']} | {r['validation_loss']} | {r['learning_rate']} | "
            f"{float(r['seconds']):.2f} |"
            for r in log
        ),
    ]
    path.with_suffix(".md").write_text("\n".join(card) + "\n", encoding="utf-8")
    return path
