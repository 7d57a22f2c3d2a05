"""Georeferenced pixel grids and how the 10/20/60 m grids nest (pure arithmetic, no I/O)."""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass

from dsen2.errors import GridError
from dsen2.window import Window

_TOLERANCE_PX = 1e-3


@dataclass(frozen=True)
class Grid:
    """A north-up grid of square pixels.

    Attributes:
        x_origin_m, y_origin_m: map coordinates of the upper-left corner of pixel (0, 0).
        pixel_size_m: pixel edge length in map units (positive).
        width_px, height_px: raster size.
    """

    x_origin_m: float
    y_origin_m: float
    pixel_size_m: float
    width_px: int
    height_px: int

    def __post_init__(self) -> None:
        if self.pixel_size_m <= 0:
            raise ValueError(f"pixel_size_m must be positive, got {self.pixel_size_m}")

    @classmethod
    def from_geotransform(
        cls, geotransform: tuple[float, ...], width_px: int, height_px: int, name: str
    ) -> Grid:
        """Build a grid from a GDAL geotransform, refusing rotated or non-square pixels."""
        x0, dx, rx, y0, ry, dy = geotransform
        if rx != 0 or ry != 0 or dx <= 0 or dy >= 0 or not math.isclose(dx, -dy, rel_tol=1e-9):
            raise GridError(
                f"{name}: geotransform {geotransform} is not a north-up grid of square pixels; "
                "warp it to its UTM zone first (gdalwarp)"
            )
        return cls(x0, y0, dx, width_px, height_px)

    @property
    def geotransform(self) -> tuple[float, float, float, float, float, float]:
        return (self.x_origin_m, self.pixel_size_m, 0.0, self.y_origin_m, 0.0, -self.pixel_size_m)

    def window_of_bounds(
        self, x_min_m: float, y_min_m: float, x_max_m: float, y_max_m: float
    ) -> Window:
        """The smallest window of whole pixels covering a map rectangle (in this grid's CRS).

        Not clipped to the raster: the engine clips a region of interest and reports one that
        misses the image.
        """
        col_off = math.floor((x_min_m - self.x_origin_m) / self.pixel_size_m + _TOLERANCE_PX)
        row_off = math.floor((self.y_origin_m - y_max_m) / self.pixel_size_m + _TOLERANCE_PX)
        col_end = math.ceil((x_max_m - self.x_origin_m) / self.pixel_size_m - _TOLERANCE_PX)
        row_end = math.ceil((self.y_origin_m - y_min_m) / self.pixel_size_m - _TOLERANCE_PX)
        return Window(col_off, row_off, max(col_end - col_off, 0), max(row_end - row_off, 0))

    def refined(self, factor: int) -> Grid:
        """The same area with pixels ``factor`` times smaller (e.g. 10 m → 5 m for 2)."""
        return Grid(
            self.x_origin_m,
            self.y_origin_m,
            self.pixel_size_m / factor,
            self.width_px * factor,
            self.height_px * factor,
        )

    def sub_grid(self, window: Window) -> Grid:
        """The grid of a window of this grid."""
        return Grid(
            self.x_origin_m + window.col_off * self.pixel_size_m,
            self.y_origin_m - window.row_off * self.pixel_size_m,
            self.pixel_size_m,
            window.width,
            window.height,
        )


@dataclass(frozen=True)
class Nesting:
    """Where every band's grid sits on the reference 10 m grid.

    ``window_10m`` is a window of the reference grid whose corners lie on pixel corners of every
    band's grid, with a size divisible by ``align_px`` (the largest such window); ``band_windows``
    gives the same area in each band's own pixels.
    """

    window_10m: Window
    align_px: int
    band_windows: dict[str, Window]


def nest(reference: Grid, grids: Mapping[str, tuple[int, Grid]]) -> Nesting:
    """Find the largest window of ``reference`` on which all band grids nest exactly.

    Args:
        reference: grid of one 10 m band.
        grids: each band's (factor, grid), factor 1 for 10 m bands, 2 for 20 m, 6 for 60 m.

    Raises:
        GridError: pixel sizes are not in ratio, corners do not fall on 10 m corners, the
            grids disagree in phase, or they do not overlap.
    """
    align_px = math.lcm(1, *(factor for factor, _ in grids.values()))
    col_lo, row_lo = 0, 0
    col_hi, row_hi = reference.width_px, reference.height_px
    offsets: dict[str, tuple[int, int, int]] = {}
    for band, (factor, grid) in grids.items():
        ratio = grid.pixel_size_m / reference.pixel_size_m
        if abs(ratio - factor) > _TOLERANCE_PX:
            raise GridError(
                f"band {band} has {grid.pixel_size_m:g} m pixels, {ratio:.3f}× the 10 m bands' "
                f"{reference.pixel_size_m:g} m; a Sentinel-2 {factor * 10} m band needs exactly "
                f"{factor}× (is this a Sentinel-2 product at native resolution?)"
            )
        col = _whole_pixels(grid.x_origin_m - reference.x_origin_m, reference, band, "x")
        row = _whole_pixels(reference.y_origin_m - grid.y_origin_m, reference, band, "y")
        offsets[band] = (factor, col, row)
        col_lo, row_lo = max(col_lo, col), max(row_lo, row)
        col_hi = min(col_hi, col + factor * grid.width_px)
        row_hi = min(row_hi, row + factor * grid.height_px)
    col_phase = _common_phase([(b, col, f) for b, (f, col, _) in offsets.items()], "column")
    row_phase = _common_phase([(b, row, f) for b, (f, _, row) in offsets.items()], "row")
    col_off = col_lo + (col_phase - col_lo) % align_px
    row_off = row_lo + (row_phase - row_lo) % align_px
    width = (col_hi - col_off) // align_px * align_px
    height = (row_hi - row_off) // align_px * align_px
    if width <= 0 or height <= 0:
        raise GridError(
            "the bands do not overlap on a common nested area of at least "
            f"{align_px}×{align_px} 10 m pixels; check that they belong to one product"
        )
    window_10m = Window(col_off, row_off, width, height)
    band_windows = {
        band: window_10m.shifted(-col, -row).divided(factor)
        for band, (factor, col, row) in offsets.items()
    }
    return Nesting(window_10m, align_px, band_windows)


def _whole_pixels(distance_m: float, reference: Grid, band: str, axis: str) -> int:
    pixels = distance_m / reference.pixel_size_m
    nearest = round(pixels)
    if abs(pixels - nearest) > _TOLERANCE_PX:
        raise GridError(
            f"band {band}'s {axis} origin is {pixels:.3f} pixels from the 10 m grid's: "
            "its pixel corners do not fall on 10 m pixel corners, so the bands do not nest. "
            "dsen2 never resamples silently; supply bands on the original Sentinel-2 tile grid"
        )
    return nearest


def _common_phase(offsets: list[tuple[str, int, int]], axis: str) -> int:
    """The smallest non-negative offset congruent to every (offset mod factor), over each
    band's (name, offset in 10 m pixels, factor)."""
    phase, modulus = 0, 1
    for index, (band, offset, factor) in enumerate(offsets):
        for candidate in range(phase, phase + math.lcm(modulus, factor), modulus):
            if (candidate - offset) % factor == 0:
                phase, modulus = candidate, math.lcm(modulus, factor)
                break
        else:
            starts = ", ".join(f"{b} {o}" for b, o, _ in offsets)
            raise GridError(
                f"band {band}'s {factor * 10} m pixels are out of {axis} phase with "
                f"{', '.join(b for b, _, _ in offsets[:index])}: their pixel corners do not "
                f"meet, so the bands do not nest (grid starts in 10 m pixels: {starts}). dsen2 "
                "never resamples silently; supply bands on the original Sentinel-2 tile grid"
            )
    return phase % modulus
