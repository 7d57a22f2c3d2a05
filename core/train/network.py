"""DSen2 and VDSen2 (Lanaras et al. 2018, Algorithm 1, Sec. 4.3–4.4) as PyTorch modules.

The module is a complete function of native-resolution DN arrays (reflectance × 10000): the
bilinear upsampling of the coarse bands, the division by 2000, the long additive skip and the
multiplication back all live inside it, so its ONNX export needs no pre- or post-processing.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F  # noqa: N812  (the conventional alias)
from torch import nn

from dsen2.bands import BANDS_10M, BANDS_20M, BANDS_20M_TO_5M, BANDS_60M, OUTPUT_5M

INPUT_SCALE_DN = 2000.0
DETAIL_GAIN_STEP = 100.0  # the detail gain's scale over its stored parameter (DSen2)


@dataclass(frozen=True)
class Architecture:
    """Depth and width of a DSen2-style network."""

    name: str
    num_blocks: int
    feature_size: int


DSEN2 = Architecture("DSen2", num_blocks=6, feature_size=128)
VDSEN2 = Architecture("VDSen2", num_blocks=32, feature_size=256)


def he_uniform_(network: nn.Module) -> None:
    """He-uniform weights (Keras ``he_uniform``: U(±sqrt(6/fan_in))), zero biases."""
    for module in network.modules():
        if isinstance(module, nn.Conv2d):
            nn.init.kaiming_uniform_(module.weight, a=0.0, nonlinearity="relu")
            if module.bias is not None:
                nn.init.zeros_(module.bias)


def conv_macs_per_px(network: nn.Module) -> int:
    """Multiply-adds of all 3×3 convolutions per pixel of the grid they run on."""
    return sum(
        m.in_channels * m.out_channels * m.kernel_size[0] * m.kernel_size[1]
        for m in network.modules()
        if isinstance(m, nn.Conv2d)
    )


class ResBlock(nn.Module):
    """conv3×3 → ReLU → conv3×3 → ×residual_scale → + input."""

    def __init__(self, feature_size: int, residual_scale: float) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(feature_size, feature_size, 3, padding=1)
        self.conv2 = nn.Conv2d(feature_size, feature_size, 3, padding=1)
        self.residual_scale = residual_scale

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.conv2(F.relu(self.conv1(x))) * self.residual_scale


def block_means(x: torch.Tensor, factor: int) -> torch.Tensor:
    """Each pixel replaced by the mean of its ``factor``×``factor`` block (same shape)."""
    return F.interpolate(F.avg_pool2d(x, factor), scale_factor=float(factor), mode="nearest")


def block_consistent(
    residual: torch.Tensor, skip: torch.Tensor, coarse: torch.Tensor, factor: int
) -> tuple[torch.Tensor, torch.Tensor]:
    """The hard consistency layer: (residual, skip) such that ``residual + skip / s`` is the
    orthogonal projection of the network's output onto the images whose ``factor``×``factor``
    block means equal ``coarse``.

    The projection ``out + up(coarse − mean(out))`` is split along the long skip, by linearity:
    the residual loses its block means, and the skip (the bilinear upsampling, in DN) gets the
    correction that makes its block means equal ``coarse``. So the graph still ends in
    ``(residual + skip / s) × s``, with the skip side computed from the inputs alone (what
    ``dsen2.bf16`` keeps in fp32). ``residual`` is in network units, ``skip`` and ``coarse`` in
    DN; ``coarse`` is ``skip``'s grid divided by ``factor``.
    """
    up = F.interpolate(coarse, scale_factor=float(factor), mode="nearest")
    return residual - block_means(residual, factor), skip + up - block_means(skip, factor)


class DSen2(nn.Module):
    """The DSen2 network for one scale.

    Args:
        scale: 2 (T2×: 20 m → 10 m, outputs B5 B6 B7 B8A B11 B12) or 6 (S6×: 60 m → 10 m,
            outputs B1 B9).
        num_blocks: number of ResBlocks d (6 for DSen2, 32 for VDSen2).
        feature_size: feature channels f (128 for DSen2, 256 for VDSen2).
        residual_scale: factor on each ResBlock's residual (0.1 in the paper).
        consistent: end in the block-mean consistency layer (:func:`block_consistent`): every
            scale×scale block of an output band then averages exactly to the input coarse pixel.
        detail_weights: take the scene's detail weights (dsen2.detail; ``w60`` [N, 2, 4] at 6×,
            ``w20`` [N, 6, 4] at 2×) as a last input: the weighted sum of the 10 m bands, less
            its scale×scale block means, enters the head as one more channel per output band
            and, times a learned gain per band, the skip. Both start at zero, so a network
            fine-tuned into this shape starts as the network it was.
    """

    def __init__(
        self,
        scale: int,
        num_blocks: int = 6,
        feature_size: int = 128,
        residual_scale: float = 0.1,
        consistent: bool = False,
        detail_weights: bool = False,
    ) -> None:
        super().__init__()
        if scale not in (2, 6):
            raise ValueError(f"scale must be 2 or 6, got {scale}")
        self.scale = scale
        self.num_blocks = num_blocks
        self.feature_size = feature_size
        self.consistent = consistent
        self.detail_weights = detail_weights
        in_bands = len(BANDS_10M) + len(BANDS_20M) + (len(BANDS_60M) if scale == 6 else 0)
        self.out_bands = len(BANDS_20M) if scale == 2 else len(BANDS_60M)
        self.input_scale: torch.Tensor
        self.register_buffer("input_scale", torch.tensor(INPUT_SCALE_DN))
        self.head = nn.Conv2d(in_bands, feature_size, 3, padding=1)
        self.blocks = nn.Sequential(
            *(ResBlock(feature_size, residual_scale) for _ in range(num_blocks))
        )
        self.tail = nn.Conv2d(feature_size, self.out_bands, 3, padding=1)
        if detail_weights:
            self.detail_head = nn.Conv2d(self.out_bands, feature_size, 3, padding=1)
            # the gain is stored ÷ DETAIL_GAIN_STEP: Adam-type optimisers move a parameter by
            # about the learning rate per step, which would take this one gain thousands of steps
            # to reach O(1); stored this way it moves 100× faster than the convolutions' weights
            self.detail_gain = nn.Parameter(torch.zeros(1, self.out_bands, 1, 1))
        self.reset_parameters()

    def reset_parameters(self) -> None:
        he_uniform_(self)
        if self.detail_weights:
            with torch.no_grad():
                self.detail_head.weight.zero_()
                if self.detail_head.bias is not None:
                    self.detail_head.bias.zero_()
                self.detail_gain.zero_()

    def forward(self, b10: torch.Tensor, b20: torch.Tensor, *rest: torch.Tensor) -> torch.Tensor:
        """Super-resolve. Inputs in DN, in the graph's order (ModelMetadata.graph_inputs):
        b10 [N,4,H,W], b20 [N,6,H/2,W/2], at 6× b60 [N,2,H/6,W/6], then for networks built with
        ``detail_weights`` the scene's detail weights [N, output bands, 4]."""
        expected = (1 if self.scale == 6 else 0) + (1 if self.detail_weights else 0)
        if len(rest) != expected:
            needs = ["b60"] if self.scale == 6 else []
            needs += ["the scene's detail weights"] if self.detail_weights else []
            raise ValueError(f"the {self.scale}× network takes b10, b20, {', '.join(needs)}")
        up20 = F.interpolate(b20, scale_factor=2.0, mode="bilinear", align_corners=False)
        parts = [b10, up20]
        if self.scale == 6:
            b60 = rest[0]
            up60 = F.interpolate(b60, scale_factor=6.0, mode="bilinear", align_corners=False)
            parts.append(up60)
            coarse, skip = b60, up60
        else:
            coarse, skip = b20, up20
        x = torch.cat(parts, dim=1) / self.input_scale
        features = self.head(x)
        if self.detail_weights:
            weighted = torch.einsum("nbk,nkhw->nbhw", rest[-1], b10)
            detail = weighted - block_means(weighted, self.scale)  # zero mean on every block
            features = features + self.detail_head(detail / self.input_scale)
        y = self.tail(self.blocks(F.relu(features)))
        if self.consistent:
            y, skip = block_consistent(y, skip, coarse, self.scale)
        if self.detail_weights:
            skip = skip + self.detail_gain * (detail * DETAIL_GAIN_STEP)  # gain stays a weight
        return (y + skip / self.input_scale) * self.input_scale

    @property
    def conv_layers(self) -> int:
        return 2 + 2 * self.num_blocks

    @property
    def receptive_field_px(self) -> int:
        """Reach in 10 m pixels: one per 3×3 conv, plus one coarse pixel for the bilinear step
        (and the rest of the pixel's block for the consistency layer)."""
        return self.conv_layers + self.scale + (self.scale - 1 if self.consistent else 0)

    @property
    def macs_per_px(self) -> int:
        """Multiply-adds per output 10 m pixel."""
        return conv_macs_per_px(self)


class DSen2To5m(nn.Module):
    """A DSen2-style network to 5 m (scale 4), for SEN2VENµS's VENµS references.

    One joint network: B2 B3 B4 B8 (10 m, upsampled 2×) and B5 B6 B7 B8A (20 m, upsampled 4×) are
    bilinearly brought to 5 m, concatenated and refined together, with the long skip from the
    upsampled bands; the output is all eight bands at 5 m. Joint, because the 20 m bands gain
    most from the 10 m bands' detail and the 10 m bands share the spectral context, in one pass.
    Same blocks, scaling and He-uniform init as :class:`DSen2`; the convolutions run at 5 m.
    """

    scale = 4
    detail_weights = False  # scene detail weights are an input of the 2× and 6× networks

    def __init__(
        self, num_blocks: int = 6, feature_size: int = 128, residual_scale: float = 0.1
    ) -> None:
        super().__init__()
        self.num_blocks = num_blocks
        self.feature_size = feature_size
        self.out_bands = len(OUTPUT_5M)
        self.input_scale: torch.Tensor
        self.register_buffer("input_scale", torch.tensor(INPUT_SCALE_DN))
        self.head = nn.Conv2d(len(BANDS_10M) + len(BANDS_20M_TO_5M), feature_size, 3, padding=1)
        self.blocks = nn.Sequential(
            *(ResBlock(feature_size, residual_scale) for _ in range(num_blocks))
        )
        self.tail = nn.Conv2d(feature_size, self.out_bands, 3, padding=1)
        he_uniform_(self)

    def forward(self, b10: torch.Tensor, b20: torch.Tensor) -> torch.Tensor:
        """Inputs in DN: b10 [N,4,H,W], b20 [N,4,H/2,W/2]; output [N,8,2H,2W] in DN."""
        up10 = F.interpolate(b10, scale_factor=2.0, mode="bilinear", align_corners=False)
        up20 = F.interpolate(b20, scale_factor=4.0, mode="bilinear", align_corners=False)
        skip = torch.cat([up10, up20], dim=1) / self.input_scale
        y = self.tail(self.blocks(F.relu(self.head(skip))))
        return (y + skip) * self.input_scale

    @property
    def conv_layers(self) -> int:
        return 2 + 2 * self.num_blocks

    @property
    def receptive_field_px(self) -> int:
        """Reach in 10 m pixels: half a 10 m pixel per 3×3 conv at 5 m, plus one 20 m pixel."""
        return math.ceil(self.conv_layers / 2) + 2

    @property
    def macs_per_px(self) -> int:
        """Multiply-adds per output 5 m pixel."""
        return conv_macs_per_px(self)


Network = DSen2 | DSen2To5m


def build(
    scale: int,
    architecture: Architecture = DSEN2,
    seed: int | None = 0,
    consistent: bool = False,
    detail_weights: bool = False,
) -> Network:
    """A freshly initialised network for ``scale`` 2, 6 or 4 (5 m), seeded for reproducibility;
    ``consistent`` adds the block-mean consistency layer (2× and 6× only), ``detail_weights``
    the scene detail weights input (2× and 6×)."""
    if seed is not None:
        torch.manual_seed(seed)
    if scale == DSen2To5m.scale:
        if consistent or detail_weights:
            raise ValueError("consistent and detail_weights are for the 2× and 6× networks")
        return DSen2To5m(architecture.num_blocks, architecture.feature_size)
    return DSen2(
        scale,
        architecture.num_blocks,
        architecture.feature_size,
        consistent=consistent,
        detail_weights=detail_weights,
    )


def zero_last_layer(model: Network) -> Network:
    """Make ``model`` the honest untrained baseline: output = in-graph bilinear upsampling."""
    with torch.no_grad():
        model.tail.weight.zero_()
        if model.tail.bias is not None:
            model.tail.bias.zero_()
    return model


def parameter_count(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())
