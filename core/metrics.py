"""Image-quality metrics of the paper (Sec. 5.2): RMSE, SRE, SAM and UIQ.

All take ``estimate`` and ``reference`` as [bands, rows, cols] in the same units (DN, i.e.
reflectance × 10000) and an optional [rows, cols] mask of pixels to count.
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt

Array = npt.NDArray[np.generic]
MaskArray = npt.NDArray[np.bool_] | None

UIQ_WINDOW_PX = 8
# The rounding noise of integer DN (a uniform ±0.5 DN error): the smallest MSE the data can show.
ROUNDING_MSE_DN2 = 1.0 / 12.0


def rmse(estimate: Array, reference: Array, mask: MaskArray = None) -> npt.NDArray[np.float64]:
    """Root-mean-square error per band (same units as the inputs)."""
    diff = _pixels(estimate, mask) - _pixels(reference, mask)
    return np.sqrt(np.mean(diff**2, axis=1))


def sre(estimate: Array, reference: Array, mask: MaskArray = None) -> npt.NDArray[np.float64]:
    """Signal-to-reconstruction error per band in dB: 10·log10(μ² / MSE), μ the reference mean.

    The MSE counts as at least the rounding noise of integer DN (:data:`ROUNDING_MSE_DN2`), below
    which no error is measurable: an exact reconstruction (bicubic on a band that is constant,
    as clipped open water can be) scores a finite 10·log10(12 μ²), about 91 dB at μ = 10000,
    rather than infinity, so means over bands and scenes stay usable and JSON stays valid.
    """
    ref = _pixels(reference, mask)
    mse = np.maximum(np.mean((_pixels(estimate, mask) - ref) ** 2, axis=1), ROUNDING_MSE_DN2)
    return 10 * np.log10(np.mean(ref, axis=1) ** 2 / mse)


def sam(estimate: Array, reference: Array, mask: MaskArray = None) -> float:
    """Spectral angle mapper: the angle between estimated and reference spectra, in degrees,
    averaged over pixels (pixels with a zero spectrum are skipped)."""
    est, ref = _pixels(estimate, mask), _pixels(reference, mask)
    norms = np.linalg.norm(est, axis=0) * np.linalg.norm(ref, axis=0)
    valid = norms > 0
    cosine = np.clip(np.sum(est * ref, axis=0)[valid] / norms[valid], -1.0, 1.0)
    return float(np.degrees(np.mean(np.arccos(cosine))))


def uiq(
    estimate: Array, reference: Array, window_px: int = UIQ_WINDOW_PX
) -> npt.NDArray[np.float64]:
    """Universal image quality index (Wang & Bovik 2002) per band: Q over every
    ``window_px``×``window_px`` sliding window (stride 1), averaged. 1 is a perfect match."""
    scores = []
    for est_band, ref_band in zip(
        estimate.astype(np.float64), reference.astype(np.float64), strict=True
    ):
        # centre on one common value: (co)variances are shift-invariant, and the integral
        # images then stay small enough for float64 to difference them exactly
        shift = float(np.mean(ref_band))
        est_band, ref_band = est_band - shift, ref_band - shift
        n = window_px * window_px
        mean_x = _window_sums(est_band, window_px) / n
        mean_y = _window_sums(ref_band, window_px) / n
        var_x = _window_sums(est_band**2, window_px) / n - mean_x**2
        var_y = _window_sums(ref_band**2, window_px) / n - mean_y**2
        cov = _window_sums(est_band * ref_band, window_px) / n - mean_x * mean_y
        mean_x, mean_y = mean_x + shift, mean_y + shift
        numerator = 4 * cov * mean_x * mean_y
        denominator = (var_x + var_y) * (mean_x**2 + mean_y**2)
        flat = denominator <= 1e-12 * np.maximum(mean_x**2 + mean_y**2, 1)
        q = np.where(flat, np.where(np.isclose(mean_x, mean_y), 1.0, 0.0), 0.0)
        q[~flat] = numerator[~flat] / denominator[~flat]
        scores.append(float(np.mean(q)))
    return np.asarray(scores)


def _pixels(stack: Array, mask: MaskArray) -> npt.NDArray[np.float64]:
    bands = stack.shape[0]
    data = stack.astype(np.float64).reshape(bands, -1)
    return data if mask is None else data[:, mask.reshape(-1)]


def _window_sums(image: npt.NDArray[np.float64], window_px: int) -> npt.NDArray[np.float64]:
    """Sums over every window_px×window_px window (valid positions only), via an integral image."""
    integral = np.pad(image.cumsum(axis=0).cumsum(axis=1), ((1, 0), (1, 0)))
    w = window_px
    return integral[w:, w:] - integral[:-w, w:] - integral[w:, :-w] + integral[:-w, :-w]
