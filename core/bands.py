"""The Sentinel-2 MSI bands: names, native ground sampling distance and wavelengths.

Band ids follow the product specification's order (``band_id`` 0..12 in the metadata XML).
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from dsen2.errors import ProductFormatError


@dataclass(frozen=True)
class Band:
    """One MSI band.

    Attributes:
        name: canonical name, e.g. ``"B8A"`` or ``"B05"`` is written ``"B5"``.
        band_id: index used by the product metadata (``band_id`` attribute), 0..12.
        gsd_m: native ground sampling distance in metres (10, 20 or 60).
        central_wavelength_nm: central wavelength of Sentinel-2A, rounded to nm.
    """

    name: str
    band_id: int
    gsd_m: int
    central_wavelength_nm: int

    def __post_init__(self) -> None:
        if self.gsd_m not in (10, 20, 60):
            raise ValueError(f"gsd_m must be 10, 20 or 60, got {self.gsd_m}")

    @property
    def description(self) -> str:
        """Human-readable label used as raster band description, e.g. ``"B5 (705 nm)"``."""
        return f"{self.name} ({self.central_wavelength_nm} nm)"

    @property
    def file_token(self) -> str:
        """The zero-padded token used in product file names, e.g. ``"B05"``, ``"B8A"``."""
        return self.name if self.name == "B8A" else f"B{int(self.name[1:]):02d}"


ALL_BANDS: tuple[Band, ...] = (
    Band("B1", 0, 60, 443),
    Band("B2", 1, 10, 490),
    Band("B3", 2, 10, 560),
    Band("B4", 3, 10, 665),
    Band("B5", 4, 20, 705),
    Band("B6", 5, 20, 740),
    Band("B7", 6, 20, 783),
    Band("B8", 7, 10, 842),
    Band("B8A", 8, 20, 865),
    Band("B9", 9, 60, 945),
    Band("B10", 10, 60, 1375),
    Band("B11", 11, 20, 1610),
    Band("B12", 12, 20, 2190),
)

BY_NAME: dict[str, Band] = {band.name: band for band in ALL_BANDS}

# Network input/output groups, in the order the ONNX contract fixes.
BANDS_10M: tuple[str, ...] = ("B2", "B3", "B4", "B8")
BANDS_20M: tuple[str, ...] = ("B5", "B6", "B7", "B8A", "B11", "B12")
BANDS_60M: tuple[str, ...] = ("B1", "B9")
# The same groups by grid factor relative to 10 m (the networks' input roles 1, 2 and 6).
BANDS_BY_GRID: dict[int, tuple[str, ...]] = {1: BANDS_10M, 2: BANDS_20M, 6: BANDS_60M}

# Output order of the full cube: B10 (cirrus) is excluded, as in the paper.
OUTPUT_ALL: tuple[str, ...] = (
    "B1",
    "B2",
    "B3",
    "B4",
    "B5",
    "B6",
    "B7",
    "B8",
    "B8A",
    "B9",
    "B11",
    "B12",
)
OUTPUT_20M: tuple[str, ...] = BANDS_20M

# The 5 m models (trained on SEN2VENµS, whose VENµS references cover eight bands): inputs B2 B3 B4
# B8 at 10 m and B5 B6 B7 B8A at 20 m, output all eight at 5 m.
BANDS_20M_TO_5M: tuple[str, ...] = ("B5", "B6", "B7", "B8A")
OUTPUT_5M: tuple[str, ...] = BANDS_10M + BANDS_20M_TO_5M

_BAND_TOKEN = re.compile(r"(?<![A-Za-z0-9])B(8A|0?[1-9]|1[0-2])(?![A-Za-z0-9])", re.IGNORECASE)


def band_in_filename(filename: str) -> str | None:
    """Return the canonical band name found in a file name, or None.

    Accepts ``B02``, ``B2``, ``B8A`` (any case) delimited by non-alphanumerics, as in
    ``T33UUU_20170216T102101_B02.jp2``, ``s2_B8A.jp2`` or ``..._B05_20m.jp2``.

    Raises:
        ProductFormatError: if the name holds two different band tokens.
    """
    found = {_canonical(match.group(1)) for match in _BAND_TOKEN.finditer(filename)}
    if len(found) > 1:
        raise ProductFormatError(
            f"file name {filename!r} names several bands ({', '.join(sorted(found))}); "
            "rename it so it holds exactly one band id"
        )
    return found.pop() if found else None


def _canonical(token: str) -> str:
    token = token.upper()
    return "B8A" if token == "8A" else f"B{int(token)}"
