"""The paper's degradation (Sec. 4.1): Gaussian blur of σ = 1/s pixels, then s×s block means.

Used to synthesise training pairs and for the reduced-scale (Wald) evaluation protocol. Pure
numpy; the blur follows ``scipy.ndimage.gaussian_filter`` (kernel truncated at 4σ, image edges
mirrored), so results match the original DSen2 data preparation.
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt

from dsen2.errors import WindowError

FloatArray = npt.NDArray[np.float32]


def gaussian_kernel(sigma_px: float, truncate: float = 4.0) -> npt.NDArray[np.float64]:
    """Normalised 1-D Gaussian taps of standard deviation ``sigma_px`` (radius ⌊4σ + 0.5⌋)."""
    if sigma_px <= 0:
        raise ValueError(f"sigma_px must be positive, got {sigma_px}")
    radius = int(truncate * sigma_px + 0.5)
    offsets = np.arange(-radius, radius + 1, dtype=np.float64)
    taps = np.exp(-0.5 * (offsets / sigma_px) ** 2)
    return taps / taps.sum()


def gaussian_blur(stack: npt.NDArray[np.generic], sigma_px: float) -> FloatArray:
    """Blur each band of [..., rows, cols] separably, mirroring the edges (float32 result)."""
    taps = gaussian_kernel(sigma_px)
    radius = len(taps) // 2
    data = stack.astype(np.float64)
    for axis in (-2, -1):
        pad = [(0, 0)] * data.ndim
        pad[axis] = (radius, radius)
        padded = np.pad(data, pad, mode="symmetric")
        length = data.shape[axis]
        data = sum(
            tap * np.take(padded, np.arange(index, index + length), axis=axis)
            for index, tap in enumerate(taps)
        )
    return data.astype(np.float32)


def block_mean(stack: npt.NDArray[np.generic], factor: int) -> FloatArray:
    """Mean over non-overlapping ``factor``×``factor`` blocks of [..., rows, cols]; rows and
    cols must be multiples of ``factor``."""
    rows, cols = stack.shape[-2:]
    if rows % factor or cols % factor:
        raise ValueError(f"shape {stack.shape} is not a multiple of {factor}")
    shaped = stack.reshape(*stack.shape[:-2], rows // factor, factor, cols // factor, factor)
    return shaped.astype(np.float64).mean(axis=(-3, -1)).astype(np.float32)


def degrade(stack: npt.NDArray[np.generic], factor: int) -> FloatArray:
    """The paper's degradation by ``factor``: blur with σ = 1/factor pixels, then block means."""
    return block_mean(gaussian_blur(stack, 1.0 / factor), factor)


def wald_pair(
    arrays: dict[int, FloatArray], scale: int, factor: int | None = None
) -> tuple[dict[int, FloatArray], FloatArray]:
    """Degraded network inputs (keyed by grid role: 1 = the 10 m role, 2, 6) and the target.

    With ``factor`` = ``scale`` (the default) this is the paper's protocol. A larger multiple of
    the scale degrades further (e.g. 4 for the 2× net: 80 m → 40 m, target the 20 m bands
    degraded to 40 m), for scale-invariance checks and pooled training.

    Raises:
        WindowError: the scene is too small for this factor.
    """
    factor = factor or scale
    if factor % scale:
        raise WindowError(
            f"degradation factor {factor} must be a multiple of the network's scale {scale}"
        )
    multiple = factor * scale  # every degraded grid, and the network's input, stays whole
    rows, cols = arrays[1].shape[1:]
    rows, cols = rows // multiple * multiple, cols // multiple * multiple
    if rows < multiple * 4 or cols < multiple * 4:
        raise WindowError(
            f"the scene ({arrays[1].shape[2]}×{arrays[1].shape[1]} px) is too small for the "
            f"{scale}× protocol at factor {factor} (at least {multiple * 4} px a side)"
        )
    crops = {f: a[:, : rows // f, : cols // f] for f, a in arrays.items() if f <= scale}
    inputs = {f: degrade(crops[f], factor) for f in crops}
    target = crops[scale] if factor == scale else degrade(crops[scale], factor // scale)
    return inputs, target
