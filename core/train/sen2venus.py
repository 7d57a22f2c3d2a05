"""SEN2VENµS (Michel et al. 2022): Sentinel-2 10 m / 20 m patches with same-day VENµS 5 m data.

The published layout (Zenodo record 6514159, one archive per site, 116 GB in all): a folder per
site holding a tab-separated ``index.csv``, one row per Sentinel-2/VENµS pair, whose columns
``tensor_10m_b2b3b4b8``, ``tensor_20m_b5b6b7b8a``, ``tensor_05m_b2b3b4b8`` and
``tensor_05m_b5b6b7b8a`` name the pair's four PyTorch tensor files and ``nb_patches`` counts its
patches. The tensors are int16 reflectance × 10000: [n,4,128,128] at 10 m, [n,4,64,64] at 20 m and
[n,4,256,256] (twice) at 5 m. Other columns are ignored.

Training pairs are real (no synthetic degradation): inputs B2 B3 B4 B8 at 10 m and B5 B6 B7 B8A at
20 m, target the eight VENµS-measured bands at 5 m. Sites are the unit of the train/validation
split, like scenes for the 10 m networks.
"""

from __future__ import annotations

import csv
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from dsen2.errors import InputNotFoundError, ProductFormatError
from dsen2.train.data import PatchSet

INDEX_FILE = "index.csv"
COLUMN_10M = "tensor_10m_b2b3b4b8"
COLUMN_20M = "tensor_20m_b5b6b7b8a"
COLUMN_05M_10M_BANDS = "tensor_05m_b2b3b4b8"
COLUMN_05M_20M_BANDS = "tensor_05m_b5b6b7b8a"
COLUMN_PATCHES = "nb_patches"
PATCH_5M_PX = 256
# Grid of each array over the 5 m target grid, as PatchSet keys: 10 m inputs (2), 20 m inputs (4).
ROLE_10M, ROLE_20M = 2, 4


@dataclass(frozen=True)
class VenusPair:
    """One Sentinel-2/VENµS acquisition pair of a site: its four tensor files."""

    site: str
    b10_file: Path
    b20_file: Path
    target_10m_bands_file: Path
    target_20m_bands_file: Path
    patches: int


def read_index(site: Path) -> list[VenusPair]:
    """Read a site folder's ``index.csv``.

    Raises:
        InputNotFoundError: no index.csv, or a tensor file it names is missing.
        ProductFormatError: the index lacks a column this reader needs.
    """
    index = site / INDEX_FILE
    if not index.is_file():
        raise InputNotFoundError(
            f"{str(site)!r} has no {INDEX_FILE}: pass SEN2VENµS site folders (e.g. .../ALSACE)"
        )
    with open(index, newline="", encoding="utf-8") as handle:
        rows = list(csv.DictReader(handle, delimiter="\t"))
    needed = (COLUMN_10M, COLUMN_20M, COLUMN_05M_10M_BANDS, COLUMN_05M_20M_BANDS, COLUMN_PATCHES)
    pairs = []
    for row in rows:
        missing = [column for column in needed if column not in row]
        if missing:
            raise ProductFormatError(
                f"{str(index)!r} lacks column(s) {', '.join(missing)}; is it a SEN2VENµS index?"
            )
        b10, b20, target_a, target_b = (site / row[column] for column in needed[:4])
        for path in (b10, b20, target_a, target_b):
            if not path.is_file():
                raise InputNotFoundError(f"{str(index)!r} names {path.name!r}, which is missing")
        pairs.append(
            VenusPair(site.name, b10, b20, target_a, target_b, patches=int(row[COLUMN_PATCHES]))
        )
    return pairs


def load_pair(pair: VenusPair) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """The pair's (b10 [n,4,128,128], b20 [n,4,64,64], target [n,8,256,256]) as float32 DN.

    Raises:
        ProductFormatError: a tensor has the wrong shape or patch count.
    """
    b10, b20, target_a, target_b = (
        torch.load(path, map_location="cpu", weights_only=True).to(torch.float32)
        for path in (
            pair.b10_file,
            pair.b20_file,
            pair.target_10m_bands_file,
            pair.target_20m_bands_file,
        )
    )
    n = pair.patches
    expected = {
        pair.b10_file: (b10, (n, 4, PATCH_5M_PX // 2, PATCH_5M_PX // 2)),
        pair.b20_file: (b20, (n, 4, PATCH_5M_PX // 4, PATCH_5M_PX // 4)),
        pair.target_10m_bands_file: (target_a, (n, 4, PATCH_5M_PX, PATCH_5M_PX)),
        pair.target_20m_bands_file: (target_b, (n, 4, PATCH_5M_PX, PATCH_5M_PX)),
    }
    for path, (tensor, shape) in expected.items():
        if tuple(tensor.shape) != shape:
            raise ProductFormatError(
                f"{str(path)!r} holds a tensor of shape {tuple(tensor.shape)}, expected {shape}"
            )
    return b10, b20, torch.cat([target_a, target_b], dim=1)


def venus_patches(
    sites: Sequence[str], patch_px: int, patches_per_site: int, seed: int
) -> PatchSet:
    """Cut ``patches_per_site`` random valid crops of ``patch_px`` (at 5 m) from each site.

    Crops are aligned to the 20 m grid (multiples of 4 at 5 m) and skip any that touch no-data
    (zeros) in an input or the target.
    """
    if patch_px % 4 or not 4 <= patch_px <= PATCH_5M_PX:
        raise ValueError(f"patch_px must be a multiple of 4 up to {PATCH_5M_PX}, got {patch_px}")
    rng = np.random.default_rng(seed)
    b10s: list[torch.Tensor] = []
    b20s: list[torch.Tensor] = []
    targets: list[torch.Tensor] = []
    for site in sites:
        pairs = read_index(Path(site))
        if not pairs:
            raise ProductFormatError(f"SEN2VENµS site {site!r} lists no pairs")
        share = -(-patches_per_site // len(pairs))  # spread the site's patches over its pairs
        found = 0
        for pair in pairs:
            b10, b20, target = load_pair(pair)
            wanted = min(share, patches_per_site - found)
            attempts = 0
            while wanted > 0 and attempts < share * 20:
                attempts += 1
                index = int(rng.integers(0, pair.patches))
                row = int(rng.integers(0, (PATCH_5M_PX - patch_px) // 4 + 1)) * 4
                col = int(rng.integers(0, (PATCH_5M_PX - patch_px) // 4 + 1)) * 4
                crops = (
                    b10[
                        index, :, row // 2 : (row + patch_px) // 2, col // 2 : (col + patch_px) // 2
                    ],
                    b20[
                        index, :, row // 4 : (row + patch_px) // 4, col // 4 : (col + patch_px) // 4
                    ],
                    target[index, :, row : row + patch_px, col : col + patch_px],
                )
                if any(bool((crop == 0).any()) for crop in crops):
                    continue  # touches no-data
                for store, crop in zip((b10s, b20s, targets), crops, strict=True):
                    store.append(crop.clone())
                wanted -= 1
                found += 1
    if not targets:
        raise ValueError(f"no valid patches in {list(sites)}")
    return PatchSet(
        inputs={ROLE_10M: torch.stack(b10s), ROLE_20M: torch.stack(b20s)},
        target=torch.stack(targets),
        scenes=tuple(sites),
    )
