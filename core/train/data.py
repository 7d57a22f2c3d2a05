"""Training pairs synthesised from real scenes with the paper's degradation (Sec. 4.1, 5.1).

Scenes are read through the core's readers (same nesting and radiometry as inference), or from
scene archives (dsen2.scene_archive, no GDAL needed), and kept in network units (reflectance ×
10000). For a network of scale s and a degradation factor k ≥ s (k = s is the paper's setting;
larger k pools coarser scales, e.g. 80→40 m with 40→20 m for the 2× net), the inputs are the
bands degraded by k and the target the coarse bands degraded by k/s.
Patches are cut at random positions of the target grid, skipping any that touch no-data.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import numpy.typing as npt
import torch

from dsen2.degradation import block_mean, degrade, wald_pair
from dsen2.detail import fit_detail_weights
from dsen2.errors import ProductFormatError
from dsen2.scene_archive import is_scene_archive, read_scene_archive, write_arrays

FloatArray = npt.NDArray[np.float32]


@dataclass(frozen=True)
class PatchSet:
    """Stacked patches: ``inputs[f]`` [n, bands, P/f, P/f] for grid roles f = 1, 2 (, 6) and
    ``target`` [n, bands, P, P], in reflectance × 10000; ``detail_weights`` [n, 2, 4] (6×, when
    asked for) the detail weights (dsen2.detail) of the scene and factor each patch came from."""

    inputs: dict[int, torch.Tensor]
    target: torch.Tensor
    scenes: tuple[str, ...]
    detail_weights: torch.Tensor | None = None

    def __len__(self) -> int:
        return int(self.target.shape[0])

    def to(self, device: torch.device) -> PatchSet:
        """The same patches held on ``device`` (a GPU then batches without host copies)."""
        weights = self.detail_weights
        return PatchSet(
            inputs={f: t.to(device) for f, t in self.inputs.items()},
            target=self.target.to(device),
            scenes=self.scenes,
            detail_weights=None if weights is None else weights.to(device),
        )


def sample_patches(
    scenes: Sequence[str],
    scale: int,
    patch_px: int,
    patches_per_scene: int,
    factors: Sequence[int],
    seed: int,
    offset_dn: float | None = None,
    detail_weights: bool = False,
) -> PatchSet:
    """Cut ``patches_per_scene`` random valid patches from each scene and degradation factor;
    with ``detail_weights`` (6×), each patch also carries its scene's weights at that factor,
    fitted on the whole degraded scene as inference fits them on the whole product."""
    rng = np.random.default_rng(seed)
    inputs: dict[int, list[FloatArray]] = {}
    targets: list[FloatArray] = []
    weights: list[FloatArray] = []
    for scene in scenes:
        for factor, (scene_inputs, target) in _pairs(scene, scale, factors, offset_dn):
            if detail_weights:
                scene_weights = fit_detail_weights(scene_inputs[1], scene_inputs[scale], scale)
            rows, cols = target.shape[1:]
            if rows < patch_px or cols < patch_px:
                raise ValueError(
                    f"scene {scene!r} is too small for {patch_px} px patches at factor {factor}"
                )
            found, attempts = 0, 0
            while found < patches_per_scene and attempts < patches_per_scene * 20:
                attempts += 1
                row = int(rng.integers(0, (rows - patch_px) // scale + 1)) * scale
                col = int(rng.integers(0, (cols - patch_px) // scale + 1)) * scale
                window = {
                    f: a[:, row // f : (row + patch_px) // f, col // f : (col + patch_px) // f]
                    for f, a in scene_inputs.items()
                }
                patch_target = target[:, row : row + patch_px, col : col + patch_px]
                if (patch_target == 0).any() or any((w == 0).any() for w in window.values()):
                    continue  # touches no-data
                for f, w in window.items():
                    inputs.setdefault(f, []).append(w)
                targets.append(patch_target)
                if detail_weights:
                    weights.append(scene_weights)
                found += 1
    if not targets:
        raise ValueError(f"no valid patches in {list(scenes)}")
    return PatchSet(
        inputs={f: torch.from_numpy(np.stack(v)) for f, v in inputs.items()},
        target=torch.from_numpy(np.stack(targets)),
        scenes=tuple(scenes),
        detail_weights=torch.from_numpy(np.stack(weights)) if detail_weights else None,
    )


PAIR_ARRAYS = {1: "in10", 2: "in20", 6: "in60"}


def load_pair(path: Path, scale: int) -> tuple[dict[int, FloatArray], FloatArray]:
    """A ready-made training pair from an ``.npz`` holding ``target`` [bands, H, W] (the coarse
    bands of the ``scale`` network at their native GSD) and the degraded inputs ``in10``
    [4, H, W], ``in20`` [6, H/2, W/2] and, for scale 6, ``in60`` [2, H/6, W/6]; network units
    (reflectance × 10000), 0 = no data. For sources that hold no native 10 m bands, such as a
    product's 60 m resampled bands (experiments/prepare_scarce_data.py).

    Raises:
        ProductFormatError: an array is missing or the shapes do not nest.
    """
    roles = [f for f in PAIR_ARRAYS if f <= scale]
    with np.load(path) as archive:
        missing = [PAIR_ARRAYS[f] for f in roles if PAIR_ARRAYS[f] not in archive.files]
        if missing:
            raise ProductFormatError(f"training pair {str(path)!r} lacks {', '.join(missing)}")
        inputs = {f: archive[PAIR_ARRAYS[f]].astype(np.float32) for f in roles}
        target = archive["target"].astype(np.float32)
    rows, cols = target.shape[1:]
    for f, array in inputs.items():
        if array.shape[1:] != (rows // f, cols // f) or rows % scale or cols % scale:
            raise ProductFormatError(
                f"training pair {str(path)!r}: {PAIR_ARRAYS[f]} has shape {array.shape}, "
                f"expected [bands, {rows // f}, {cols // f}] for a {rows}×{cols} target"
            )
    return inputs, target


def write_pair(path: Path, inputs: dict[int, FloatArray], target: FloatArray) -> Path:
    """Write a training pair that :func:`load_pair` reads (compressed, lossless)."""
    write_arrays(path, {"target": target, **{PAIR_ARRAYS[f]: a for f, a in inputs.items()}})
    return path


def is_pair(scene: str) -> bool:
    """Whether ``scene`` is a ready-made training pair (an ``.npz`` with a ``target`` array)."""
    path = Path(scene)
    if path.suffix.lower() != ".npz" or not path.is_file():
        return False
    with np.load(path) as archive:
        return "target" in archive.files


def _pairs(
    scene: str, scale: int, factors: Sequence[int], offset_dn: float | None
) -> Iterator[tuple[int, tuple[dict[int, FloatArray], FloatArray]]]:
    """(factor, (inputs, target)) for each degradation factor: the paper's synthesis from a
    native scene, or a ready-made pair degraded further by factor / scale."""
    if is_pair(scene):
        inputs, target = load_pair(Path(scene), scale)
        for factor in factors:
            extra = factor // scale
            if extra == 1:
                yield factor, (inputs, target)
                continue
            multiple = extra * scale
            rows, cols = (n // multiple * multiple for n in target.shape[1:])
            yield (
                factor,
                (
                    {
                        f: _degrade_valid(a[:, : rows // f, : cols // f], extra)
                        for f, a in inputs.items()
                    },
                    _degrade_valid(target[:, :rows, :cols], extra),
                ),
            )
        return
    if is_scene_archive(scene):
        arrays = read_scene_archive(Path(scene), {scale})
    else:  # GDAL only here: a machine with scene archives alone trains without it
        from dsen2.evaluation import load_scene

        _, arrays = load_scene(scene, {scale}, offset_dn)
    for factor in factors:
        yield factor, wald_pair(arrays, scale, factor)


def _degrade_valid(stack: FloatArray, factor: int) -> FloatArray:
    """The paper's degradation, with no-data (0) kept wherever a block touches it."""
    invalid = block_mean((stack == 0).any(axis=0, keepdims=True).astype(np.float32), factor) > 0
    return np.where(invalid, np.float32(0), degrade(stack, factor))


def augment(
    batch: dict[int, torch.Tensor], target: torch.Tensor, generator: torch.Generator
) -> tuple[dict[int, torch.Tensor], torch.Tensor]:
    """One random flip / 90° rotation (of the eight) applied to a whole batch."""
    turns = int(torch.randint(0, 4, (1,), generator=generator))
    flip = bool(torch.randint(0, 2, (1,), generator=generator))

    def apply(tensor: torch.Tensor) -> torch.Tensor:
        tensor = torch.rot90(tensor, turns, dims=(-2, -1))
        return torch.flip(tensor, dims=(-1,)) if flip else tensor

    return {f: apply(t) for f, t in batch.items()}, apply(target)


def random_gain(
    batch: dict[int, torch.Tensor],
    target: torch.Tensor,
    gain_range: tuple[float, float],
    generator: torch.Generator,
) -> tuple[dict[int, torch.Tensor], torch.Tensor]:
    """Scale each patch (inputs and target alike) by a log-uniform random gain, so the network
    learns relative detail rather than one scene's absolute brightness."""
    gains = _log_uniform((len(target), 1, 1, 1), gain_range, generator).to(target.device)
    return {f: t * gains for f, t in batch.items()}, target * gains


def random_band_gain(
    batch: dict[int, torch.Tensor],
    target: torch.Tensor,
    scale: int,
    gain_range: tuple[float, float],
    generator: torch.Generator,
    detail_weights: torch.Tensor | None = None,
) -> tuple[dict[int, torch.Tensor], torch.Tensor, torch.Tensor | None]:
    """Scale each band of each patch by its own log-uniform random gain (spectral jitter), so
    the network cannot lean on one product level's ratios between bands (L1C against L2A, B8A
    standing in for B8). The target shares the gains of its coarse input bands (grid role
    ``scale``): the degradation is linear, so every pair stays a valid pair. Detail weights
    [n, coarse, fine] (6×) follow exactly: a fit on the scaled bands gives each weight times
    its coarse band's gain over its 10 m band's."""
    by_role = {
        f: _log_uniform((*t.shape[:2], 1, 1), gain_range, generator).to(t.device)
        for f, t in batch.items()
    }
    if detail_weights is not None:
        coarse_gains = by_role[scale][:, :, :, 0]  # [n, coarse bands, 1]
        fine_gains = by_role[1][:, :, 0, 0][:, None, :]  # [n, 1, 10 m bands]
        detail_weights = detail_weights * coarse_gains / fine_gains
    return {f: t * by_role[f] for f, t in batch.items()}, target * by_role[scale], detail_weights


def _log_uniform(
    shape: tuple[int, ...], gain_range: tuple[float, float], generator: torch.Generator
) -> torch.Tensor:
    """Gains drawn log-uniformly from ``gain_range``."""
    low, high = (float(torch.log(torch.tensor(g))) for g in gain_range)
    return torch.exp(torch.rand(shape, generator=generator) * (high - low) + low)
