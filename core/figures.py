"""PNG figures of an evaluation: per-band metric bars, absolute-residual maps (as the paper's
Fig. 8: every method on the same colour scale per band), and a before/after comparison of the
images themselves. Needs matplotlib (imported here only)."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np

from dsen2.errors import DSen2Error
from dsen2.evaluation import SceneReport


def write_figures(reports: Sequence[SceneReport], folder: Path) -> list[Path]:
    """Write ``<scene>_<scale>x_f<k>_metrics.png``, ``..._residuals.png`` and
    ``..._comparison.png`` per report."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        from matplotlib import pyplot as plt
    except ImportError as error:
        raise DSen2Error(
            f"figures need matplotlib ({error}); pip install matplotlib, or drop --figures"
        ) from error
    folder.mkdir(parents=True, exist_ok=True)
    written = []
    for report in reports:
        stem = f"{report.scene}_{report.scale}x_f{report.factor}"
        bands = report.scores[0].bands
        figure, axes = plt.subplots(1, 3, figsize=(15, 4), constrained_layout=True)
        width = 0.8 / len(report.scores)
        for axis, (metric, label) in zip(
            axes, (("rmse", "RMSE (DN)"), ("sre_db", "SRE (dB)"), ("uiq", "UIQ")), strict=True
        ):
            for index, scores in enumerate(report.scores):
                positions = np.arange(len(bands)) + (index - (len(report.scores) - 1) / 2) * width
                axis.bar(positions, getattr(scores, metric), width, label=scores.method)
            axis.set_xticks(np.arange(len(bands)), bands)
            axis.set_title(label)
        axes[0].legend(fontsize="small")
        figure.suptitle(f"{report.scene}: {report.scale}× network, degraded ×{report.factor}")
        written.append(folder / f"{stem}_metrics.png")
        figure.savefig(written[-1], dpi=100)
        plt.close(figure)

        methods = list(report.residuals)
        figure, axes = plt.subplots(
            len(methods),
            len(bands),
            figsize=(2.6 * len(bands), 2.6 * len(methods)),
            squeeze=False,
            constrained_layout=True,
        )
        for column, band in enumerate(bands):
            # one colour scale per band for all methods: the 99th percentile of bicubic's error
            limit = float(np.nanpercentile(report.residuals["bicubic"][column], 99)) or 1.0
            for row, method in enumerate(methods):
                axis = axes[row][column]
                image = axis.imshow(
                    report.residuals[method][column], cmap="magma", vmin=0, vmax=limit
                )
                axis.set_xticks([])
                axis.set_yticks([])
                if row == 0:
                    axis.set_title(band)
                if column == 0:
                    axis.set_ylabel(method, fontsize="small")
            figure.colorbar(image, ax=axes[:, column].tolist(), shrink=0.8, label="|error| DN")
        written.append(folder / f"{stem}_residuals.png")
        figure.savefig(written[-1], dpi=80)
        plt.close(figure)
        written.append(write_comparison(report, folder / f"{stem}_comparison.png"))
    return written


# False-colour composites shown in the comparison: SWIR/NIR/red-edge for the 20 m bands.
_COMPOSITES = {2: ("B12", "B8A", "B5"), 6: ("B9", "B1", "B1")}


def write_comparison(report: SceneReport, path: Path, crop_px: int = 240) -> Path:
    """Bicubic, each model, and the reference side by side: a false-colour composite of the
    super-resolved bands over a central crop, one stretch for all panels."""
    from matplotlib import pyplot as plt

    if report.target is None:
        raise DSen2Error("the report holds no reference image; re-run the evaluation")
    bands = list(report.scores[0].bands)
    channels = [bands.index(b) for b in _COMPOSITES[report.scale]]
    rows, cols = report.target.shape[1:]
    size = min(crop_px, rows, cols)
    row0, col0 = (rows - size) // 2, (cols - size) // 2
    panels = {m: e for m, e in report.estimates.items() if m != "bilinear"}
    panels["reference"] = report.target
    stacks = {
        name: image[channels, row0 : row0 + size, col0 : col0 + size]
        for name, image in panels.items()
    }
    low = np.percentile(stacks["reference"], 1, axis=(1, 2))[:, None, None]
    high = np.percentile(stacks["reference"], 99, axis=(1, 2))[:, None, None]
    figure, axes = plt.subplots(
        1, len(stacks), figsize=(4 * len(stacks), 4.3), squeeze=False, constrained_layout=True
    )
    for axis, (name, stack) in zip(axes[0], stacks.items(), strict=True):
        rgb = np.clip((stack - low) / np.maximum(high - low, 1e-6), 0, 1).transpose(1, 2, 0)
        axis.imshow(rgb, interpolation="nearest")
        axis.set_title(name, fontsize="small")
        axis.set_xticks([])
        axis.set_yticks([])
    figure.suptitle(
        f"{report.scene}: {'/'.join(_COMPOSITES[report.scale])} at {10 * report.factor} m, "
        f"super-resolved from {10 * report.factor * report.scale} m (reduced-scale protocol)",
        fontsize="small",
    )
    figure.savefig(path, dpi=90)
    plt.close(figure)
    return path
