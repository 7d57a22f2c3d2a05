"""Seeded writer of BEAM-DIMAP products as SNAP writes them (a ``.dim`` XML header and a ``.data``
folder with one ENVI ``.img``/``.hdr`` pair per band), from real Sentinel-2 pixels.

The layout follows snap-engine's DimapHeaderWriter and EnviHeader: big-endian raw samples
(``byte order = 1``), ``map info`` and ``coordinate system string`` in each header, band
scaling (1/QUANTIFICATION_VALUE, offset/QUANTIFICATION_VALUE) in the header and the ``.hdr``.
An angle band named after a spectral band (``view_zenith_B1``) is included, as SNAP's S2 reader
provides one, to check that only exact band names count.
"""

from __future__ import annotations

from pathlib import Path
from xml.sax.saxutils import escape

import numpy as np
from osgeo import gdal

from dsen2.bands import ALL_BANDS
from dsen2.product import open_product
from tests.safe_fixture import SafeSpec


def write_dimap(folder: Path, safe: Path, spec: SafeSpec, name: str = "interimProduct") -> Path:
    """Write ``<name>.dim`` + ``<name>.data/`` holding the bands of the SAFE ``safe``."""
    data_dir = folder / f"{name}.data"
    data_dir.mkdir(parents=True)
    band_files = open_product([safe]).band_files
    factor, offset = 1e-4, spec.offset_dn * 1e-4
    bands = []
    for band in ALL_BANDS:
        if band.name not in band_files:
            continue
        dataset = gdal.Open(band_files[band.name])
        array = dataset.ReadAsArray().astype(np.uint16)
        geotransform, wkt = dataset.GetGeoTransform(), dataset.GetProjection()
        dataset = None
        _write_envi(data_dir / band.name, array, geotransform, wkt, band.name, factor, offset)
        bands.append((band.name, array.shape, "uint16", factor, offset))
    angles = np.full((4, 4), 12.5, np.float32)
    angle_grid = (435780.0, 30000.0, 0.0, 4179420.0, 0.0, -30000.0)
    _write_envi(data_dir / "view_zenith_B1", angles, angle_grid, "", "view_zenith_B1", 1.0, 0.0)
    bands.append(("view_zenith_B1", angles.shape, "float32", 1.0, 0.0))
    header = folder / f"{name}.dim"
    header.write_text(_dim_xml(name, spec, bands), encoding="utf-8")
    return header


def _write_envi(
    stem: Path,
    array: np.ndarray,
    geotransform: tuple[float, ...],
    wkt: str,
    band_name: str,
    factor: float,
    offset: float,
) -> None:
    stem.with_suffix(".img").write_bytes(array.astype(array.dtype.newbyteorder(">")).tobytes())
    data_type = 12 if array.dtype == np.uint16 else 4
    x0, dx, _, y0, _, dy = geotransform
    lines = [
        "ENVI",
        f"description = {{Sentinel-2 band {band_name} - Unit: 1}}",
        f"samples = {array.shape[1]}",
        f"lines = {array.shape[0]}",
        "bands = 1",
        "header offset = 0",
        "file type = ENVI Standard",
        f"data type = {data_type}",
        "interleave = bsq",
        "byte order = 1",
        f"band names = {{ {band_name} }}",
        f"map info = {{UTM,1.0,1.0,{x0},{y0},{dx},{-dy},18,North,WGS84,units=Meters}}",
    ]
    if wkt:
        lines.append(f"coordinate system string = {{{wkt}}}")
    lines += [f"data gain values = {{{factor}}}", f"data offset values = {{{offset}}}"]
    stem.with_suffix(".hdr").write_text("\n".join(lines) + "\n", encoding="utf-8")


def _dim_xml(
    name: str, spec: SafeSpec, bands: list[tuple[str, tuple[int, ...], str, float, float]]
) -> str:
    data_files = "\n".join(
        f'        <Data_File>\n            <DATA_FILE_PATH href="{name}.data/{band}.hdr" />\n'
        f"            <BAND_INDEX>{index}</BAND_INDEX>\n        </Data_File>"
        for index, (band, *_rest) in enumerate(bands)
    )
    infos = "\n".join(
        f"        <Spectral_Band_Info>\n            <BAND_INDEX>{index}</BAND_INDEX>\n"
        f"            <BAND_NAME>{escape(band)}</BAND_NAME>\n"
        f"            <BAND_RASTER_WIDTH>{shape[1]}</BAND_RASTER_WIDTH>\n"
        f"            <BAND_RASTER_HEIGHT>{shape[0]}</BAND_RASTER_HEIGHT>\n"
        f"            <DATA_TYPE>{data_type}</DATA_TYPE>\n"
        f"            <SCALING_FACTOR>{factor!r}</SCALING_FACTOR>\n"
        f"            <SCALING_OFFSET>{offset!r}</SCALING_OFFSET>\n"
        f"            <NO_DATA_VALUE_USED>true</NO_DATA_VALUE_USED>\n"
        f"            <NO_DATA_VALUE>0.0</NO_DATA_VALUE>\n        </Spectral_Band_Info>"
        for index, (band, shape, data_type, factor, offset) in enumerate(bands)
    )
    return f"""<?xml version="1.0" encoding="ISO-8859-1"?>
<Dimap_Document name="{name}.dim">
    <Metadata_Id>
        <METADATA_FORMAT version="2.13.0">DIMAP</METADATA_FORMAT>
        <METADATA_PROFILE>BEAM-DATAMODEL-V1</METADATA_PROFILE>
    </Metadata_Id>
    <Dataset_Id>
        <DATASET_SERIES>BEAM-PRODUCT</DATASET_SERIES>
        <DATASET_NAME>{name}.dim</DATASET_NAME>
    </Dataset_Id>
    <Production>
        <PRODUCT_TYPE>S2_MSI_Level-{spec.level[1:]}</PRODUCT_TYPE>
    </Production>
    <Raster_Dimensions>
        <NCOLS>{bands[1][1][1]}</NCOLS>
        <NROWS>{bands[1][1][0]}</NROWS>
        <NBANDS>{len(bands)}</NBANDS>
    </Raster_Dimensions>
    <Data_Access>
        <DATA_FILE_FORMAT>ENVI</DATA_FILE_FORMAT>
        <DATA_FILE_ORGANISATION>BAND_SEPARATE</DATA_FILE_ORGANISATION>
{data_files}
    </Data_Access>
    <Image_Interpretation>
{infos}
    </Image_Interpretation>
    <Dataset_Sources>
        <MDElem name="metadata">
            <MDElem name="Level-{spec.level[1:]}_User_Product">
                <MDElem name="General_Info">
                    <MDElem name="Product_Info">
                        <MDATTR name="PROCESSING_BASELINE" type="ascii">{spec.baseline}</MDATTR>
                        <MDElem name="Datatake">
                            <MDATTR name="SPACECRAFT_NAME" type="ascii">Sentinel-2A</MDATTR>
                        </MDElem>
                    </MDElem>
                </MDElem>
            </MDElem>
        </MDElem>
    </Dataset_Sources>
</Dimap_Document>
"""
