"""The super-resolution run: plan tiles, read with halos, infer, mask no-data, write.

Reading, inference and writing overlap: one background thread reads the next tiles while the
networks run, another compresses and writes finished tiles. Memory is bounded by a few tiles.
"""

from __future__ import annotations

import json
import math
import numbers
import time
from collections import deque
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import TypeVar, cast

import numpy as np
import numpy.typing as npt

from dsen2 import __version__
from dsen2.bands import BANDS_10M, BY_NAME, OUTPUT_5M, OUTPUT_20M, OUTPUT_ALL
from dsen2.catalogue import ResolvedModel, resolve_models
from dsen2.detail import DetailFit, DetailWeights
from dsen2.errors import CancelledError, OptionsError, WindowError
from dsen2.grid import Grid, Nesting
from dsen2.inference import Device, Precision, Session, create_session, run_session, session_device
from dsen2.modelmeta import ModelMetadata
from dsen2.nodata import fill_nodata, valid_mask
from dsen2.product import OFFSET_GIVEN, Product
from dsen2.progress import CancelPredicate, ProgressCallback, never_cancelled, no_progress
from dsen2.radiometry import Radiometry, lifted_to_floor
from dsen2.raster import BandGridInfo, inspect_band, nest_bands, open_tile_reader
from dsen2.tiling import TilePlan, plan_tiles, round_up
from dsen2.window import Window
from dsen2.writer import OutputSpec, block_size_for, check_writable, open_output

DEFAULT_TILE_SIZE_PX = 384
# bf16 tiles are larger: OpenVINO's bf16 working set at 768 px is 766 MB peak RSS (DSen2 d=6
# f=128 on 1512² px), and the halo's share of the work falls from ~20 % to ~10 % (bench/peer.py,
# README "Performance"). fp32 stays at 384: 489 MB peak against 1363 MB at 768 px, and no faster
# there (1512² px interleaved: 59.42 s at 384, 58.97 s at 768).
BF16_TILE_SIZE_PX = 768
BAND_SETS = {"all": OUTPUT_ALL, "20m": OUTPUT_20M, "5m": OUTPUT_5M}
_INPUT_FACTORS = {"b10": 1, "b20": 2, "b60": 6}  # graph input → its grid over the 10 m grid
_PREFETCH_TILES = 2
# A detail fit by network scale: its output tag, its sample count's key, its grid, its bands.
_DETAIL_FITS = {
    6: ("DSEN2_DETAIL_FIT", "samples_60m_px", "60 m", "B1 and B9"),
    2: ("DSEN2_DETAIL_FIT_20M", "samples_20m_px", "20 m", "the 20 m bands"),
}
# Scene detail weights (dsen2.detail) are fitted on up to DETAIL_WINDOWS_PER_AXIS² windows of
# DETAIL_WINDOW_PX spread evenly over the whole image, whatever the ROI: a full tile then reads
# about 2 % of its 10 m pixels once more (a window both scales fit on is read once), and a ROI's
# output equals that part of a whole run.
# An axis no longer than the windows would span (1536 px) is fitted whole, as evaluation and
# training fit a scene. A window less than DETAIL_WINDOW_MIN_VALID of whose 60 m pixels hold
# data (a swath edge, an ocean mask) moves to the nearest free place on a lattice of its own
# size that has enough.
DETAIL_WINDOW_PX = 384
DETAIL_WINDOWS_PER_AXIS = 4
DETAIL_WINDOW_MIN_VALID = 0.5
ArrayT = TypeVar("ArrayT", bound=np.ndarray)
ReadFunction = Callable[[tuple[str, ...], Window], npt.NDArray[np.uint16]]


def default_tile_size_px(precision: Precision) -> int:
    """The tile edge a run uses unless told otherwise: 384 px in fp32, 768 px in bf16."""
    return BF16_TILE_SIZE_PX if precision is Precision.BF16 else DEFAULT_TILE_SIZE_PX


@dataclass(frozen=True)
class RunOptions:
    """Everything a run can be asked to do differently.

    Attributes:
        model: catalogue family (``"dsen2"``), folder of exports, or comma-separated .onnx paths.
        bands: ``"all"`` (B1…B12 without B10), ``"20m"`` (the six 20 m bands), or ``"5m"``
            (B2 B3 B4 B8 B5 B6 B7 B8A on a 5 m grid, with a 4× model trained on SEN2VENµS).
        device: where the networks run (a Device, or its value: "auto", "cuda", "cpu").
        tile_size_px: edge of a tile on the 10 m grid, rounded down to the lattice of the
            coarsest band read (6 px, or 2 px without the 60 m bands; the run warns when it
            rounds); 0 (the default) picks the precision's: 384 px in fp32, 768 px in bf16.
        roi: region of interest in pixels of the input's 10 m band grid, or None for all.
        cog: write a Cloud-Optimized GeoTIFF.
        reflectance: write float32 reflectance instead of DN in the input's convention.
        threads: CPU threads for inference, at least 1 (default: all available cores).
        precision: ``fp32``, or ``bf16`` (CPU with native bf16 and OpenVINO: dsen2.bf16); a
            Precision or its value.

    Raises:
        OptionsError: a value outside these (strings are turned into Device and Precision).
    """

    model: str = "dsen2"
    bands: str = "all"
    device: Device = Device.AUTO
    tile_size_px: int = 0
    roi: Window | None = None
    cog: bool = False
    reflectance: bool = False
    threads: int | None = None
    precision: Precision = Precision.FP32

    def __post_init__(self) -> None:
        if self.bands not in BAND_SETS:
            raise OptionsError(f"bands must be one of {sorted(BAND_SETS)}, got {self.bands!r}")
        for name, kind in (("device", Device), ("precision", Precision)):
            value = getattr(self, name)
            if value not in set(kind):
                choices = ", ".join(member.value for member in kind)
                raise OptionsError(f"{name} must be one of {choices}; got {value!r}")
            object.__setattr__(self, name, kind(value))  # a plain string becomes the member
        object.__setattr__(
            self, "tile_size_px", _whole_number("tile_size_px", self.tile_size_px, 0)
        )
        if self.threads is not None:
            object.__setattr__(self, "threads", _whole_number("threads", self.threads, 1))
        if self.roi is not None and not isinstance(self.roi, Window):
            raise OptionsError(
                f"roi must be a dsen2.window.Window (col_off, row_off, width, height); "
                f"got {self.roi!r}"
            )
        if self.tile_size_px == 0:  # resolved once, so every reader of the options sees the same
            object.__setattr__(self, "tile_size_px", default_tile_size_px(self.precision))

    @property
    def output_bands(self) -> tuple[str, ...]:
        return BAND_SETS[self.bands]

    @property
    def scales(self) -> set[int]:
        if self.bands == "5m":
            return {4}
        return {2, 6} if any(BY_NAME[b].gsd_m == 60 for b in self.output_bands) else {2}

    @property
    def output_factor(self) -> int:
        """Output pixels per 10 m pixel along an axis: 2 on the 5 m grid, else 1."""
        return 2 if self.bands == "5m" else 1


def _whole_number(name: str, value: object, least: int) -> int:
    """``value`` as an int (numpy integers too), or an OptionsError naming the option."""
    if not isinstance(value, numbers.Integral) or isinstance(value, bool) or value < least:
        default = " (0: the precision's default)" if least == 0 else ""
        raise OptionsError(
            f"{name} must be a whole number of at least {least}{default}; got {value!r}"
        )
    return int(value)


@dataclass(frozen=True)
class RunResult:
    """What a finished run produced; ``warnings``: what the user should know about its pixels
    (adapters show them as their host shows warnings)."""

    output: Path
    width_px: int
    height_px: int
    band_names: tuple[str, ...]
    model_names: tuple[str, ...]
    device: str
    tiles: int
    seconds: float
    warnings: tuple[str, ...] = ()

    @property
    def megapixels_per_s(self) -> float:
        return self.width_px * self.height_px / 1e6 / max(self.seconds, 1e-9)


@dataclass(frozen=True)
class Tile:
    """Raw DN of one tile read with its read halo, by grid factor (1, 2, 6)."""

    window: Window
    raw: dict[int, npt.NDArray[np.uint16]]


def superresolve(
    product: Product,
    output: str | Path,
    options: RunOptions,
    progress: ProgressCallback = no_progress,
    is_cancelled: CancelPredicate = never_cancelled,
) -> RunResult:
    """Super-resolve ``product`` into ``output``.

    Raises:
        DSen2Error subclasses for bad input, models, devices or output; CancelledError when
        ``is_cancelled`` turned true (no output is left behind in either case).
    """
    started = time.perf_counter()
    output = Path(output)
    check_writable(output, product.source_files())
    models = resolve_models(options.model, options.scales)
    groups = input_groups(models)
    factors = sorted(groups)
    needed = [band for factor in factors for band in groups[factor]]
    product.require(needed)
    infos = [inspect_band(band, product.band_files[band]) for band in needed]
    nesting = nest_bands(infos)
    receptive_field_px = max(model.metadata.receptive_field_px for model in models.values())
    fill_reach_px = max(f * fill_passes(receptive_field_px, f) for f in factors)
    plan = plan_tiles(
        image_window(nesting, options.roi),
        options.tile_size_px,
        nesting.align_px,
        receptive_field_px,
        fill_reach_px,
    )
    sessions = {
        scale: create_session(model.path, options.device, options.threads, options.precision)
        for scale, model in models.items()
    }
    tiles = plan.tiles
    with open_tile_reader(product, nesting, needed) as reader:
        detail = scene_detail_weights(
            reader.read, image_window(nesting, None), groups, product.radiometry, models
        )
        detail_weights = {scale: fit.values for scale, fit in detail.items()}
        warnings = (
            offset_warnings(product)
            + resolution_warnings(infos[0].grid)
            + roi_warnings(nesting, options.roi)
            + tile_size_warnings(options.tile_size_px, plan)
            + detail_warnings(detail)
        )
        spec = _output_spec(
            product, output, infos[0], nesting, plan, options, models, groups, detail, warnings
        )
        with open_output(spec) as sink:

            def read(window: Window) -> Tile:
                padded = window.grown(plan.read_halo_px)
                return Tile(window, {f: reader.read(groups[f], padded) for f in factors})

            read_pool = ThreadPoolExecutor(1, thread_name_prefix="dsen2-read")
            write_pool = ThreadPoolExecutor(1, thread_name_prefix="dsen2-write")
            try:
                pending_writes: deque[Future[None]] = deque()
                for index, tile in enumerate(_prefetched(read_pool, read, tiles)):
                    if is_cancelled():
                        raise CancelledError("cancelled by the user; no output was written")
                    stack = process_tile(
                        tile,
                        plan,
                        groups,
                        sessions,
                        models,
                        product.radiometry,
                        options,
                        detail_weights,
                    )
                    target = tile.window.shifted(-plan.image.col_off, -plan.image.row_off)
                    target = target.scaled(options.output_factor)
                    pending_writes.append(write_pool.submit(sink.write, target, stack))
                    while len(pending_writes) > _PREFETCH_TILES:
                        pending_writes.popleft().result()
                    progress((index + 1) / len(tiles), f"tile {index + 1}/{len(tiles)}")
                for future in pending_writes:
                    future.result()
            finally:
                read_pool.shutdown(wait=True, cancel_futures=True)
                write_pool.shutdown(wait=True, cancel_futures=True)
    return RunResult(
        output=output,
        width_px=plan.image.width * options.output_factor,
        height_px=plan.image.height * options.output_factor,
        band_names=options.output_bands,
        model_names=tuple(model.metadata.name for model in models.values()),
        device=session_device(next(iter(sessions.values()))),
        tiles=len(tiles),
        seconds=time.perf_counter() - started,
        warnings=warnings,
    )


def image_window(nesting: Nesting, roi: Window | None) -> Window:
    """The processed window, in pixels of the nested window: all of it, or the ROI snapped
    outwards to the 6-pixel lattice and clipped to the image.

    Raises:
        WindowError: the ROI lies outside the image.
    """
    full = Window(0, 0, nesting.window_10m.width, nesting.window_10m.height)
    if roi is None:
        return full
    if roi.width <= 0 or roi.height <= 0:
        raise WindowError(
            f"the region of interest is {roi.width}×{roi.height} px; its width and height "
            "must be positive"
        )
    inside = roi.shifted(-nesting.window_10m.col_off, -nesting.window_10m.row_off).intersection(
        full
    )
    if inside.is_empty:
        raise WindowError(
            f"the region of interest ({roi}) lies outside the processable image "
            f"({nesting.window_10m} of the 10 m grid)"
        )
    align = nesting.align_px
    col_off = inside.col_off // align * align
    row_off = inside.row_off // align * align
    col_end = min(round_up(inside.col_end, align), full.width)
    row_end = min(round_up(inside.row_end, align), full.height)
    return Window(col_off, row_off, col_end - col_off, row_end - row_off)


def resolution_warnings(reference: Grid) -> tuple[str, ...]:
    """A warning when the 10 m bands' grid is not at Sentinel-2's native 10 m (an overview, a
    resampled product): the networks were trained and measured at native resolution."""
    size_m = reference.pixel_size_m
    if abs(size_m - 10) <= 0.01:
        return ()
    return (
        f"The 10 m bands have {size_m:g} m pixels, not Sentinel-2's native 10 m (an overview or "
        "a resampled product?). The networks were trained at native resolution, so their "
        "output may be worse than their model cards say.",
    )


def offset_warnings(product: Product) -> tuple[str, ...]:
    """A warning when a band folder's name says processing baseline 04.00 or later, whose DN
    carry an offset of −1000, but no offset was given (a folder has no metadata to read)."""
    baseline = product.processing_baseline
    given = product.radiometry.source == OFFSET_GIVEN
    if product.kind != "bands" or given or baseline is None:
        return ()
    if baseline < "04.00":
        return ()
    return (
        f"The input's name says processing baseline {baseline}, whose DN carry an offset of "
        "-1000, but a band folder holds no metadata to read it from, so none was removed: give "
        "an offset of -1000 (--offset -1000; QGIS: Offset) if these are the product's original "
        "DN, or --offset 0 if it was already removed.",
    )


def tile_size_warnings(asked_px: int, plan: TilePlan) -> tuple[str, ...]:
    """A warning when the tile size was rounded down to the lattice of the bands read."""
    if plan.tile_size_px == asked_px:
        return ()
    return (
        f"The tile size {asked_px} px is not a multiple of {plan.align_px} px (the pixel "
        f"lattice of the coarsest band read); {plan.tile_size_px} px is used.",
    )


def roi_warnings(nesting: Nesting, roi: Window | None) -> tuple[str, ...]:
    """A warning when the ROI reaches past the processable image (only its part inside is
    processed, as gdal_translate -srcwin goes on with a window partly outside)."""
    if roi is None or roi.intersection(nesting.window_10m) == roi:
        return ()
    inside = roi.intersection(nesting.window_10m)
    return (
        f"The region of interest ({roi}) reaches past the processable image "
        f"({nesting.window_10m} of the 10 m grid); only its part inside ({inside}) "
        "is processed.",
    )


def fill_passes(receptive_field_px: int, factor: int) -> int:
    """No-data fill passes on a grid of ``factor`` × 10 m so the fill covers the receptive field."""
    return math.ceil(receptive_field_px / factor) + 1


def _prefetched(
    pool: ThreadPoolExecutor, read: Callable[[Window], Tile], tiles: list[Window]
) -> Iterator[Tile]:
    """Yield tiles in order while the pool reads up to ``_PREFETCH_TILES`` ahead."""
    queue: deque[Future[Tile]] = deque(pool.submit(read, w) for w in tiles[:_PREFETCH_TILES])
    for next_index in range(_PREFETCH_TILES, len(tiles) + _PREFETCH_TILES):
        tile = queue.popleft().result()
        if next_index < len(tiles):
            queue.append(pool.submit(read, tiles[next_index]))
        yield tile


def input_groups(models: dict[int, ResolvedModel]) -> dict[int, tuple[str, ...]]:
    """The bands read on each input grid (factor 1, 2, 6), from the models' graph inputs."""
    groups: dict[int, tuple[str, ...]] = {}
    for model in models.values():
        for name, bands in model.metadata.input_bands.items():
            groups.setdefault(_INPUT_FACTORS[name], bands)
    return groups


def scene_detail_weights(
    read: ReadFunction,
    image: Window,
    groups: dict[int, tuple[str, ...]],
    radiometry: Radiometry,
    models: dict[int, ResolvedModel],
) -> dict[int, DetailWeights]:
    """The scene's detail weights [coarse bands, 4] (dsen2.detail) for each network of
    ``models`` that takes them, by scale: the 60 m bands' at 6× (``w60``), the 20 m bands' at
    2× (``w20``); none for a run whose models take none. Each scale's are fitted on its
    :func:`detail_windows` of ``image`` (the whole nested image, 10 m pixels), placed where that
    grid holds data; a window both scales fit on is read once. ``read(bands, window)`` gives raw
    DN of bands of one grid over a 10 m window, as the tile reader does. At 6× the 60 m bands
    are read whole (a full tile's are 1830² px) and cropped per window; at 2× one 20 m band is
    read whole (60 MB for a full tile) to place the windows, and the 20 m bands per window."""
    scales = [scale for scale, model in models.items() if model.metadata.detail_weights]
    # cut to whole 60 m pixels even without 60 m bands: where the grids share an origin (a full
    # tile) a 20 m-only run then fits the 2× weights on the same pixels as a run of all bands,
    # whose image the 60 m grid bounds
    image = Window(image.col_off, image.row_off, image.width // 6 * 6, image.height // 6 * 6)
    fits = {scale: DetailFit(len(groups[1]), len(groups[scale])) for scale in scales}
    if image.width == 0 or image.height == 0:  # under one 60 m pixel: nothing to fit on
        return {scale: fit.result() for scale, fit in fits.items()}
    coarse_60m: npt.NDArray[np.float32] | None = None
    windows: dict[int, list[Window]] = {}
    for scale in scales:
        whole = read(groups[scale] if scale == 6 else groups[scale][:1], image)
        per_60m = 6 // scale  # coarse pixels along a 60 m pixel
        blocks = valid_mask(whole).reshape(image.height // 6, per_60m, image.width // 6, per_60m)
        windows[scale] = detail_windows(image, blocks.all(axis=(1, 3)))
        if scale == 6:
            coarse_60m = _network_or_zero(whole, groups[6], radiometry)
    for window in dict.fromkeys(w for scale in scales for w in windows[scale]):
        fine = _network_or_zero(read(groups[1], window), groups[1], radiometry)
        for scale in (s for s in scales if window in windows[s]):
            if scale == 6 and coarse_60m is not None:  # the 60 m bands, read whole above
                part = window.shifted(-image.col_off, -image.row_off).divided(6)
                coarse = coarse_60m[:, part.row_off : part.row_end, part.col_off : part.col_end]
            else:
                coarse = _network_or_zero(read(groups[2], window), groups[2], radiometry)
            fits[scale].add(fine, coarse, scale)
    return {scale: fit.result() for scale, fit in fits.items()}


def detail_warnings(detail: dict[int, DetailWeights]) -> tuple[str, ...]:
    """What a run tells the user about its detail weights (by scale): nothing when they were
    fitted."""
    return tuple(
        _unfitted_warning(fit.problem, scale)
        for scale, fit in sorted(detail.items(), reverse=True)
        if fit.problem is not None
    )


def recorded_warnings(tags: dict[str, str]) -> tuple[str, ...]:
    """The warnings of the run that wrote an output, from its tags: ``DSEN2_WARNINGS``, or
    for an output written before that tag, the detail fit's problem in ``DSEN2_DETAIL_FIT``."""
    try:
        if "DSEN2_WARNINGS" in tags:
            return tuple(str(warning) for warning in json.loads(tags["DSEN2_WARNINGS"]))
        fit = json.loads(tags.get("DSEN2_DETAIL_FIT", "null"))
    except (ValueError, TypeError):
        return ()
    if not isinstance(fit, dict) or not fit.get("problem"):
        return ()
    return (_unfitted_warning(str(fit["problem"])),)


def _unfitted_warning(problem: str, scale: int = 6) -> str:
    _, _, grid, bands = _DETAIL_FITS[scale]
    return (
        f"The scene's detail weights could not be fitted from its {grid} bands: {problem}. "
        f"The {scale}× model ran without them, so {bands} are sharpened less than its model "
        "card says. Run on a larger image, or one with more valid data."
    )


def detail_windows(
    image: Window, coarse_valid: npt.NDArray[np.bool_] | None = None
) -> list[Window]:
    """The windows of ``image`` the scene's detail weights are fitted on, 6-px aligned. Along
    an axis of up to DETAIL_WINDOWS_PER_AXIS × DETAIL_WINDOW_PX one span covers it whole (each
    pixel counts once, and an image that small is fitted whole, as `dsen2 evaluate` and training
    fit a scene); along a longer axis DETAIL_WINDOWS_PER_AXIS spans of DETAIL_WINDOW_PX are
    spread evenly. With ``coarse_valid`` (the image's 60 m pixels that hold data), each window
    with less than DETAIL_WINDOW_MIN_VALID of them moves to the nearest place on a lattice of
    its own size that has enough and overlaps no other window, if there is one."""

    def spans(length: int) -> tuple[list[int], int]:
        if length <= DETAIL_WINDOWS_PER_AXIS * DETAIL_WINDOW_PX:
            return [0], length // 6 * 6
        free = length - DETAIL_WINDOW_PX
        count = DETAIL_WINDOWS_PER_AXIS
        return [round(i * free / (count - 1)) // 6 * 6 for i in range(count)], DETAIL_WINDOW_PX

    cols, width = spans(image.width)
    rows, height = spans(image.height)
    windows = [Window(col, row, width, height) for row in rows for col in cols]
    if coarse_valid is not None:
        if coarse_valid.shape != (image.height // 6, image.width // 6):
            raise ValueError(
                f"coarse_valid is {coarse_valid.shape}, the image's 60 m grid "
                f"{(image.height // 6, image.width // 6)}"
            )
        windows = _moved_onto_data(windows, image, coarse_valid)
    return [w.shifted(image.col_off, image.row_off) for w in windows]


def _moved_onto_data(
    windows: list[Window], image: Window, coarse_valid: npt.NDArray[np.bool_]
) -> list[Window]:
    """``windows`` (relative to ``image``, all of one size) with each poor one moved (see
    detail_windows)."""

    def valid_share(window: Window) -> float:
        part = window.divided(6)
        return float(coarse_valid[part.row_off : part.row_end, part.col_off : part.col_end].mean())

    def centre(window: Window) -> tuple[float, float]:
        return (window.col_off + window.width / 2, window.row_off + window.height / 2)

    width, height = windows[0].width, windows[0].height
    if not (width and height):  # an image under one 60 m pixel: nothing to move
        return windows
    lattice = [
        Window(col, row, width, height)
        for row in range(0, image.height - height + 1, height)
        for col in range(0, image.width - width + 1, width)
    ]
    rich = [cell for cell in lattice if valid_share(cell) >= DETAIL_WINDOW_MIN_VALID]
    kept = [w for w in windows if valid_share(w) >= DETAIL_WINDOW_MIN_VALID]
    placed = []
    for window in windows:
        if window in kept:
            placed.append(window)
            continue
        taken = kept + placed
        free = [c for c in rich if all(c.intersection(t).is_empty for t in taken)]
        if not free:  # it stays, unless a window moved onto its place (no pixel counts twice)
            if all(window.intersection(t).is_empty for t in placed):
                placed.append(window)
            continue
        x, y = centre(window)
        placed.append(min(free, key=lambda c: (centre(c)[0] - x) ** 2 + (centre(c)[1] - y) ** 2))
    return placed


def _network_or_zero(
    raw: npt.NDArray[np.uint16], bands: tuple[str, ...], radiometry: Radiometry
) -> npt.NDArray[np.float32]:
    """Network units where every band holds data, 0 (no data) elsewhere."""
    return np.where(valid_mask(raw), radiometry.to_network(raw, bands), np.float32(0))


def process_tile(
    tile: Tile,
    plan: TilePlan,
    groups: dict[int, tuple[str, ...]],
    sessions: dict[int, Session],
    models: dict[int, ResolvedModel],
    radiometry: Radiometry,
    options: RunOptions,
    detail_weights: dict[int, npt.NDArray[np.float32]] | None = None,
) -> npt.NDArray[np.generic]:
    """Fill no-data, run the networks, mask and convert one tile to output bands
    (``detail_weights``: the scene's, from :func:`scene_detail_weights`, for models that take
    them)."""
    margin = plan.read_halo_px - plan.net_halo_px
    halo = plan.net_halo_px
    out = options.output_factor
    inputs: dict[int, npt.NDArray[np.float32]] = {}
    centre_valid: dict[int, npt.NDArray[np.bool_]] = {}
    for factor, bands in groups.items():
        raw = tile.raw[factor]
        valid = valid_mask(raw)
        values = radiometry.to_network(raw, bands)
        fill_nodata(values, valid, fill_passes(plan.receptive_field_px, factor))
        inputs[factor] = crop_margin(values, margin // factor)
        centre = crop_margin(valid, (margin + halo) // factor)
        centre_valid[factor] = _repeat(centre, factor * out)
    valid_20m = centre_valid[1] & centre_valid[2]
    predictions: dict[str, npt.NDArray[np.float32]] = {}
    for scale, session in sessions.items():
        metadata = models[scale].metadata
        # The tile carries the widest network's halo; each network gets only its own, so the
        # 2× net does not compute the 6× net's wider context (rounded to the 60 m lattice).
        own_halo = network_halo_px(metadata)
        trim = halo - own_halo
        feeds: dict[str, npt.NDArray[np.float32]] = {}
        for name in metadata.input_bands:
            factor = _INPUT_FACTORS[name]
            feeds[name] = crop_margin(inputs[factor], trim // factor)[np.newaxis]
        if metadata.detail_weights:
            if detail_weights is None or scale not in detail_weights:
                raise ValueError(f"model {metadata.name!r} needs the scene's detail weights")
            feeds[metadata.detail_input] = detail_weights[scale][np.newaxis]
        if valid_20m.any():
            result = crop_margin(run_session(session, feeds)[0], own_halo * out)
        else:  # nothing valid here: skip the network, the output is all no-data
            result = np.zeros((len(metadata.output_bands), *valid_20m.shape), np.float32)
        predictions.update(zip(metadata.output_bands, result, strict=True))
    raw_10m = crop_margin(tile.raw[1], plan.read_halo_px)
    rows: list[tuple[str, npt.NDArray[np.float32], npt.NDArray[np.bool_] | None]] = []
    for band in options.output_bands:
        factor = BY_NAME[band].gsd_m // 10
        if band in predictions:
            valid = valid_20m & centre_valid[6] if factor == 6 else valid_20m
            floor = radiometry.network_range(band)[0]
            lifted = lifted_to_floor(predictions[band], floor, factor * out, valid)
            rows.append((band, lifted, valid))
        else:  # a 10 m band on the 10 m grid: copied unchanged
            rows.append((band, raw_10m[BANDS_10M.index(band)].astype(np.float32), None))
    return _convert(rows, radiometry, options.reflectance)


def network_halo_px(metadata: ModelMetadata) -> int:
    """The context one network needs around a tile, in 10 m pixels: its receptive field rounded
    up to the coarsest of its input grids, so that every input crops on whole pixels."""
    align_px = math.lcm(*(_INPUT_FACTORS[name] for name in metadata.input_bands))
    return round_up(metadata.receptive_field_px, align_px)


def _repeat(mask: npt.NDArray[np.bool_], factor: int) -> npt.NDArray[np.bool_]:
    return np.repeat(np.repeat(mask, factor, axis=0), factor, axis=1)


def _convert(
    rows: list[tuple[str, npt.NDArray[np.float32], npt.NDArray[np.bool_] | None]],
    radiometry: Radiometry,
    reflectance: bool,
) -> npt.NDArray[np.generic]:
    """Stack output bands: 10 m bands (mask None) are raw DN, others network values."""
    shape = (len(rows), *rows[0][1].shape)
    out = np.empty(shape, np.float32 if reflectance else np.uint16)
    for index, (band, values, valid) in enumerate(rows):
        if valid is None:
            out[index] = (
                radiometry.dn_to_reflectance(values[np.newaxis], (band,))[0]
                if reflectance
                else values
            )
        elif reflectance:
            out[index] = radiometry.network_to_reflectance(values[np.newaxis], (band,), valid)[0]
        else:
            out[index] = radiometry.network_to_dn(values[np.newaxis], (band,), valid)[0]
    return out


def crop_margin(array: ArrayT, margin: int) -> ArrayT:
    """Drop ``margin`` pixels from each side of the last two axes."""
    if not margin:
        return array
    rows, cols = array.shape[-2:]
    return cast(ArrayT, array[..., margin : rows - margin, margin : cols - margin])


def provenance_tags(
    models: dict[int, ResolvedModel],
    precision: Precision,
    groups: dict[int, tuple[str, ...]],
    detail: dict[int, DetailWeights],
) -> dict[str, str]:
    """How a run's pixels were made: dsen2's version, the models (name, sha256, training), the
    precision and, for models that take them, the scene's detail weights (by scale) and their
    fit: DSEN2_DETAIL_WEIGHTS holds every coarse band's weights, DSEN2_DETAIL_FIT the 60 m fit
    and DSEN2_DETAIL_FIT_20M the 20 m one. The GeoTIFF carries them as tags, SNAP's product as
    its ``DSen2`` metadata element."""
    tags = {
        "DSEN2_VERSION": __version__,
        "DSEN2_MODELS": json.dumps(
            {
                m.metadata.name: {
                    "sha256": m.sha256,
                    "trained": m.metadata.trained,
                    "variant": m.metadata.variant,
                }
                for m in models.values()
            }
        ),
        "DSEN2_PRECISION": precision.value,
    }
    if detail:
        tags["DSEN2_DETAIL_WEIGHTS"] = json.dumps(
            {
                coarse: {
                    fine: round(float(weight), 6)
                    for fine, weight in zip(groups[1], row, strict=True)
                }
                for scale, fit in sorted(detail.items(), reverse=True)
                for coarse, row in zip(groups[scale], fit.values, strict=True)
            }
        )
    for scale, fit in detail.items():
        tag, samples, _, _ = _DETAIL_FITS[scale]
        tags[tag] = json.dumps({samples: fit.samples_px, "problem": fit.problem})
    return tags


def _output_spec(
    product: Product,
    output: Path,
    info: BandGridInfo,
    nesting: Nesting,
    plan: TilePlan,
    options: RunOptions,
    models: dict[int, ResolvedModel],
    groups: dict[int, tuple[str, ...]],
    detail: dict[int, DetailWeights],
    warnings: tuple[str, ...],
) -> OutputSpec:
    """The output's grid, bands and tags; ``warnings`` (the run's) are recorded as
    DSEN2_WARNINGS, so a batch rerun that skips the output can repeat them; ``detail`` (the
    scene's weights by scale, for models that take them) is recorded as DSEN2_DETAIL_WEIGHTS,
    DSEN2_DETAIL_FIT and DSEN2_DETAIL_FIT_20M so a run can be audited and repeated."""
    nested_grid = info.grid.sub_grid(nesting.window_10m)
    grid = nested_grid.sub_grid(plan.image).refined(options.output_factor)
    radiometry = product.radiometry
    bands = options.output_bands
    tags = {
        **provenance_tags(models, options.precision, groups, detail),
        "INPUT_PRODUCT": product.product_id,
        "INPUT_KIND": product.kind,
        "PRODUCT_LEVEL": product.level,
        "PROCESSING_BASELINE": product.processing_baseline or "unknown",
        "SPACECRAFT": product.spacecraft or "unknown",
        "QUANTIFICATION_VALUE": f"{radiometry.quantification:g}",
        "RADIOMETRIC_OFFSETS_DN": json.dumps({b: radiometry.offset(b) for b in bands}),
        "RADIOMETRY_SOURCE": radiometry.source,
        "RADIOMETRY": (
            "float32 reflectance = (DN + offset) / quantification; NaN = no data"
            if options.reflectance
            else "uint16 DN in the input's convention: reflectance = (DN + offset) / "
            "quantification (band scale/offset say the same); 0 = no data"
        ),
        "BAND_NAMES": ",".join(bands),
        "OUTPUT_GSD_M": f"{info.grid.pixel_size_m / options.output_factor:g}",
        "DSEN2_WARNINGS": json.dumps(list(warnings)),
        "ROI_10M_PX": json.dumps(
            [
                plan.image.col_off + nesting.window_10m.col_off,
                plan.image.row_off + nesting.window_10m.row_off,
                plan.image.width,
                plan.image.height,
            ]
        ),
    }
    return OutputSpec(
        path=output,
        grid=grid,
        crs_wkt=info.crs_wkt,
        band_descriptions=[BY_NAME[b].description for b in bands],
        reflectance=options.reflectance,
        cog=options.cog,
        block_size_px=block_size_for(plan.tile_size_px * options.output_factor),
        scales_offsets=None
        if options.reflectance
        else [
            (1 / radiometry.quantification, radiometry.offset(b) / radiometry.quantification)
            for b in bands
        ],
        tags=tags,
    )
