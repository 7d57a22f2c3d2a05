"""Reading band rasters with GDAL: validation, nesting and windowed, halo-padded tile reads."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt
from osgeo import gdal, osr

from dsen2.bands import BY_NAME
from dsen2.errors import GridError, ProductFormatError, RasterReadError
from dsen2.grid import Grid, Nesting, nest
from dsen2.product import Product
from dsen2.window import Window

_ACCEPTED_TYPES = {gdal.GDT_UInt16: "UInt16"}


class GdalErrors:
    """Collects GDAL failure messages raised on this thread while the context is open."""

    def __init__(self) -> None:
        self.messages: list[str] = []

    def _handler(self, error_class: int, error_number: int, message: str) -> None:
        if error_class >= gdal.CE_Failure:
            self.messages.append(message.strip())

    def __enter__(self) -> GdalErrors:
        gdal.PushErrorHandler(self._handler)
        return self

    def __exit__(self, *exc_info: object) -> None:
        gdal.PopErrorHandler()

    @property
    def last(self) -> str:
        return self.messages[-1] if self.messages else "unknown GDAL error"


@dataclass(frozen=True)
class BandGridInfo:
    """What a band file holds, as read from its header."""

    band: str
    path: str
    grid: Grid
    crs_wkt: str
    data_type: str


def inspect_band(band: str, path: str) -> BandGridInfo:
    """Open a band file's header and check it can be a Sentinel-2 band.

    Raises:
        RasterReadError: GDAL cannot open it.
        ProductFormatError: several layers, wrong data type, or no georeferencing.
    """
    with GdalErrors() as errors:
        dataset = gdal.Open(path, gdal.GA_ReadOnly)
    if dataset is None:
        raise RasterReadError(f"cannot open band {band} file {path!r}: {errors.last}")
    try:
        if dataset.RasterCount != 1:
            raise ProductFormatError(
                f"{path!r} has {dataset.RasterCount} layers; a Sentinel-2 band file has one"
            )
        data_type = dataset.GetRasterBand(1).DataType
        if data_type not in _ACCEPTED_TYPES:
            raise ProductFormatError(
                f"{path!r} holds {gdal.GetDataTypeName(data_type)} pixels; Sentinel-2 bands are "
                "integer DN (UInt16, reflectance × 10000). Convert reflectance rasters first, e.g. "
                "gdal_translate -ot UInt16 -scale 0 1 0 10000"
            )
        crs_wkt = dataset.GetProjection()
        if not crs_wkt:
            raise ProductFormatError(f"{path!r} has no coordinate reference system")
        grid = Grid.from_geotransform(
            dataset.GetGeoTransform(), dataset.RasterXSize, dataset.RasterYSize, path
        )
        return BandGridInfo(band, path, grid, crs_wkt, _ACCEPTED_TYPES[data_type])
    finally:
        dataset = None


def nest_bands(infos: Sequence[BandGridInfo]) -> Nesting:
    """Nest the grids of the given bands on the first 10 m band's grid.

    Raises:
        GridError: different CRS, or the grids do not nest.
    """
    reference = next(info for info in infos if BY_NAME[info.band].gsd_m == 10)
    reference_srs = osr.SpatialReference(wkt=reference.crs_wkt)
    for info in infos:
        if not reference_srs.IsSame(osr.SpatialReference(wkt=info.crs_wkt)):
            raise GridError(
                f"band {info.band} ({info.path!r}) is in another coordinate system than band "
                f"{reference.band}; all bands must be on one UTM tile grid"
            )
    grids = {info.band: (BY_NAME[info.band].gsd_m // 10, info.grid) for info in infos}
    return nest(reference.grid, grids)


class TileReader:
    """Reads halo-padded windows of a band set; belongs to one thread at a time.

    Windows are given in pixels of the nested 10 m window; whatever falls outside it is filled
    by symmetric (edge-mirrored) padding, identically for every tile.
    """

    def __init__(self, product: Product, nesting: Nesting, bands: Sequence[str]) -> None:
        self._nesting = nesting
        self._image = Window(0, 0, nesting.window_10m.width, nesting.window_10m.height)
        self._datasets: dict[str, gdal.Dataset] = {}
        for band in bands:
            with GdalErrors() as errors:
                dataset = gdal.Open(product.band_files[band], gdal.GA_ReadOnly)
            if dataset is None:
                raise RasterReadError(f"cannot open band {band}: {errors.last}")
            self._datasets[band] = dataset

    def close(self) -> None:
        self._datasets.clear()

    def read(self, bands: Sequence[str], padded: Window) -> npt.NDArray[np.uint16]:
        """Read ``bands`` (all at one GSD) over ``padded`` (10 m pixels), as [bands, rows, cols]."""
        factor = BY_NAME[bands[0]].gsd_m // 10
        inside = padded.intersection(self._image)
        stack = np.empty((len(bands), inside.height // factor, inside.width // factor), np.uint16)
        for index, band in enumerate(bands):
            own = self._nesting.band_windows[band]
            window = inside.divided(factor).shifted(own.col_off, own.row_off)
            with GdalErrors() as errors:
                data = (
                    self._datasets[band]
                    .GetRasterBand(1)
                    .ReadAsArray(window.col_off, window.row_off, window.width, window.height)
                )
            if data is None or errors.messages:
                raise RasterReadError(
                    f"reading band {band} failed at {window}: {errors.last}; the file may be "
                    "corrupt or truncated: download the product again"
                )
            stack[index] = data
        pads = [
            (0, 0),
            (
                (inside.row_off - padded.row_off) // factor,
                (padded.row_end - inside.row_end) // factor,
            ),
            (
                (inside.col_off - padded.col_off) // factor,
                (padded.col_end - inside.col_end) // factor,
            ),
        ]
        return np.pad(stack, pads, mode="symmetric") if any(sum(p) for p in pads) else stack


@contextmanager
def open_tile_reader(
    product: Product, nesting: Nesting, bands: Sequence[str]
) -> Iterator[TileReader]:
    reader = TileReader(product, nesting, bands)
    try:
        yield reader
    finally:
        reader.close()
