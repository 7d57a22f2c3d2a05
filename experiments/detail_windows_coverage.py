"""How much of a partial tile's data the engine's detail-weight windows see (its model card)

    python experiments/detail_windows_coverage.py SCENE...

A scene's 60 m validity mask (a scene archive's ``b60`` or a product's B1 and B9; with the
stactools T29UNU pair, ``runs/data/T29UNU_s6x_pair.npz``, the ``target`` array: the full tile's
native 60 m bands) is taken as a full tile's, padded with no-data to 1830² px, and the windows
`dsen2.engine.detail_windows` places over the tile's 10980² px 10 m grid are counted: evenly
spread, and moved onto the data as the engine does. Prints, for each, how many of the 16
windows hold data and how many 60 m pixels with data they cover.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
import numpy.typing as npt

from dsen2.engine import detail_windows
from dsen2.evaluation import load_scene
from dsen2.window import Window

TILE_60M_PX = 1830


def validity_60m(source: Path) -> npt.NDArray[np.bool_]:
    """The 60 m pixels where B1 and B9 hold data."""
    if source.suffix == ".npz":
        with np.load(source) as archive:
            if "target" in archive.files:  # a ready-made training pair: its 60 m bands
                return np.asarray(np.all(archive["target"] != 0, axis=0))
    _, arrays = load_scene(source, {6})
    return np.asarray(np.all(arrays[6] != 0, axis=0))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("scenes", nargs="+", type=Path)
    args = parser.parse_args()
    tile = Window(0, 0, TILE_60M_PX * 6, TILE_60M_PX * 6)
    print("| scene | data share | windows | windows with data | 60 m px with data under them |")
    print("|---|---:|---|---:|---:|")
    for source in args.scenes:
        valid = validity_60m(source)[:TILE_60M_PX, :TILE_60M_PX]
        rows, cols = valid.shape
        valid = np.pad(valid, ((0, TILE_60M_PX - rows), (0, TILE_60M_PX - cols)))
        for name, windows in (
            ("even", detail_windows(tile)),
            ("moved", detail_windows(tile, valid)),
        ):
            counts = [
                int(valid[w.row_off // 6 : w.row_end // 6, w.col_off // 6 : w.col_end // 6].sum())
                for w in windows
            ]
            print(
                f"| {source.stem} | {valid.mean():.3f} | {name} | "
                f"{sum(c > 0 for c in counts)} of {len(windows)} | {sum(counts)} |"
            )


if __name__ == "__main__":
    main()
