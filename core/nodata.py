"""No-data handling: value 0 marks pixels without data in Sentinel-2 products.

Before a tile enters a network, its no-data pixels are filled from their valid neighbours so that
no network ever sees 0 as if it were dark ground. The fill is a local stencil (each pass fills
pixels next to valid ones with the mean of their valid 3×3 neighbours), so its result at a pixel
depends only on data within ``passes`` pixels: tiles read with enough halo fill exactly as the
whole image would.
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt

NODATA_DN = 0

FloatArray = npt.NDArray[np.float32]
BoolArray = npt.NDArray[np.bool_]


def valid_mask(stack: npt.NDArray[np.generic]) -> BoolArray:
    """True where every band of a ``[bands, rows, cols]`` stack holds data."""
    return np.all(stack != NODATA_DN, axis=0)


def fill_nodata(stack: FloatArray, valid: BoolArray, passes: int) -> FloatArray:
    """Fill invalid pixels of ``stack`` ([bands, rows, cols]) from valid neighbours, in place.

    Pixels farther than ``passes`` from any valid pixel keep their value; they only influence
    outputs that are masked as no-data anyway.
    """
    if valid.all() or not valid.any():
        return stack
    filled = valid.copy()
    for _ in range(passes):
        weights = filled.astype(np.float32)
        counts = _box3(weights)
        frontier = (counts > 0) & ~filled
        if not frontier.any():
            break
        sums = _box3(stack * weights)
        stack[:, frontier] = sums[:, frontier] / counts[frontier]
        filled |= frontier
    return stack


def _box3(array: FloatArray) -> FloatArray:
    """Sum over each pixel's 3×3 neighbourhood (zeros beyond the edges); works on [..., r, c]."""
    padded = np.pad(array, [(0, 0)] * (array.ndim - 2) + [(1, 1), (1, 1)])
    rows = padded[..., :-2, :] + padded[..., 1:-1, :] + padded[..., 2:, :]
    return rows[..., :-2] + rows[..., 1:-1] + rows[..., 2:]
