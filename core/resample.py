"""Upsampling by an integer factor: the bilinear and bicubic baselines of the evaluation.

Pixel-centre geometry (a coarse pixel covers ``factor``×``factor`` fine pixels; sample positions
``(i + 0.5) / factor − 0.5``), edges clamped: bilinear equals the networks' in-graph upsampling
(ONNX Resize, half_pixel). Bicubic uses Keys' kernel with a = −0.5 (as MATLAB's imresize and
Pillow). Pure numpy, separable.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import numpy.typing as npt

FloatArray = npt.NDArray[np.float32]
Kernel = Callable[[npt.NDArray[np.float64]], npt.NDArray[np.float64]]


def _linear(distance: npt.NDArray[np.float64]) -> npt.NDArray[np.float64]:
    return np.clip(1.0 - np.abs(distance), 0.0, None)


def _keys_cubic(distance: npt.NDArray[np.float64], a: float = -0.5) -> npt.NDArray[np.float64]:
    x = np.abs(distance)
    near = (a + 2) * x**3 - (a + 3) * x**2 + 1
    far = a * x**3 - 5 * a * x**2 + 8 * a * x - 4 * a
    return np.where(x <= 1, near, np.where(x < 2, far, 0.0))


KERNELS: dict[str, tuple[Kernel, int]] = {"bilinear": (_linear, 1), "bicubic": (_keys_cubic, 2)}


def upsample(stack: npt.NDArray[np.generic], factor: int, method: str) -> FloatArray:
    """Upsample [..., rows, cols] by ``factor`` with ``method`` (``"bilinear"``, ``"bicubic"``)."""
    if method not in KERNELS:
        raise ValueError(f"method must be one of {sorted(KERNELS)}, got {method!r}")
    kernel, support = KERNELS[method]
    data = stack.astype(np.float64)
    for axis in (-2, -1):
        data = _resample_axis(data, factor, axis, kernel, support)
    return data.astype(np.float32)


def _resample_axis(
    data: npt.NDArray[np.float64], factor: int, axis: int, kernel: Kernel, support: int
) -> npt.NDArray[np.float64]:
    length = data.shape[axis]
    positions = (np.arange(length * factor) + 0.5) / factor - 0.5
    base = np.floor(positions).astype(int)
    shape = list(data.shape)
    shape[axis] = length * factor
    result = np.zeros(shape)
    for offset in range(-support + 1, support + 1):
        index = base + offset
        weights = kernel(positions - index)
        taken = np.take(data, np.clip(index, 0, length - 1), axis=axis)
        broadcast = [1] * data.ndim
        broadcast[axis] = -1
        result += taken * weights.reshape(broadcast)
    return result
