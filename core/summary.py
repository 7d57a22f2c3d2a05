"""What dsen2 detects in an input: the facts ``dsen2 info`` prints and adapters can show."""

from __future__ import annotations

from typing import Any

from dsen2.bands import ALL_BANDS, BY_NAME
from dsen2.errors import DSen2Error
from dsen2.product import Product
from dsen2.raster import inspect_band, nest_bands


def describe(product: Product) -> dict[str, Any]:
    """A JSON-ready description: level, baseline, radiometry, band grids and the nested area."""
    radiometry = product.radiometry
    infos = [
        inspect_band(band.name, product.band_files[band.name])
        for band in ALL_BANDS
        if band.name in product.band_files
    ]
    bands = {
        info.band: {
            "file": info.path,
            "gsd_m": BY_NAME[info.band].gsd_m,
            "pixel_size_m": info.grid.pixel_size_m,
            "size_px": [info.grid.width_px, info.grid.height_px],
            "origin_m": [info.grid.x_origin_m, info.grid.y_origin_m],
            "offset_dn": radiometry.offset(info.band),
        }
        for info in infos
    }
    nested: dict[str, Any]
    try:
        usable = [info for info in infos if info.band != "B10"]
        nesting = nest_bands(usable)
        window = nesting.window_10m
        nested = {
            "window_10m_px": [window.col_off, window.row_off, window.width, window.height],
            "output_size_px": [window.width, window.height],
        }
    except (DSen2Error, StopIteration) as error:
        nested = {"error": str(error) or "no 10 m band found"}
    return {
        "product_id": product.product_id,
        "kind": product.kind,
        "level": product.level,
        "processing_baseline": product.processing_baseline,
        "spacecraft": product.spacecraft,
        "quantification": radiometry.quantification,
        "radiometry_source": radiometry.source,
        "bands": bands,
        "nesting": nested,
    }
