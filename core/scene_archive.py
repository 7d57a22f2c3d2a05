"""Scene archives: one scene's nested bands in a single ``.npz``, readable without GDAL.

An archive holds ``b10`` [4, H, W] (B2 B3 B4 B8), ``b20`` [6, H/2, W/2] (B5 B6 B7 B8A B11 B12)
and, for the 6× network, ``b60`` [2, H/6, W/6] (B1 B9): nested, in network units (reflectance ×
10000, any offset already removed), 0 = no data. ``dsen2 evaluate`` and ``dsen2 train`` take an
archive wherever they take a product or band folder; archives carry scenes to machines that have
numpy but no GDAL (a GPU box lent for training: ``dsen2.train.pack``).
"""

from __future__ import annotations

import os
import zipfile
from collections.abc import Mapping
from pathlib import Path

import numpy as np
import numpy.typing as npt

from dsen2.bands import BANDS_10M, BANDS_20M, BANDS_60M
from dsen2.errors import ProductFormatError

FloatArray = npt.NDArray[np.float32]

ARCHIVE_ARRAYS = {1: "b10", 2: "b20", 6: "b60"}
_BAND_COUNTS = {1: len(BANDS_10M), 2: len(BANDS_20M), 6: len(BANDS_60M)}


def is_scene_archive(source: str | Path) -> bool:
    """Whether ``source`` names an ``.npz`` file (read as a scene archive)."""
    return Path(source).suffix.lower() == ".npz"


def read_scene_archive(path: Path, scales: set[int]) -> dict[int, FloatArray]:
    """The arrays the networks of ``scales`` need (grid factor → float32 stack).

    Raises:
        ProductFormatError: an array is missing or its shape does not nest.
    """
    factors = sorted({1, 2} | ({6} if 6 in scales else set()))
    with np.load(path) as archive:
        missing = [ARCHIVE_ARRAYS[f] for f in factors if ARCHIVE_ARRAYS[f] not in archive.files]
        if missing:
            raise ProductFormatError(
                f"{str(path)!r} lacks array(s) {', '.join(missing)} (has: "
                f"{', '.join(archive.files) or 'none'}); see dsen2.scene_archive"
            )
        arrays = {f: archive[ARCHIVE_ARRAYS[f]].astype(np.float32) for f in factors}
    rows, cols = arrays[1].shape[-2:]
    for factor, array in arrays.items():
        expected = (_BAND_COUNTS[factor], rows // factor, cols // factor)
        if array.shape != expected or rows % max(factors) or cols % max(factors):
            raise ProductFormatError(
                f"{str(path)!r}: {ARCHIVE_ARRAYS[factor]} has shape {array.shape}, expected "
                f"{expected} (10 m size a multiple of {max(factors)})"
            )
    return arrays


def write_scene_archive(path: Path, arrays: Mapping[int, FloatArray]) -> Path:
    """Write ``arrays`` (grid factor → stack, as :func:`read_scene_archive` returns them) to
    ``path``, compressed, whole-number stacks as int16 (lossless); written to a temporary file
    first, so an interrupted write leaves no archive behind."""
    write_arrays(path, {ARCHIVE_ARRAYS[f]: a for f, a in arrays.items()})
    return path


def write_arrays(path: Path, arrays: Mapping[str, npt.NDArray[np.float32]]) -> None:
    """An ``.npz`` of ``arrays``, each :func:`compact`, bzip2-compressed (a quarter smaller than
    ``np.savez_compressed``'s deflate on Sentinel-2 DN; ``np.load`` reads either), atomically."""
    partial = path.with_name(path.name + ".partial.npz")
    try:
        with zipfile.ZipFile(partial, "w", zipfile.ZIP_BZIP2, compresslevel=9) as archive:
            for name, array in arrays.items():
                with archive.open(f"{name}.npy", "w", force_zip64=True) as member:
                    np.lib.format.write_array(member, compact(array), allow_pickle=False)
        os.replace(partial, path)
    finally:
        partial.unlink(missing_ok=True)


def compact(array: npt.NDArray[np.float32]) -> npt.NDArray[np.generic]:
    """``array`` as int16 when every value is a whole number in int16's range (Sentinel-2 DN
    are), else unchanged: halves the archive without changing a value."""
    if array.size == 0:
        return array
    low, high = float(array.min()), float(array.max())
    if low < np.iinfo(np.int16).min or high > np.iinfo(np.int16).max:
        return array
    as_int = array.astype(np.int16)
    return as_int if np.array_equal(as_int, array) else array
