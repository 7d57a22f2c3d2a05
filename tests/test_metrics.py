"""Metrics, degradation and resampling against hand-computed values and their definitions."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F  # noqa: N812

from dsen2.degradation import block_mean, degrade, gaussian_blur, gaussian_kernel
from dsen2.metrics import rmse, sam, sre, uiq
from dsen2.resample import upsample

RNG = np.random.default_rng(7)


def test_perfect_reconstruction() -> None:
    reference = RNG.uniform(500, 3000, (3, 24, 24))
    assert np.all(rmse(reference, reference) == 0)
    # SRE saturates at the rounding noise of integer DN (1/12 DN²) instead of going infinite.
    mu = reference.reshape(3, -1).mean(axis=1)
    np.testing.assert_allclose(sre(reference, reference), 10 * np.log10(12 * mu**2))
    assert np.all(np.isfinite(sre(reference, reference)))
    assert sam(reference, reference) == pytest.approx(0.0, abs=1e-6)
    np.testing.assert_allclose(uiq(reference, reference), 1.0, atol=1e-9)


def test_constant_offset() -> None:
    reference = RNG.uniform(500, 3000, (2, 16, 16))
    estimate = reference + 100.0
    np.testing.assert_allclose(rmse(estimate, reference), 100.0)
    mu = reference.reshape(2, -1).mean(axis=1)
    np.testing.assert_allclose(sre(estimate, reference), 10 * np.log10(mu**2 / 100.0**2))
    # Q = 4σxy·μxμy / ((σx²+σy²)(μx²+μy²)) with σxy = σx² = σy²: Q = 2μxμy / (μx² + μy²).
    expected = []
    for band in reference:
        windows = np.lib.stride_tricks.sliding_window_view(band, (8, 8)).reshape(-1, 64)
        mu_y = windows.mean(axis=1)
        mu_x = mu_y + 100.0
        expected.append(np.mean(2 * mu_x * mu_y / (mu_x**2 + mu_y**2)))
    np.testing.assert_allclose(uiq(estimate, reference), expected, rtol=1e-9)


def test_sam_hand_computed() -> None:
    estimate = np.array([[[1.0, 1.0]], [[0.0, 1.0]]])  # pixel spectra (1,0) and (1,1)
    reference = np.array([[[0.0, 1.0]], [[1.0, 0.0]]])  # pixel spectra (0,1) and (1,0)
    assert sam(estimate, reference) == pytest.approx((90.0 + 45.0) / 2)


def test_mask_restricts_the_pixels() -> None:
    reference = np.full((1, 4, 4), 1000.0)
    estimate = reference.copy()
    estimate[0, 0, 0] = 0.0
    mask = np.ones((4, 4), bool)
    mask[0, 0] = False
    assert rmse(estimate, reference, mask)[0] == 0
    assert rmse(estimate, reference)[0] == pytest.approx(math.sqrt(1000.0**2 / 16))


def test_gaussian_kernel_definition() -> None:
    taps = gaussian_kernel(0.5)  # σ = 1/2: radius ⌊4·0.5 + 0.5⌋ = 2
    assert len(taps) == 5 and taps.sum() == pytest.approx(1.0)
    np.testing.assert_allclose(taps, taps[::-1])
    assert taps[1] / taps[2] == pytest.approx(math.exp(-0.5 * (1 / 0.5) ** 2))
    assert len(gaussian_kernel(1 / 6)) == 3


def test_degradation_preserves_the_mean_and_averages_exact_blocks() -> None:
    image = RNG.uniform(0, 5000, (2, 36, 48))
    for factor in (2, 6):
        low = degrade(image, factor)
        assert low.shape == (2, 36 // factor, 48 // factor)
        np.testing.assert_allclose(low.mean(axis=(1, 2)), image.mean(axis=(1, 2)), rtol=1e-6)
        np.testing.assert_allclose(
            block_mean(gaussian_blur(image, 1 / factor), factor), low, rtol=1e-6
        )
    blocks = np.arange(16, dtype=np.float32).reshape(1, 4, 4)
    np.testing.assert_array_equal(block_mean(blocks, 2)[0], [[2.5, 4.5], [10.5, 12.5]])


def test_bilinear_matches_the_networks_in_graph_upsampling() -> None:
    low = RNG.uniform(0, 4000, (3, 7, 9)).astype(np.float32)
    for factor in (2, 6):
        expected = F.interpolate(
            torch.from_numpy(low)[None], scale_factor=float(factor), mode="bilinear"
        )[0].numpy()
        np.testing.assert_allclose(upsample(low, factor, "bilinear"), expected, atol=5e-3)


def test_bicubic_reproduces_constants_and_ramps() -> None:
    constant = np.full((1, 6, 6), 1234.0)
    np.testing.assert_allclose(upsample(constant, 2, "bicubic"), 1234.0)
    ramp = np.tile(np.arange(10, dtype=np.float64), (1, 10, 1))
    up = upsample(ramp, 2, "bicubic")[0]
    positions = (np.arange(20) + 0.5) / 2 - 0.5
    np.testing.assert_allclose(up[5, 4:-4], positions[4:-4], atol=1e-5)  # exact away from edges
