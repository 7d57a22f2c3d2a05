"""The networks match the paper's architecture (Algorithm 1, Sec. 4.3–4.4)."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F  # noqa: N812

from dsen2.train.network import (
    DSEN2,
    VDSEN2,
    Architecture,
    DSen2,
    build,
    parameter_count,
    zero_last_layer,
)


@pytest.mark.parametrize(
    ("architecture", "scale", "expected"),
    [
        # conv(10→f) + 2d conv(f→f) + conv(f→6), 3×3 kernels with biases.
        (DSEN2, 2, 10 * 128 * 9 + 128 + 12 * (128 * 128 * 9 + 128) + 128 * 6 * 9 + 6),
        (VDSEN2, 2, 10 * 256 * 9 + 256 + 64 * (256 * 256 * 9 + 256) + 256 * 6 * 9 + 6),
        (DSEN2, 6, 12 * 128 * 9 + 128 + 12 * (128 * 128 * 9 + 128) + 128 * 2 * 9 + 2),
    ],
)
def test_parameter_counts_match_the_architecture(architecture, scale, expected) -> None:
    model = DSen2(scale, architecture.num_blocks, architecture.feature_size)
    assert parameter_count(model) == expected


def test_parameter_counts_match_the_paper() -> None:
    # The paper quotes 1.8 M weights for DSen2 and 37.8 M for VDSen2 (T2×).
    assert round(parameter_count(DSen2(2, 6, 128)) / 1e6, 1) == 1.8
    assert round(parameter_count(DSen2(2, 32, 256)) / 1e6, 1) == 37.8


def test_mac_count_and_receptive_field() -> None:
    model = DSen2(2, 6, 128)
    assert model.macs_per_px == 10 * 128 * 9 + 12 * 128 * 128 * 9 + 128 * 6 * 9  # ≈ 1.79 M
    assert model.receptive_field_px == 14 + 2
    assert DSen2(6, 6, 128).receptive_field_px == 14 + 6


def test_he_uniform_init_bounds() -> None:
    model = build(2, DSEN2, seed=1)
    weight = model.blocks[0].conv1.weight
    bound = (6 / (128 * 9)) ** 0.5
    assert weight.abs().max() <= bound
    assert weight.abs().max() > 0.95 * bound  # uniform over the whole range
    assert torch.count_nonzero(model.head.bias) == 0


def test_zeroed_baseline_is_exactly_bilinear_upsampling() -> None:
    model = zero_last_layer(build(6, DSEN2, seed=2)).eval()
    b10 = torch.rand(1, 4, 36, 36) * 4000
    b20 = torch.rand(1, 6, 18, 18) * 4000
    b60 = torch.rand(1, 2, 6, 6) * 4000
    expected = F.interpolate(b60, scale_factor=6.0, mode="bilinear", align_corners=False)
    with torch.no_grad():
        torch.testing.assert_close(model(b10, b20, b60), expected, atol=1e-3, rtol=0)


def test_long_skip_and_scaling_are_in_the_graph() -> None:
    model = DSen2(2, 1, 8).eval()
    b10 = torch.full((1, 4, 12, 12), 1000.0)
    b20 = torch.full((1, 6, 6, 6), 1000.0)
    with torch.no_grad():
        base = model(b10, b20)
        # Doubling all inputs changes the residual non-linearly but the skip exactly.
        model.tail.weight.zero_()
        model.tail.bias.fill_(0.5)  # +0.5 in normalised units = +1000 DN
        torch.testing.assert_close(model(b10, b20), torch.full_like(base, 2000.0))


@pytest.mark.parametrize("scale", [2, 6])
def test_consistency_layer_is_the_projection_onto_the_coarse_input(scale: int) -> None:
    """With ``consistent``, every scale×scale output block averages to its coarse input pixel,
    and the output is the plain network's output plus a correction constant on each block."""
    consistent = build(scale, Architecture("custom", 2, 16), seed=3, consistent=True).eval()
    plain = DSen2(scale, 2, 16).eval()
    plain.load_state_dict(consistent.state_dict())
    size = 36
    torch.manual_seed(4)
    b10 = torch.rand(1, 4, size, size) * 4000
    b20 = torch.rand(1, 6, size // 2, size // 2) * 4000
    b60 = torch.rand(1, 2, size // 6, size // 6) * 4000
    inputs = (b10, b20, b60) if scale == 6 else (b10, b20)
    with torch.no_grad():
        out, free = consistent(*inputs), plain(*inputs)
    coarse = inputs[-1]
    torch.testing.assert_close(F.avg_pool2d(out, scale), coarse, atol=1e-2, rtol=0)
    assert (F.avg_pool2d(free, scale) - coarse).abs().max() > 10  # the layer had work to do
    correction = out - free
    block_constant = F.interpolate(F.avg_pool2d(correction, scale), scale_factor=float(scale))
    torch.testing.assert_close(correction, block_constant, atol=1e-2, rtol=0)
    assert consistent.receptive_field_px == plain.receptive_field_px + scale - 1
