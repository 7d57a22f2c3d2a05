"""Training pairs synthesised from real scenes with the paper's degradation (Sec. 4.1, 5.1).

Scenes are read through the core's readers (same nesting and radiometry as inference) and kept
in network units (reflectance × 10000). For a network of scale s and a degradation factor k ≥ s
(k = s is the paper's setting; larger k pools coarser scales, e.g. 80→40 m with 40→20 m for the
2× net), the inputs are the bands degraded by k and the target the coarse bands degraded by k/s.
Patches are cut at random positions of the target grid, skipping any that touch no-data.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt
import torch

from dsen2.evaluation import load_scene, wald_pair

FloatArray = npt.NDArray[np.float32]


@dataclass(frozen=True)
class PatchSet:
    """Stacked patches: ``inputs[f]`` [n, bands, P/f, P/f] for grid roles f = 1, 2 (, 6) and
    ``target`` [n, bands, P, P], in reflectance × 10000."""

    inputs: dict[int, torch.Tensor]
    target: torch.Tensor
    scenes: tuple[str, ...]

    def __len__(self) -> int:
        return int(self.target.shape[0])


def sample_patches(
    scenes: Sequence[str],
    scale: int,
    patch_px: int,
    patches_per_scene: int,
    factors: Sequence[int],
    seed: int,
    offset_dn: float | None = None,
) -> PatchSet:
    """Cut ``patches_per_scene`` random valid patches from each scene and degradation factor."""
    rng = np.random.default_rng(seed)
    inputs: dict[int, list[FloatArray]] = {}
    targets: list[FloatArray] = []
    for scene in scenes:
        _, arrays = load_scene(scene, {scale}, offset_dn)
        for factor in factors:
            scene_inputs, target = wald_pair(arrays, scale, factor)
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
                found += 1
    if not targets:
        raise ValueError(f"no valid patches in {list(scenes)}")
    return PatchSet(
        inputs={f: torch.from_numpy(np.stack(v)) for f, v in inputs.items()},
        target=torch.from_numpy(np.stack(targets)),
        scenes=tuple(scenes),
    )


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
    low, high = (float(torch.log(torch.tensor(g))) for g in gain_range)
    logs = torch.rand(len(target), 1, 1, 1, generator=generator) * (high - low) + low
    gains = torch.exp(logs)
    return {f: t * gains for f, t in batch.items()}, target * gains
