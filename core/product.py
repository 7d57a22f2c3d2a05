"""Finding the band files and radiometric metadata of an input (no pixel I/O here).

Inputs are a SAFE product (folder, .zip read in place through /vsizip/, or its MTD XML), a
BEAM-DIMAP product as SNAP writes it (the ``.dim`` header, or its ``.data`` folder of ENVI
``.img``/``.hdr`` band files, which GDAL reads), a folder of per-band rasters, or an explicit list
of band files.
"""

from __future__ import annotations

import os
import re
import xml.etree.ElementTree as ET
import zipfile
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from types import MappingProxyType

from dsen2.bands import ALL_BANDS, BY_NAME, band_in_filename
from dsen2.errors import InputNotFoundError, MissingBandError, ProductFormatError
from dsen2.radiometry import Radiometry

RASTER_SUFFIXES = (".jp2", ".tif", ".tiff")
OFFSET_GIVEN = "--offset"  # Radiometry.source of a product whose offset the caller stated
_MTD_NAME = re.compile(r"^(?:.*_)?MTD_(?:MSI|SAF)(L1C|L2A)(?:_.*)?\.xml$", re.IGNORECASE)
_RESOLUTION_SUFFIX = re.compile(r"_(10|20|60)m(?=\.[A-Za-z0-9]+$)")
# a Sentinel-2 product name: S2A_MSIL2A_20220706T085611_N0400_R007_T33NZA_20220706T153419
_PRODUCT_NAME = re.compile(r"MSI(L1C|L2A)_\d{8}T\d{6}_N(\d{2})(\d{2})_", re.IGNORECASE)
_VSIZIP = re.compile(r"^/vsizip/(.+?\.zip)/", re.IGNORECASE)
_DIMAP_BAND_NAME = re.compile(r"B(?:8A|0?[1-9]|1[0-2])", re.IGNORECASE)
_DIMAP_LEVEL = re.compile(r"Level-?(1C|2A)|MSIL(1C|2A)", re.IGNORECASE)


@dataclass(frozen=True)
class Product:
    """An input resolved to band files and radiometry.

    Attributes:
        product_id: product name (SAFE name without ``.SAFE``) or the folder's name.
        kind: ``"SAFE"``, ``"BEAM-DIMAP"`` or ``"bands"``.
        level: ``"L1C"``, ``"L2A"`` or ``"unknown"``.
        processing_baseline: e.g. ``"04.00"``; None when the input does not say.
        spacecraft: e.g. ``"Sentinel-2A"``; None when unknown.
        radiometry: quantification and offsets read from the metadata (or assumed).
        band_files: GDAL-openable path of each band present, by canonical band name.
    """

    product_id: str
    kind: str
    level: str
    processing_baseline: str | None
    spacecraft: str | None
    radiometry: Radiometry
    band_files: Mapping[str, str]

    def __post_init__(self) -> None:
        object.__setattr__(self, "band_files", MappingProxyType(dict(self.band_files)))

    def source_files(self) -> frozenset[Path]:
        """The files the bands are read from (a zipped product's .zip), resolved."""
        paths = set()
        for file in self.band_files.values():
            zipped = _VSIZIP.match(file)
            paths.add(Path(zipped.group(1) if zipped else file).resolve())
        return frozenset(paths)

    def require(self, bands: Sequence[str]) -> None:
        """Raise MissingBandError naming every band of ``bands`` that is absent."""
        missing = [band for band in bands if band not in self.band_files]
        if missing:
            only_60m = all(BY_NAME[band].gsd_m == 60 for band in missing)
            raise MissingBandError(
                f"{self.product_id!r} lacks band(s) {', '.join(missing)} needed for this output "
                f"(found: {', '.join(self.band_files) or 'none'}); supply the missing band files"
                + (" or ask for fewer bands (--bands 20m needs no 60 m band)" if only_60m else "")
            )


def open_product(
    inputs: str | Path | Sequence[str | Path], offset_dn: float | None = None
) -> Product:
    """Resolve one input path (product or folder) or several band files into a Product.

    Args:
        inputs: one SAFE folder/zip/MTD XML or band folder, or several band raster files.
        offset_dn: for band folders and file lists only, the radiometric offset the DN carry
            (−1000 for products of baseline 04.00 and later); SAFE products read their own.

    Raises:
        InputNotFoundError, ProductFormatError.
    """
    if isinstance(inputs, str | Path):  # one path given bare, not a list of its characters
        inputs = [inputs] if str(inputs) else []  # "" is no input, not the working folder
    paths = [Path(p) for p in inputs]
    if not paths:
        raise InputNotFoundError("no input given; pass a SAFE product, a folder or band files")
    for path in paths:
        if not path.exists():
            raise InputNotFoundError(f"input {str(path)!r} does not exist")
    if len(paths) == 1 and _dimap_header(paths[0]) is not None:
        return _open_dimap(paths[0], offset_dn)
    if len(paths) == 1 and _is_safe(paths[0]):
        if offset_dn is not None:
            raise ProductFormatError(
                "--offset applies to band folders only: a SAFE product states its own offsets"
            )
        return _open_safe(paths[0])
    if len(paths) == 1 and paths[0].is_dir():
        files = sorted(p for p in paths[0].rglob("*") if p.suffix.lower() in RASTER_SUFFIXES)
        if not files:
            raise InputNotFoundError(
                f"folder {str(paths[0])!r} holds no .jp2/.tif band rasters; pass a SAFE "
                "product or a folder of per-band files named with their band id (B02, B8A...)"
            )
        name = Path(os.path.abspath(paths[0])).name  # the name given, not a link's target
    else:
        files = paths
        name = Path(os.path.abspath(paths[0])).parent.name
    radiometry = Radiometry(
        offsets_dn={band.name: offset_dn or 0.0 for band in ALL_BANDS},
        source=OFFSET_GIVEN if offset_dn is not None else "assumed (no product metadata)",
    )
    named = _PRODUCT_NAME.search(name)  # a folder named after its product tells level/baseline
    return Product(
        product_id=name,
        kind="bands",
        level=named.group(1).upper() if named else "unknown",
        processing_baseline=f"{named.group(2)}.{named.group(3)}" if named else None,
        spacecraft=None,
        radiometry=radiometry,
        band_files=_match_bands([str(f) for f in files], strict_names=len(paths) > 1),
    )


def _is_safe(path: Path) -> bool:
    if path.is_file():
        return path.suffix.lower() == ".zip" or bool(_MTD_NAME.match(path.name))
    return any(_MTD_NAME.match(child.name) for child in path.iterdir() if child.is_file())


def _open_safe(path: Path) -> Product:
    if path.is_file() and path.suffix.lower() == ".zip":
        members = _zip_members(path)
        prefix = f"/vsizip/{path.resolve()}/"
    else:
        root = path.parent if path.is_file() else path
        members = [str(p.relative_to(root).as_posix()) for p in root.rglob("*") if p.is_file()]
        prefix = f"{root.resolve()}/"
    mtd_members = [m for m in members if _MTD_NAME.match(PurePosixPath(m).name)]
    top_level = sorted(
        (m for m in mtd_members if "GRANULE" not in PurePosixPath(m).parts),
        key=lambda m: len(PurePosixPath(m).parts),
    )
    if not top_level:
        raise ProductFormatError(
            f"{str(path)!r} has no product metadata (MTD_MSIL1C.xml / MTD_MSIL2A.xml); "
            "pass the whole SAFE product"
        )
    mtd_path = prefix + top_level[0]
    level_match = _MTD_NAME.match(PurePosixPath(top_level[0]).name)
    level = level_match.group(1).upper() if level_match else "unknown"
    facts = _read_mtd(mtd_path, path)
    images = [
        m for m in members if "IMG_DATA" in PurePosixPath(m).parts and m.lower().endswith(".jp2")
    ]
    granules = sorted({_granule_of(m) for m in images})
    if len(granules) > 1:
        raise ProductFormatError(
            f"{str(path)!r} holds {len(granules)} granules ({', '.join(granules)}); pass one "
            "granule's IMG_DATA folder as a band folder"
        )
    if not images:
        raise ProductFormatError(
            f"{str(path)!r} has product metadata but no band images (GRANULE/*/IMG_DATA/*.jp2) "
            "beside it; pass the whole SAFE product (its folder or .zip)"
        )
    band_files = _match_bands([prefix + m for m in images], strict_names=False)
    return Product(
        product_id=facts.product_id or _safe_name(path),
        kind="SAFE",
        level=level,
        processing_baseline=facts.baseline,
        spacecraft=facts.spacecraft,
        radiometry=facts.radiometry,
        band_files=band_files,
    )


def _dimap_header(path: Path) -> Path | None:
    """The ``.dim`` header of a BEAM-DIMAP product given as its header or its ``.data`` folder."""
    if path.is_file() and path.suffix.lower() == ".dim":
        return path
    if path.is_dir() and path.suffix.lower() == ".data":
        header = path.with_suffix(".dim")
        return header if header.is_file() else None
    return None


def _open_dimap(path: Path, offset_dn: float | None) -> Product:
    """A BEAM-DIMAP product: bands named B1…B12/B8A in the header, ENVI files in ``.data/``.

    Radiometry comes from each band's SCALING_FACTOR / SCALING_OFFSET (SNAP's S2 reader sets
    1/QUANTIFICATION_VALUE and offset/QUANTIFICATION_VALUE); unscaled bands are treated like a
    band folder (reflectance × 10000, ``offset_dn`` or 0).
    """
    header = _dimap_header(path)
    assert header is not None  # checked by the caller
    try:
        root = ET.parse(header).getroot()
    except (ET.ParseError, OSError) as error:
        raise ProductFormatError(
            f"the BEAM-DIMAP header {str(header)!r} is not readable XML ({error}); write the "
            "product again from SNAP"
        ) from error
    files = {
        element.findtext("BAND_INDEX", "").strip(): element.find("DATA_FILE_PATH")
        for element in root.iter("Data_File")
    }
    band_files: dict[str, str] = {}
    scalings: dict[str, tuple[float, float]] = {}
    for info in root.iter("Spectral_Band_Info"):
        name = (info.findtext("BAND_NAME") or "").strip()
        if not _DIMAP_BAND_NAME.fullmatch(name):
            continue  # angles, masks, quality layers: not a spectral band of ours
        band = band_in_filename(name)
        assert band is not None  # the full match above is a band token
        if band in band_files:
            raise ProductFormatError(
                f"{str(header)!r} holds band {band} twice; keep one band per name"
            )
        data_file = files.get((info.findtext("BAND_INDEX") or "").strip())
        href = data_file.get("href") if data_file is not None else None
        relative = href or f"{header.stem}.data/{name}.hdr"
        band_files[band] = str((header.parent / relative).with_suffix(".img"))
        scalings[band] = (
            float(info.findtext("SCALING_FACTOR") or 1.0),
            float(info.findtext("SCALING_OFFSET") or 0.0),
        )
    if not band_files:
        raise ProductFormatError(
            f"{str(header)!r} has no Sentinel-2 bands named B1…B12 or B8A; pass a product "
            "read by SNAP's Sentinel-2 reader (or rename the bands)"
        )
    metadata = {
        attribute.get("name"): (attribute.text or "").strip() for attribute in root.iter("MDATTR")
    }
    product_type = (root.findtext("Production/PRODUCT_TYPE") or "").strip()
    level_match = _DIMAP_LEVEL.search(product_type)
    level = next(g for g in level_match.groups() if g).upper() if level_match else None
    return Product(
        product_id=(root.findtext("Dataset_Id/DATASET_NAME") or header.stem).strip(),
        kind="BEAM-DIMAP",
        level=f"L{level}" if level else "unknown",
        processing_baseline=metadata.get("PROCESSING_BASELINE") or None,
        spacecraft=metadata.get("SPACECRAFT_NAME") or None,
        radiometry=radiometry_from_scaling(scalings, header.name, offset_dn),
        band_files=band_files,
    )


def radiometry_from_scaling(
    scalings: Mapping[str, tuple[float, float]], origin: str, offset_dn: float | None = None
) -> Radiometry:
    """Quantification and offsets from per-band (scaling factor, scaling offset), as SNAP states
    them (``reflectance = DN × factor + offset``, so factor = 1/QUANTIFICATION_VALUE).

    Unscaled bands (1, 0) are taken as reflectance × 10000 with ``offset_dn`` (or 0).

    Raises:
        ProductFormatError: the bands do not share one quantification, or ``offset_dn`` is given
            for bands that state their own offsets.
    """
    if all(scaling == (1.0, 0.0) for scaling in scalings.values()):
        return Radiometry(
            offsets_dn={band.name: offset_dn or 0.0 for band in ALL_BANDS},
            source=OFFSET_GIVEN if offset_dn is not None else "assumed (bands are not scaled)",
        )
    if offset_dn is not None:
        raise ProductFormatError(
            f"--offset applies to unscaled bands only: {origin} states the offsets in each "
            "band's scaling offset"
        )
    quantifications = {round(1.0 / factor, 6) for factor, _ in scalings.values()}
    if len(quantifications) != 1:
        raise ProductFormatError(
            f"{origin}: the bands have different scaling factors "
            f"({', '.join(f'{b} {f:g}' for b, (f, _) in scalings.items())}); Sentinel-2 "
            "bands share one QUANTIFICATION_VALUE"
        )
    (quantification,) = quantifications
    return Radiometry(
        quantification=quantification,
        offsets_dn={b: round(o * quantification, 6) for b, (_, o) in scalings.items()},
        source=f"{origin} band scaling",
    )


def _zip_members(path: Path) -> list[str]:
    try:
        with zipfile.ZipFile(path) as archive:
            return [info.filename for info in archive.infolist() if not info.is_dir()]
    except (zipfile.BadZipFile, OSError) as error:
        raise ProductFormatError(
            f"{str(path)!r} is not a readable zip archive ({error}); download it again"
        ) from error


def _safe_name(path: Path) -> str:
    name = path.name if path.is_dir() or path.suffix.lower() == ".zip" else path.parent.name
    return re.sub(r"(\.SAFE)?(\.zip)?$", "", name, flags=re.IGNORECASE)


def _granule_of(member: str) -> str:
    parts = PurePosixPath(member).parts
    return parts[parts.index("GRANULE") + 1] if "GRANULE" in parts else ""


def _match_bands(files: Sequence[str], strict_names: bool) -> dict[str, str]:
    """Map band names to files; resolution-suffixed files (``_20m``) count only at native GSD.

    With ``strict_names`` every file must name a band (an explicit list); otherwise files
    without a band id (previews, masks) are passed over.
    """
    found: dict[str, list[str]] = {}
    for file in files:
        name = PurePosixPath(file).name
        if PurePosixPath(file).suffix.lower() not in RASTER_SUFFIXES:
            raise ProductFormatError(f"{file!r} is not a .jp2 or .tif raster")
        band = band_in_filename(name)
        if band is None and strict_names:
            raise ProductFormatError(
                f"cannot tell which Sentinel-2 band {file!r} holds: its name has no band id "
                "(B01…B12, B8A); rename it"
            )
        suffix = _RESOLUTION_SUFFIX.search(name)
        if band is None or (suffix and int(suffix.group(1)) != BY_NAME[band].gsd_m):
            continue
        found.setdefault(band, []).append(file)
    for band, paths in found.items():
        if len(paths) > 1:
            raise ProductFormatError(
                f"several files hold band {band}: {', '.join(paths)}; keep one per band"
            )
    if not found:
        raise ProductFormatError(
            f"no Sentinel-2 band files among {len(files)} raster(s) (e.g. {files[0]!r}): "
            "file names must contain the band id (B02, B8A, ...)"
        )
    return {band: paths[0] for band, paths in found.items()}


@dataclass(frozen=True)
class MtdFacts:
    """What the product metadata XML says that dsen2 uses."""

    product_id: str
    baseline: str | None
    spacecraft: str | None
    radiometry: Radiometry


def _read_mtd(mtd_path: str, product_path: Path) -> MtdFacts:
    from osgeo import gdal  # GDAL's virtual file system reads inside zips

    handle = gdal.VSIFOpenL(mtd_path, "rb")
    if handle is None:
        raise ProductFormatError(f"cannot open the product metadata {mtd_path!r}")
    try:
        size = gdal.VSIStatL(mtd_path).size
        text = gdal.VSIFReadL(1, size, handle)
    finally:
        gdal.VSIFCloseL(handle)
    try:
        root = ET.fromstring(text)
    except ET.ParseError as error:
        raise ProductFormatError(
            f"the product metadata {mtd_path!r} is not valid XML ({error}); the product may be "
            "truncated: download it again"
        ) from error
    return parse_mtd(root, product_path)


def parse_mtd(root: ET.Element, product_path: Path) -> MtdFacts:
    """Extract id, baseline, spacecraft and radiometry from a product MTD XML tree."""
    by_tag: dict[str, list[ET.Element]] = {}
    for element in root.iter():
        by_tag.setdefault(element.tag.rsplit("}", 1)[-1], []).append(element)

    def text(tag: str) -> str | None:
        elements = by_tag.get(tag)
        return elements[0].text.strip() if elements and elements[0].text else None

    quantification_text = (
        text("QUANTIFICATION_VALUE")
        or text("BOA_QUANTIFICATION_VALUE")
        or text("L2A_BOA_QUANTIFICATION_VALUE")
    )
    if quantification_text is None:
        raise ProductFormatError(
            f"{str(product_path)!r}: the metadata has no QUANTIFICATION_VALUE; is this a "
            "Sentinel-2 L1C/L2A product?"
        )
    offsets: dict[str, float] = {}
    for tag in ("RADIO_ADD_OFFSET", "BOA_ADD_OFFSET"):
        for element in by_tag.get(tag, []):
            band_id = int(element.attrib["band_id"])
            offsets[ALL_BANDS[band_id].name] = float((element.text or "0").strip())
    uri = text("PRODUCT_URI") or text("PRODUCT_URI_2A") or ""
    return MtdFacts(
        product_id=re.sub(r"\.SAFE$", "", uri),
        baseline=text("PROCESSING_BASELINE"),
        spacecraft=text("SPACECRAFT_NAME"),
        radiometry=Radiometry(
            quantification=float(quantification_text),
            offsets_dn=offsets,
            source=f"{product_path.name} metadata",
        ),
    )
