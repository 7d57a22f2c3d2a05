"""Unpack the 78 BigEarthNet-S2 v1 patches that PyPI's configilm 0.4.0 sdist ships as mock data
into scene archives (dsen2.scene_archive), one per patch, for held-out validation (not in git).

    pip download --no-deps --no-binary :all: configilm==0.4.0 -d runs/dl
    tar -xzf runs/dl/configilm-0.4.0.tar.gz -C runs/dl
    pip install lmdb                                   # this script only; not a project dependency
    python experiments/prepare_bigearthnet_mock.py runs/dl/configilm-0.4.0 runs/data/ben-mock

The sdist's ``configilm/extra/mock_data/BigEarthNetEncoded.lmdb`` holds one pickled
``bigearthnet_patch_interface`` object per patch: 12 L2A bands (sen2cor, processing baseline
< 04.00, so no offset) at native GSD, 120² (10 m), 60² (20 m), 20² (60 m) px, nested, no
georeferencing. The pickles are read with a restricted unpickler: numpy arrays load, and every
class of the encoder's own packages becomes a plain attribute holder, so neither
package (nor anything else the file might name) is imported.

Patches whose satellite and sensing date equal those of a BigEarthNet patch the 2× network trained
on or validated with (``../shared/data/bigearthnet_common``) are left out: the rest share no
acquisition with the shipped models' data. Their names are printed.
"""

from __future__ import annotations

import io
import pickle
import re
import sys
from pathlib import Path
from typing import Any

import numpy as np

from dsen2.bands import BANDS_10M, BANDS_20M, BANDS_60M
from dsen2.scene_archive import write_scene_archive

ROOT = Path(__file__).resolve().parents[1]

SHARED_BEN = ROOT.parent / "shared" / "data" / "bigearthnet_common"
LMDB_PATH = Path("configilm") / "extra" / "mock_data" / "BigEarthNetEncoded.lmdb"
# what the file's pickles need of numpy, and nothing else outside the encoder's own classes
_NUMPY_GLOBALS = {
    ("numpy", "dtype"),
    ("numpy", "ndarray"),
    ("numpy.core.multiarray", "_reconstruct"),
}


class _Holder:
    """Stands in for any pickled class of the encoder's packages: keeps its state as attributes."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        self.__dict__.update(kwargs)

    def __setstate__(self, state: Any) -> None:
        parts = state if isinstance(state, tuple) else (state,)
        for part in parts:
            if isinstance(part, dict):
                self.__dict__.update(part.get("__dict__", part))


class _RestrictedUnpickler(pickle.Unpickler):
    def find_class(self, module: str, name: str) -> Any:
        if (module, name) in _NUMPY_GLOBALS:
            return super().find_class(module, name)
        if module.startswith(("bigearthnet", "pydantic")):
            return type(name, (_Holder,), {})
        raise pickle.UnpicklingError(f"refusing to load {module}.{name}")


def acquisition(patch_name: str) -> str:
    """``S2B_20170924``: satellite and sensing date of a BigEarthNet v1 patch name."""
    match = re.match(r"(S2[AB])_MSIL2A_(\d{8})T", patch_name)
    if match is None:
        raise ValueError(f"not a BigEarthNet v1 patch name: {patch_name}")
    return f"{match[1]}_{match[2]}"


def used_acquisitions() -> set[str]:
    names = [p.name for p in SHARED_BEN.glob("*/S2*")] if SHARED_BEN.is_dir() else []
    if not names:
        raise SystemExit(f"{SHARED_BEN} is missing: it names the acquisitions to leave out")
    return {acquisition(name) for name in names}


def patch_bands(record: bytes) -> dict[str, np.ndarray]:
    patch = _RestrictedUnpickler(io.BytesIO(record)).load()
    s2 = patch.__dict__["s2_patch"].__dict__
    bands = {}
    for key, band in s2.items():
        if key.startswith("band") and key != "bands":
            fields = band.__dict__
            bands[str(fields["name"])] = np.asarray(fields["data"])
    return bands


def to_archive_arrays(bands: dict[str, np.ndarray]) -> dict[int, np.ndarray]:
    def stack(names: tuple[str, ...]) -> np.ndarray:
        return np.stack([bands[n.replace("B", "B0") if len(n) == 2 else n] for n in names])

    return {
        1: stack(BANDS_10M).astype(np.float32),
        2: stack(BANDS_20M).astype(np.float32),
        6: stack(BANDS_60M).astype(np.float32),
    }


def main() -> None:
    import lmdb  # an experiment-only dependency: pip install lmdb

    sdist, out = Path(sys.argv[1]), Path(sys.argv[2])
    out.mkdir(parents=True, exist_ok=True)
    skip = used_acquisitions()
    kept, left_out = [], []
    env = lmdb.open(str(sdist / LMDB_PATH), readonly=True, lock=False)
    with env.begin() as txn:
        for key, record in txn.cursor():
            name = key.decode()
            if acquisition(name) in skip:
                left_out.append(name)
                continue
            write_scene_archive(out / f"{name}.npz", to_archive_arrays(patch_bands(record)))
            kept.append(name)
    env.close()
    print(f"{len(kept)} patches written to {out}; {len(left_out)} left out (shared acquisition):")
    print("\n".join(f"  {name}" for name in left_out))


if __name__ == "__main__":
    main()
