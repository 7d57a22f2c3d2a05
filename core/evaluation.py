"""The reduced-scale (Wald) protocol of the paper (Sec. 5.2): degrade a scene by the network's
scale, super-resolve it back, and score the result against the original bands, always next to
the bicubic and bilinear baselines computed in the same run.

2×: the 10 m bands are degraded to 20 m and the 20 m bands to 40 m; the network's output is
compared with the original 20 m bands. 6×: 10 m → 60 m, 20 m → 120 m, 60 m → 360 m; compared with
the original 60 m bands. Scores are in DN (reflectance × 10000).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import numpy.typing as npt

from dsen2 import __version__
from dsen2.bands import BANDS_BY_GRID
from dsen2.catalogue import ResolvedModel
from dsen2.degradation import wald_pair
from dsen2.detail import fit_detail_weights
from dsen2.inference import Device, Precision, create_session, run_session
from dsen2.metrics import rmse, sam, sre, uiq
from dsen2.product import Product, open_product
from dsen2.raster import inspect_band, nest_bands, open_tile_reader
from dsen2.resample import upsample
from dsen2.scene_archive import is_scene_archive, read_scene_archive
from dsen2.tiling import round_up
from dsen2.window import Window

BASELINES = ("bicubic", "bilinear")
FloatArray = npt.NDArray[np.float32]


@dataclass(frozen=True)
class Scores:
    """One method's scores on one scene at one scale."""

    method: str
    bands: tuple[str, ...]
    rmse: tuple[float, ...]
    sre_db: tuple[float, ...]
    uiq: tuple[float, ...]
    sam_deg: float
    pixels: int

    @property
    def mean_rmse(self) -> float:
        return float(np.mean(self.rmse))

    @property
    def mean_sre_db(self) -> float:
        return float(np.mean(self.sre_db))

    @property
    def mean_uiq(self) -> float:
        return float(np.mean(self.uiq))


@dataclass(frozen=True)
class SceneReport:
    """All methods' scores on one scene at one scale."""

    scene: str
    scale: int
    size_px: tuple[int, int]
    factor: int
    scores: list[Scores] = field(default_factory=list)
    # |estimate − target| per method, [bands, rows, cols] DN (for figures; not serialised)
    residuals: dict[str, FloatArray] = field(default_factory=dict, repr=False)
    # the estimates themselves and the reference, [bands, rows, cols] DN (for figures)
    estimates: dict[str, FloatArray] = field(default_factory=dict, repr=False)
    target: FloatArray | None = field(default=None, repr=False)

    def to_dict(self) -> dict[str, object]:
        return {
            "scene": self.scene,
            "scale": self.scale,
            "degradation_factor": self.factor,
            "size_px": list(self.size_px),
            "scores": [
                {
                    **asdict(s),
                    "mean_rmse": s.mean_rmse,
                    "mean_sre_db": s.mean_sre_db,
                    "mean_uiq": s.mean_uiq,
                }
                for s in self.scores
            ],
        }


def load_scene(
    source: str | Path, scales: set[int], offset_dn: float | None = None
) -> tuple[str, dict[int, FloatArray]]:
    """A scene's name and arrays in network units, from a product/band folder or a scene
    archive (``.npz``, dsen2.scene_archive: the offset is already removed there).

    Raises:
        ProductFormatError: an archive's array is missing or its shape does not nest.
    """
    path = Path(source)
    if is_scene_archive(path):
        return path.stem, read_scene_archive(path, scales)
    product = open_product([path], offset_dn=offset_dn)
    return product.product_id, read_scene(product, scales)


def read_scene(product: Product, scales: set[int]) -> dict[int, FloatArray]:
    """The whole nested scene in network units (reflectance × 10000), by grid factor."""
    factors = sorted({1, 2} | ({6} if 6 in scales else set()))
    needed = [band for factor in factors for band in BANDS_BY_GRID[factor]]
    product.require(needed)
    nesting = nest_bands([inspect_band(band, product.band_files[band]) for band in needed])
    image = Window(0, 0, nesting.window_10m.width, nesting.window_10m.height)
    with open_tile_reader(product, nesting, needed) as reader:
        return {
            f: product.radiometry.to_network(reader.read(BANDS_BY_GRID[f], image), BANDS_BY_GRID[f])
            for f in factors
        }


def evaluate(
    scene_name: str,
    arrays: dict[int, FloatArray],
    scale: int,
    models: Sequence[ResolvedModel],
    device: Device = Device.AUTO,
    factor: int | None = None,
    precision: Precision = Precision.FP32,
) -> SceneReport:
    """Score each model and the baselines on one scene at ``scale`` (2 or 6), degrading by
    ``factor`` (default: the scale, the paper's protocol; e.g. 4 for the 2× net evaluates
    80 → 40 m, the paper's scale-invariance check run the other way round)."""
    inputs, target = wald_pair(arrays, scale, factor)
    valid = np.all(target != 0, axis=0)
    report = SceneReport(
        scene_name, scale, (target.shape[2], target.shape[1]), factor=factor or scale, target=target
    )
    estimates = {method: upsample(inputs[scale], scale, method) for method in BASELINES}
    for model in models:
        if model.metadata.scale == scale:
            estimates[model.metadata.name] = _run_whole(model, inputs, scale, device, precision)
    for method, estimate in estimates.items():
        report.scores.append(_score(method, estimate, target, valid, scale))
        report.residuals[method] = np.where(valid, np.abs(estimate - target), np.nan)
        report.estimates[method] = estimate
    return report


def _run_whole(
    model: ResolvedModel,
    inputs: dict[int, FloatArray],
    scale: int,
    device: Device,
    precision: Precision,
) -> FloatArray:
    """Run a network over whole degraded arrays, mirrored at the borders like the engine."""
    halo = round_up(model.metadata.receptive_field_px, scale)
    session = create_session(model.path, device, precision=precision)
    feeds = mirrored_feeds(inputs, scale, halo)
    if model.metadata.detail_weights:  # the degraded scene's own, as training fits them
        weights = fit_detail_weights(inputs[1], inputs[scale], scale)
        feeds[model.metadata.detail_input] = weights[np.newaxis]
    output = run_session(session, feeds)[0]
    return output[:, halo:-halo, halo:-halo]


def mirrored_feeds(
    inputs: dict[int, FloatArray], scale: int, halo_px: int
) -> dict[str, FloatArray]:
    """The band inputs of a ``scale`` network over whole arrays, each mirrored by ``halo_px``
    10 m pixels (``halo_px`` a multiple of ``scale``) as the engine mirrors at image borders;
    the output then carries the same halo to cut."""
    feeds = {}
    for factor in (1, 2, 6):
        if factor > scale:
            continue
        pad = halo_px // factor
        padded = np.pad(inputs[factor], ((0, 0), (pad, pad), (pad, pad)), mode="symmetric")
        feeds[f"b{10 * factor}"] = padded[np.newaxis].astype(np.float32)
    return feeds


def _score(
    method: str, estimate: FloatArray, target: FloatArray, valid: npt.NDArray[np.bool_], scale: int
) -> Scores:
    bands = BANDS_BY_GRID[scale]
    return Scores(
        method=method,
        bands=bands,
        rmse=tuple(float(v) for v in rmse(estimate, target, valid)),
        sre_db=tuple(float(v) for v in sre(estimate, target, valid)),
        uiq=tuple(float(v) for v in uiq(estimate, target)),
        sam_deg=sam(estimate, target, valid),
        pixels=int(valid.sum()),
    )


def markdown_table(reports: Sequence[SceneReport]) -> str:
    """Tables laid out like the paper's Tables 3–5: per band and mean, one row per method."""
    lines: list[str] = []
    for report in reports:
        bands = report.scores[0].bands
        width, height = report.size_px
        lines.append(
            f"### {report.scene} — {_subject(report.scale, report.scores)}, degraded "
            f"×{report.factor} ({width}×{height} px target)"
        )
        for metric, unit in (("rmse", "DN"), ("sre_db", "dB"), ("uiq", "")):
            lines.append("")
            label = {"rmse": "RMSE", "sre_db": "SRE", "uiq": "UIQ"}[metric]
            lines.append(
                f"| {label}{f' ({unit})' if unit else ''} | " + " | ".join(bands) + " | mean |"
            )
            lines.append("|---" * (len(bands) + 2) + "|")
            for scores in report.scores:
                values = getattr(scores, metric)
                mean = float(np.mean(values))
                fmt = "{:.1f}" if metric == "rmse" else "{:.2f}" if metric == "sre_db" else "{:.4f}"
                cells = [fmt.format(v) for v in values] + [fmt.format(mean)]
                lines.append(f"| {scores.method} | " + " | ".join(cells) + " |")
        lines.append("")
        lines.append("| SAM (°) | " + " | ".join(s.method for s in report.scores) + " |")
        lines.append("|---" * (len(report.scores) + 1) + "|")
        lines.append(
            "| all bands | " + " | ".join(f"{s.sam_deg:.3f}" for s in report.scores) + " |"
        )
        lines.append("")
    lines.extend(summary_table(reports))
    return "\n".join(lines)


@dataclass(frozen=True)
class MethodSummary:
    """One method over the scenes of one (scale, factor) group.

    Attributes:
        ratio_mean_of_scenes: the mean over scenes of RMSE / bicubic's RMSE (every scene
            weighs alike).
        ratio_of_means: the mean RMSE over bicubic's mean RMSE (scenes weigh by their error).
        beats_bicubic: on how many scenes the mean RMSE is below bicubic's.
    """

    method: str
    mean_rmse: float
    ratio_mean_of_scenes: float
    ratio_of_means: float
    mean_sre_db: float
    mean_uiq: float
    mean_sam_deg: float
    beats_bicubic: int


@dataclass(frozen=True)
class GroupSummary:
    """Every method averaged over the scenes scored at one scale and degradation factor."""

    scale: int
    factor: int
    scenes: tuple[str, ...]
    methods: tuple[MethodSummary, ...]


def summarise(reports: Sequence[SceneReport]) -> list[GroupSummary]:
    """A summary for each (scale, factor) scored on more than one scene."""
    groups: dict[tuple[int, int], list[SceneReport]] = {}
    for report in reports:
        groups.setdefault((report.scale, report.factor), []).append(report)
    summaries = []
    for (scale, factor), group in groups.items():
        if len(group) < 2:
            continue
        bicubic = [next(s for s in r.scores if s.method == "bicubic") for r in group]
        methods = []
        for method in [s.method for s in group[0].scores]:
            scores = [next(s for s in r.scores if s.method == method) for r in group]
            ratios = [s.mean_rmse / b.mean_rmse for s, b in zip(scores, bicubic, strict=True)]
            mean_rmse = float(np.mean([s.mean_rmse for s in scores]))
            methods.append(
                MethodSummary(
                    method=method,
                    mean_rmse=mean_rmse,
                    ratio_mean_of_scenes=float(np.mean(ratios)),
                    ratio_of_means=mean_rmse / float(np.mean([b.mean_rmse for b in bicubic])),
                    mean_sre_db=float(np.mean([s.mean_sre_db for s in scores])),
                    mean_uiq=float(np.mean([s.mean_uiq for s in scores])),
                    mean_sam_deg=float(np.mean([s.sam_deg for s in scores])),
                    beats_bicubic=sum(ratio < 1 for ratio in ratios),
                )
            )
        summaries.append(GroupSummary(scale, factor, tuple(r.scene for r in group), tuple(methods)))
    return summaries


def summary_table(reports: Sequence[SceneReport]) -> list[str]:
    """Markdown lines of :func:`summarise`: mean RMSE, its ratio to bicubic both ways, mean
    SRE, UIQ and SAM, and on how many scenes each method beats bicubic."""
    lines: list[str] = []
    for group in summarise(reports):
        count = len(group.scenes)
        subject = _subject(group.scale, group.methods)
        lines.append(f"### Over {count} scenes — {subject}, degraded ×{group.factor}")
        lines.append("")
        lines.append(
            "| method | RMSE (DN) | RMSE / bicubic, mean of scene ratios | mean RMSE / "
            "bicubic's | SRE (dB) | UIQ | SAM (°) | beats bicubic |"
        )
        lines.append("|---|---|---|---|---|---|---|---|")
        for m in group.methods:
            lines.append(
                f"| {m.method} | {m.mean_rmse:.1f} | {m.ratio_mean_of_scenes:.3f} | "
                f"{m.ratio_of_means:.3f} | {m.mean_sre_db:.2f} | {m.mean_uiq:.4f} | "
                f"{m.mean_sam_deg:.3f} | {m.beats_bicubic}/{count} |"
            )
        lines.append("")
    return lines


def _subject(scale: int, methods: Sequence[Scores | MethodSummary]) -> str:
    """What a table scores: the network of that scale, or only the baselines (no --model)."""
    if all(m.method in BASELINES for m in methods):
        return f"bicubic and bilinear only (no {scale}× model given)"
    return f"{scale}× network"


def json_document(
    reports: Sequence[SceneReport], models: Sequence[ResolvedModel]
) -> dict[str, object]:
    """What `dsen2 evaluate --json` writes: the dsen2 version and models (with sha256) that
    made the numbers, every scene's scores, and the summaries."""
    return {
        "dsen2_version": __version__,
        "models": [
            {
                "name": m.metadata.name,
                "scale": m.metadata.scale,
                "file": str(m.path),
                "sha256": m.sha256,
            }
            for m in models
        ],
        "scenes": [report.to_dict() for report in reports],
        "summaries": [asdict(group) for group in summarise(reports)],
    }
