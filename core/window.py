"""Pixel windows: immutable rectangles in a raster's pixel coordinates (pure arithmetic, no I/O)."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Window:
    """A rectangle of pixels: ``col_off``/``row_off`` of the upper-left pixel, then its size."""

    col_off: int
    row_off: int
    width: int
    height: int

    def __post_init__(self) -> None:
        if self.width < 0 or self.height < 0:
            raise ValueError(f"window size must not be negative: {self}")

    def __str__(self) -> str:
        """For messages: the columns and rows covered, ends exclusive."""
        return f"cols {self.col_off}..{self.col_end}, rows {self.row_off}..{self.row_end}"

    @property
    def col_end(self) -> int:
        return self.col_off + self.width

    @property
    def row_end(self) -> int:
        return self.row_off + self.height

    @property
    def is_empty(self) -> bool:
        return self.width == 0 or self.height == 0

    def intersection(self, other: Window) -> Window:
        """The overlap of two windows (empty, at this window's origin, when they do not meet)."""
        col_off = max(self.col_off, other.col_off)
        row_off = max(self.row_off, other.row_off)
        col_end = min(self.col_end, other.col_end)
        row_end = min(self.row_end, other.row_end)
        if col_end <= col_off or row_end <= row_off:
            return Window(self.col_off, self.row_off, 0, 0)
        return Window(col_off, row_off, col_end - col_off, row_end - row_off)

    def shifted(self, col_px: int, row_px: int) -> Window:
        return Window(self.col_off + col_px, self.row_off + row_px, self.width, self.height)

    def grown(self, margin_px: int) -> Window:
        """The window enlarged by ``margin_px`` on every side."""
        return Window(
            self.col_off - margin_px,
            self.row_off - margin_px,
            self.width + 2 * margin_px,
            self.height + 2 * margin_px,
        )

    def scaled(self, factor: int) -> Window:
        """The same area on a grid ``factor`` times finer."""
        return Window(
            self.col_off * factor, self.row_off * factor, self.width * factor, self.height * factor
        )

    def divided(self, factor: int) -> Window:
        """The same area on a grid ``factor`` times coarser (every coordinate must divide)."""
        values = (self.col_off, self.row_off, self.width, self.height)
        if any(value % factor for value in values):
            raise ValueError(f"{self} is not aligned to multiples of {factor}")
        return Window(*(value // factor for value in values))
