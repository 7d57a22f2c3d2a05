"""Tile plans on the 10 m grid and the halo each tile is read with (pure arithmetic)."""

from __future__ import annotations

import math
from dataclasses import dataclass

from dsen2.errors import WindowError
from dsen2.window import Window


@dataclass(frozen=True)
class TilePlan:
    """How an image window is cut into tiles.

    Attributes:
        image: the processed window, in pixels of the nested 10 m window.
        tile_size_px: edge of a full tile (a multiple of ``align_px``).
        align_px: every tile corner and size is a multiple of this (6: the 60 m pixel).
        receptive_field_px: the largest receptive field of the networks run.
        net_halo_px: context each tile carries into the network (≥ its receptive field).
        read_halo_px: context each tile is read with (network halo plus no-data fill reach).
    """

    image: Window
    tile_size_px: int
    align_px: int
    receptive_field_px: int
    net_halo_px: int
    read_halo_px: int

    def __post_init__(self) -> None:
        for name in ("tile_size_px", "net_halo_px", "read_halo_px"):
            if getattr(self, name) % self.align_px:
                raise ValueError(f"{name} must be a multiple of {self.align_px}")
        if self.read_halo_px < self.net_halo_px:
            raise ValueError("read_halo_px must be at least net_halo_px")

    @property
    def tiles(self) -> list[Window]:
        """Tiles in row-major order; the last row and column may be narrower."""
        step = self.tile_size_px
        image = self.image
        return [
            Window(col, row, min(step, image.col_end - col), min(step, image.row_end - row))
            for row in range(image.row_off, image.row_end, step)
            for col in range(image.col_off, image.col_end, step)
        ]


def round_up(value: int, multiple: int) -> int:
    return math.ceil(value / multiple) * multiple


def plan_tiles(
    image: Window, tile_size_px: int, align_px: int, receptive_field_px: int, fill_reach_px: int
) -> TilePlan:
    """Cut ``image`` into tiles of about ``tile_size_px`` with halos rounded up to ``align_px``.

    Raises:
        WindowError: if the tile size is smaller than one aligned block.
    """
    if tile_size_px < align_px:
        raise WindowError(
            f"tile size {tile_size_px} px is smaller than {align_px} px; use at least {align_px}"
        )
    if image.is_empty:
        raise WindowError(f"nothing to process: the window {image} is empty")
    net_halo_px = round_up(receptive_field_px, align_px)
    read_halo_px = round_up(receptive_field_px + fill_reach_px, align_px)
    return TilePlan(
        image=image,
        tile_size_px=tile_size_px // align_px * align_px,
        align_px=align_px,
        receptive_field_px=receptive_field_px,
        net_halo_px=net_halo_px,
        read_halo_px=read_halo_px,
    )
