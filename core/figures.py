"""PNG figures of an evaluation: per-band metric bars and absolute-residual maps (as the paper's
Fig. 8: every method on the same colour scale per band). Needs matplotlib (imported here only)."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np

from dsen2.errors import DSen2Error
from dsen2.evaluation import SceneReport


def write_figures(reports: Sequence[SceneReport], folder: Path) -> list[Path]:
    """Write ``<scene>_<scale>x_metrics.png`` and ``..._residuals.png`` per report."""
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
    return written
