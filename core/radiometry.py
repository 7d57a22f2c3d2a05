"""Radiometric conventions: product DN ↔ what the networks see ↔ reflectance.

Sentinel-2 products store ``DN = reflectance × QUANTIFICATION_VALUE − offset``, where the
offset is RADIO_ADD_OFFSET (L1C) or BOA_ADD_OFFSET (L2A): −1000 from processing baseline 04.00
(January 2022), absent (0) before. The networks always see ``reflectance × 10000``.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType

import numpy as np
import numpy.typing as npt

NETWORK_SCALE = 10000.0
UINT16_MAX = 65535


@dataclass(frozen=True)
class Radiometry:
    """How a product's DN relate to reflectance.

    Attributes:
        quantification: QUANTIFICATION_VALUE (L1C) or BOA_QUANTIFICATION_VALUE (L2A).
        offsets_dn: additive offset per band name (RADIO_ADD_OFFSET / BOA_ADD_OFFSET), in DN.
        source: where the values came from, e.g. ``"MTD_MSIL2A.xml"`` or ``"assumed"``.
    """

    quantification: float = NETWORK_SCALE
    offsets_dn: Mapping[str, float] = field(default_factory=dict)
    source: str = "assumed"

    def __post_init__(self) -> None:
        if self.quantification <= 0:
            raise ValueError(f"quantification must be positive, got {self.quantification}")
        object.__setattr__(self, "offsets_dn", MappingProxyType(dict(self.offsets_dn)))

    def offset(self, band: str) -> float:
        return float(self.offsets_dn.get(band, 0.0))

    def to_network(
        self, dn: npt.NDArray[np.generic], bands: tuple[str, ...]
    ) -> npt.NDArray[np.float32]:
        """Product DN [bands, ...] → reflectance × 10000 (float32)."""
        out = dn.astype(np.float32)
        gain = np.float32(NETWORK_SCALE / self.quantification)
        for index, band in enumerate(bands):
            out[index] += np.float32(self.offset(band))
            out[index] *= gain
        return out

    def network_range(self, band: str) -> tuple[float, float]:
        """The lowest and highest values the product's DN can hold (DN 1, as 0 is no-data, to
        65535), in network units (reflectance × 10000)."""
        gain = NETWORK_SCALE / self.quantification
        return ((1 + self.offset(band)) * gain, (UINT16_MAX + self.offset(band)) * gain)

    def network_to_dn(
        self, values: npt.NDArray[np.float32], bands: tuple[str, ...], valid: npt.NDArray[np.bool_]
    ) -> npt.NDArray[np.uint16]:
        """Reflectance × 10000 → product DN as uint16: rounded, clipped to [1, 65535] where
        valid (0 is no-data, never a valid value), 0 where not valid. Never wraps."""
        gain = np.float32(self.quantification / NETWORK_SCALE)
        out = np.empty(values.shape, dtype=np.uint16)
        for index, band in enumerate(bands):
            dn = np.rint(values[index] * gain - np.float32(self.offset(band)))
            np.clip(dn, 1, UINT16_MAX, out=dn)
            out[index] = np.where(valid, dn, 0)
        return out

    def network_to_reflectance(
        self, values: npt.NDArray[np.float32], bands: tuple[str, ...], valid: npt.NDArray[np.bool_]
    ) -> npt.NDArray[np.float32]:
        """Reflectance × 10000 → reflectance (float32), NaN where not valid; clipped, as
        :meth:`network_to_dn` clips, to what the product's DN can hold ((1 + offset) /
        quantification up, e.g. 0.0001, or −0.0999 with the −1000 offset of baseline 04.00),
        so the two outputs of one run agree."""
        out = np.empty(values.shape, dtype=np.float32)
        for index, band in enumerate(bands):
            low, high = self.network_range(band)
            out[index] = np.clip(values[index], low, high) / np.float32(NETWORK_SCALE)
        out[:, ~valid] = np.nan
        return out

    def dn_to_reflectance(
        self, dn: npt.NDArray[np.generic], bands: tuple[str, ...]
    ) -> npt.NDArray[np.float32]:
        """Product DN → reflectance (float32), NaN where DN is 0 (no-data)."""
        values = self.to_network(dn, bands) / np.float32(NETWORK_SCALE)
        values[dn == 0] = np.nan
        return values


def lifted_to_floor(
    values: npt.NDArray[np.float32],
    floor: float,
    block_px: int,
    valid: npt.NDArray[np.bool_] | None = None,
) -> npt.NDArray[np.float32]:
    """``values`` [rows, cols] with every pixel below ``floor`` raised to it, the difference
    taken from the pixels above it in the same ``block_px``² block in proportion to how far
    they lie above, so each block (one input pixel of a coarser band) keeps its mean: a network
    that undershoots next to strong detail neither leaves values the product cannot hold nor
    loses the consistency of its block means. A block whose mean is below ``floor``, or one
    holding a pixel outside ``valid`` (its mean mixes in a prediction made on filled no-data),
    is only clipped. Blocks with nothing below ``floor`` are returned unchanged."""
    below = values < floor
    if valid is not None:
        below &= valid
    if not below.any():  # the common case, checked cheaply
        return values
    rows, cols = values.shape
    shape = (rows // block_px, block_px, cols // block_px, block_px)
    hit = np.nonzero(below.reshape(shape).any(axis=(1, 3)))  # only blocks with an undershoot
    blocks = values.reshape(shape).transpose(0, 2, 1, 3)[hit].astype(np.float64)  # [k, b, b]
    excess = blocks - floor
    deficit = np.clip(-excess, 0, None).sum(axis=(1, 2), keepdims=True)
    surplus = np.clip(excess, 0, None)
    total = surplus.sum(axis=(1, 2), keepdims=True)
    kept = np.clip(1 - deficit / np.where(total > 0, total, 1), 0, None)
    lifted = floor + surplus * kept
    if valid is not None:
        whole = valid.reshape(shape).transpose(0, 2, 1, 3)[hit].all(axis=(1, 2), keepdims=True)
        lifted = np.where(whole, lifted, np.maximum(blocks, floor))
    out = values.copy()
    out.reshape(shape).transpose(0, 2, 1, 3)[hit] = lifted
    return out
