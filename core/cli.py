"""The ``dsen2`` command line: ``run``, ``info`` and ``models``."""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import signal
import sys
import traceback
from pathlib import Path

from osgeo import gdal

from dsen2 import __version__
from dsen2.catalogue import (
    ResolvedModel,
    load_catalogue,
    models_dir,
    resolve_models,
    sha256_of,
)
from dsen2.engine import (
    BAND_SETS,
    BF16_TILE_SIZE_PX,
    DEFAULT_TILE_SIZE_PX,
    RunOptions,
    superresolve,
)
from dsen2.errors import DSen2Error
from dsen2.evaluation import evaluate, json_document, load_scene, markdown_table
from dsen2.inference import Device, Precision
from dsen2.modelmeta import read_metadata
from dsen2.product import open_product
from dsen2.summary import describe
from dsen2.window import Window

EXIT_ERROR = 1
EXIT_INTERRUPTED = 130
_TILE_SIZE_HELP = (
    f"tile edge in 10 m pixels, rounded down to a multiple of 6 (2 with --bands 20m or 5m) "
    f"with a warning; 0: the default, {DEFAULT_TILE_SIZE_PX} ({BF16_TILE_SIZE_PX} with "
    "--precision bf16)"
)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="dsen2",
        description="Super-resolve Sentinel-2 20 m and 60 m bands to 10 m with DSen2 networks.",
    )
    parser.add_argument("--version", action="version", version=f"dsen2 {__version__}")
    parser.add_argument("--debug", action="store_true", help="show tracebacks on errors")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    run = sub.add_parser(
        "run",
        help="super-resolve a product to a 10 m (or 5 m) GeoTIFF",
        description="Super-resolve INPUT (a SAFE folder/.zip/MTD XML, a folder of band rasters, "
        "or several band files) to a multi-band 10 m GeoTIFF (5 m with --bands 5m). By "
        "default the output keeps the input's DN convention (offset included; band "
        "scale/offset give reflectance).",
    )
    run.add_argument("inputs", nargs="+", metavar="INPUT")
    run.add_argument("-o", "--output", required=True, type=Path, help="output GeoTIFF (.tif)")
    run.add_argument(
        "--model",
        default="dsen2",
        help="catalogue family (see 'dsen2 models'), a folder of .onnx exports, or "
        "comma-separated .onnx files (default: dsen2)",
    )
    run.add_argument(
        "--bands",
        choices=sorted(BAND_SETS),
        default="all",
        help="all: B1-B12 without B10 (default); 20m: B5 B6 B7 B8A B11 B12; 5m: B2 B3 B4 B8 "
        "B5 B6 B7 B8A on a 5 m grid (needs a 4x model trained on SEN2VENuS, via --model)",
    )
    run.add_argument(
        "--device",
        choices=[d.value for d in Device],
        default="auto",
        help="auto prefers CUDA when onnxruntime-gpu sees a GPU (default: auto)",
    )
    run.add_argument(
        "--tile-size",
        type=_tile_size,
        default=0,
        metavar="PX",
        help=_TILE_SIZE_HELP,
    )
    run.add_argument(
        "--roi",
        type=_parse_roi,
        metavar="COL,ROW,WIDTH,HEIGHT",
        help="region of interest in pixels of the input's 10 m band grid",
    )
    run.add_argument("--cog", action="store_true", help="write a Cloud-Optimized GeoTIFF")
    run.add_argument(
        "--reflectance",
        action="store_true",
        help="write float32 reflectance (NaN no-data) instead of uint16 DN",
    )
    run.add_argument(
        "--offset",
        type=float,
        metavar="DN",
        help="for band folders: the radiometric offset of the DN (-1000 for "
        "products of baseline 04.00 and later); SAFE products carry their own",
    )
    run.add_argument(
        "--threads", type=_positive_int, help="CPU threads for inference (default: all cores)"
    )
    run.add_argument(
        "--precision",
        choices=[p.value for p in Precision],
        default="fp32",
        help="bf16: about 2x faster on CPUs with native bf16 (AVX-512-BF16 or AMX), via "
        "OpenVINO (pip install 'dsen2[bf16]'); changes outputs by a few DN (README)",
    )
    run.add_argument("-q", "--quiet", action="store_true", help="no progress output")

    info = sub.add_parser("info", help="show what dsen2 detects in an input")
    info.add_argument("inputs", nargs="+", metavar="INPUT")
    info.add_argument("--offset", type=float, metavar="DN", help="as for 'run'")
    info.add_argument("--json", action="store_true", help="machine-readable output")

    evaluate = sub.add_parser(
        "evaluate",
        help="score models against bicubic/bilinear with the reduced-scale protocol",
        description="Degrade each SCENE by the network's scale (Gaussian blur σ=1/s, s×s means), "
        "super-resolve it back and compare with the original bands: RMSE (DN), SRE (dB), UIQ "
        "per band and SAM (°), next to bicubic and bilinear upsampling computed in the same run.",
    )
    evaluate.add_argument(
        "scenes",
        nargs="+",
        metavar="SCENE",
        help="SAFE product, band folder, or .npz of nested arrays b10/b20/b60 (whole scene)",
    )
    evaluate.add_argument(
        "--model",
        action="append",
        default=[],
        help="catalogue family, folder of exports, comma-separated .onnx files, or a "
        "training run folder (its best checkpoint is exported first; needs torch); repeat to "
        "compare several (default: baselines only)",
    )
    evaluate.add_argument(
        "--scale",
        choices=["2", "6", "all"],
        default="2",
        help="which network to evaluate (default 2)",
    )
    evaluate.add_argument(
        "--device", choices=[d.value for d in Device], default="auto", help="as for 'run'"
    )
    evaluate.add_argument(
        "--precision", choices=[p.value for p in Precision], default="fp32", help="as for 'run'"
    )
    evaluate.add_argument(
        "--factor",
        type=int,
        help="degradation factor, a multiple of the scale (default: the scale; 4 with --scale 2 "
        "scores 80→40 m, for scale-invariance checks)",
    )
    evaluate.add_argument("--offset", type=float, metavar="DN", help="as for 'run'")
    evaluate.add_argument("--json", type=Path, metavar="FILE", help="also write the scores as JSON")
    evaluate.add_argument(
        "--markdown", type=Path, metavar="FILE", help="also write the tables as Markdown"
    )
    evaluate.add_argument(
        "--figures",
        type=Path,
        metavar="DIR",
        help="also write PNG bar charts and residual maps there (needs matplotlib)",
    )

    train = sub.add_parser("train", help="train a network from an experiment config (needs torch)")
    train.add_argument("config", type=Path, help="experiment TOML (see dsen2.train.config)")
    train.add_argument("--run-dir", type=Path, help="default: runs/<name>; an existing run resumes")
    train.add_argument(
        "--device", choices=["cpu", "cuda"], help="override the config's device (cpu or cuda)"
    )
    export = sub.add_parser("export", help="export a run's best checkpoint to ONNX (needs torch)")
    export.add_argument("run_dir", type=Path)
    export.add_argument("--name", help="model name (default: <experiment>-<t2x|s6x|x4-5m>)")
    export.add_argument("--version", default="0.1.0", help="the model's version string")

    snap = sub.add_parser(
        "snap",
        help="install dsen2 into ESA SNAP (gpt DSen2, Graph Builder, menus)",
        description="install: write the DSen2 tool adapter into the SNAP user directory and, "
        "when SNAP's Python bridge (esa_snappy) is configured for a Python that can run dsen2, "
        "the in-process DSen2Tiles operator. uninstall: remove both.",
    )
    snap.add_argument("action", choices=["install", "uninstall"])
    snap.add_argument(
        "--snap-user-dir", type=Path, metavar="DIR", help="SNAP user directory (default ~/.snap)"
    )
    snap.add_argument(
        "--tool-adapters-dir",
        type=Path,
        metavar="DIR",
        help="where SNAP looks for tool adapters (default <snap-user-dir>/auxdata/tool-adapters)",
    )

    batch = sub.add_parser(
        "batch",
        help="super-resolve many products on a Dask cluster (needs dsen2[batch])",
        description="Super-resolve every product named by INPUT (products, folders of products, "
        "or text files listing them) into OUT_DIR/<product_id>_10m.tif (_5m.tif with --bands "
        "5m), one Dask task per "
        "product, on a local cluster sized to this machine or an existing scheduler. Finished "
        "outputs made from the same input and options are skipped, so a re-run resumes.",
    )
    batch.add_argument("inputs", nargs="+", metavar="INPUT")
    batch.add_argument("-o", "--output-dir", required=True, type=Path, metavar="OUT_DIR")
    batch.add_argument("--model", default="dsen2", help="as for 'run' (default: dsen2)")
    batch.add_argument("--bands", choices=sorted(BAND_SETS), default="all", help="as for 'run'")
    batch.add_argument(
        "--device", choices=[d.value for d in Device], default="auto", help="as for 'run'"
    )
    batch.add_argument(
        "--precision", choices=[p.value for p in Precision], default="fp32", help="as for 'run'"
    )
    batch.add_argument(
        "--tile-size", type=_tile_size, default=0, metavar="PX", help=_TILE_SIZE_HELP
    )
    batch.add_argument("--roi", type=_parse_roi, metavar="COL,ROW,WIDTH,HEIGHT")
    batch.add_argument("--cog", action="store_true", help="write Cloud-Optimized GeoTIFFs")
    batch.add_argument("--reflectance", action="store_true", help="write float32 reflectance")
    batch.add_argument("--offset", type=float, metavar="DN", help="as for 'run' (band folders)")
    batch.add_argument(
        "--scheduler",
        metavar="ADDRESS",
        help="an existing Dask scheduler, e.g. tcp://host:8786 (default: DASK_SCHEDULER_ADDRESS, "
        "else a local cluster)",
    )
    batch.add_argument(
        "--workers",
        type=_positive_int,
        help="local cluster workers (default: from cores and memory)",
    )
    batch.add_argument(
        "--threads-per-worker",
        type=_positive_int,
        metavar="N",
        help="CPU threads each product gets (default: cores shared among the workers)",
    )
    batch.add_argument(
        "--report",
        type=Path,
        metavar="FILE",
        help="report .json or .csv (default: OUT_DIR/batch-report.json and .csv)",
    )
    batch.add_argument(
        "--retries", type=int, default=2, help="retries after transient I/O errors (default 2)"
    )
    batch.add_argument("-q", "--quiet", action="store_true", help="no progress output")

    models = sub.add_parser("models", help="list the model catalogue")
    models.add_argument("--json", action="store_true", help="machine-readable output")
    return parser


# GDAL's block cache defaults to 5 % of RAM; the CLI owns its process, so it caps the cache
# (reads are windowed and output blocks are flushed per tile) unless the user set GDAL_CACHEMAX.
CLI_GDAL_CACHE_BYTES = 256 * 1024 * 1024


def _terminate(signum: int, frame: object) -> None:
    """SIGTERM (batch schedulers, `kill`) unwinds like Ctrl-C, so no partial output remains."""
    raise KeyboardInterrupt


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    signal.signal(signal.SIGTERM, _terminate)
    if "GDAL_CACHEMAX" not in os.environ:
        gdal.SetCacheMax(CLI_GDAL_CACHE_BYTES)
    try:
        if args.command == "run":
            return _run(args)
        if args.command == "info":
            return _info(args)
        if args.command == "evaluate":
            return _evaluate(args)
        if args.command in ("train", "export"):
            return _training(args)
        if args.command == "snap":
            return _snap(args)
        if args.command == "batch":
            return _batch(args)
        return _models(args)
    except DSen2Error as error:
        if args.debug:
            traceback.print_exc()
        print(f"dsen2: error: {error}", file=sys.stderr)
        return EXIT_ERROR
    except KeyboardInterrupt:
        print("\ndsen2: interrupted; no output was written", file=sys.stderr)
        return EXIT_INTERRUPTED


def _run(args: argparse.Namespace) -> int:
    product = open_product(args.inputs, offset_dn=args.offset)
    options = RunOptions(
        model=args.model,
        bands=args.bands,
        device=Device(args.device),
        tile_size_px=args.tile_size,
        roi=args.roi,
        cog=args.cog,
        reflectance=args.reflectance,
        threads=args.threads,
        precision=Precision(args.precision),
    )
    bar = _ProgressBar(enabled=not args.quiet)
    result = superresolve(product, args.output, options, progress=bar)
    bar.finish()
    print(
        f"wrote {result.output} ({result.width_px}×{result.height_px} px, "
        f"{len(result.band_names)} bands: {' '.join(result.band_names)}) with "
        f"{', '.join(result.model_names)} on {result.device} in {result.seconds:.1f} s "
        f"({result.megapixels_per_s:.2f} Mpx/s)"
    )
    for warning in result.warnings:
        print(f"warning: {warning}", file=sys.stderr)
    return 0


def _info(args: argparse.Namespace) -> int:
    facts = describe(open_product(args.inputs, offset_dn=args.offset))
    if args.json:
        print(json.dumps(facts, indent=2))
        return 0
    print(f"product:      {facts['product_id']} ({facts['kind']})")
    print(
        f"level:        {facts['level']}   baseline: {facts['processing_baseline'] or 'unknown'}"
        f"   spacecraft: {facts['spacecraft'] or 'unknown'}"
    )
    print(
        f"radiometry:   quantification {facts['quantification']:g}, "
        f"offsets from {facts['radiometry_source']}"
    )
    for band, fact in facts["bands"].items():
        width, height = fact["size_px"]
        print(
            f"  {band:<4} {fact['gsd_m']:>2} m  {width:>6}×{height:<6} offset {fact['offset_dn']:g}"
            f"  {fact['file']}"
        )
    nested = facts["nesting"]
    if "error" in nested:
        print(f"nesting:      cannot nest: {nested['error']}")
    else:
        col, row, width, height = nested["window_10m_px"]
        print(f"nested area:  {width}×{height} px at col {col}, row {row} of the 10 m grid")
    return 0


def _evaluate(args: argparse.Namespace) -> int:
    scales = {2, 6} if args.scale == "all" else {int(args.scale)}
    models = [m for spec in args.model for m in _evaluation_models(spec, scales)]
    reports = []
    for scene in args.scenes:
        for scale in sorted(scales):  # each scale on its own crop: "all" = 2 and 6 run apart
            name, arrays = load_scene(scene, {scale}, offset_dn=args.offset)
            factor = args.factor if args.factor else scale
            device, precision = Device(args.device), Precision(args.precision)
            reports.append(evaluate(name, arrays, scale, models, device, factor, precision))
    table = markdown_table(reports)
    print(table)
    if args.markdown:
        args.markdown.write_text(table + "\n", encoding="utf-8")
    if args.figures:
        from dsen2.figures import write_figures  # matplotlib only when asked for

        for path in write_figures(reports, args.figures):
            print(f"figure: {path}")
    if args.json:
        document = json_document(reports, models)
        args.json.write_text(json.dumps(document, indent=2) + "\n", encoding="utf-8")
    return 0


def _evaluation_models(spec: str, scales: set[int]) -> list[ResolvedModel]:
    """Models named by ``spec``; a training run folder is exported to ONNX first."""
    run_dir = Path(spec)
    if (run_dir / "best.pt").is_file():
        from dsen2.train.loop import export_run  # torch only for checkpoints

        path = export_run(run_dir)
        return [ResolvedModel(path, read_metadata(path), sha256_of(path), from_catalogue=False)]
    return list(resolve_models(spec, scales).values())


def _training(args: argparse.Namespace) -> int:
    try:  # torch is an optional extra: imported only for these two commands
        from dsen2.train.config import load_config
        from dsen2.train.loop import export_run, train
    except ImportError as error:
        raise DSen2Error(
            f"training needs PyTorch ({error}); install it with pip install 'dsen2[train]'"
        ) from error
    if args.command == "train":
        config = load_config(args.config)
        if args.device:
            config = dataclasses.replace(config, device=args.device)
        run_dir = args.run_dir or Path("runs") / config.name
        best = train(config, run_dir, config_path=args.config)
        print(f"best checkpoint: {best}")
        return 0
    path = export_run(args.run_dir, version=args.version, name=args.name)
    print(f"exported {path} (model card {path.with_suffix('.md')})")
    return 0


def _snap(args: argparse.Namespace) -> int:
    from dsen2.snap import install  # the SNAP adapter files ship as package data of dsen2.snap

    user_dir = args.snap_user_dir or install.default_snap_user_dir()
    if args.action == "uninstall":
        report = install.uninstall(user_dir, args.tool_adapters_dir)
        for folder in report.removed:
            print(f"removed {folder}")
        if report.kept_work is not None:
            print(
                f"removed the {install.ADAPTER_ALIAS} tool adapter but kept "
                f"{report.kept_work}: it holds your results; delete it when done with them"
            )
        elif not report.removed:
            print(f"nothing of dsen2 was installed in {user_dir}")
        return 0
    installed = install.install(user_dir, args.tool_adapters_dir)
    print(f"tool adapter {install.ADAPTER_ALIAS}: {installed.tool_adapter}")
    for folder in installed.python_operators:
        print(f"Python operator {install.OPERATOR_ALIAS}: {folder}")
    print(installed.python_operator_note)
    print("restart SNAP, then try:")
    print(f"  {installed.gpt_example}")
    return 0


def _batch(args: argparse.Namespace) -> int:
    from dsen2 import batch  # Dask is imported only when a cluster starts

    request = batch.BatchRequest(
        inputs=tuple(Path(item) for item in args.inputs),
        output_dir=args.output_dir,
        options=RunOptions(
            model=args.model,
            bands=args.bands,
            device=Device(args.device),
            tile_size_px=args.tile_size,
            roi=args.roi,
            cog=args.cog,
            reflectance=args.reflectance,
            threads=args.threads_per_worker,
            precision=Precision(args.precision),
        ),
        offset_dn=args.offset,
        scheduler=args.scheduler,
        workers=args.workers,
        retries=args.retries,
        report=args.report,
    )
    progress = batch.ConsoleProgress(enabled=not args.quiet)
    report = batch.run(request, progress)
    progress.finish()
    for outcome in report.failed:
        print(f"dsen2: error: {outcome.input}: {outcome.error}", file=sys.stderr)
    print(f"{report.summary()}; report: {', '.join(map(str, request.report_paths))}")
    if report.interrupted:
        print("dsen2: interrupted; finished products are kept: run again", file=sys.stderr)
        return EXIT_INTERRUPTED
    return EXIT_ERROR if report.failed else 0


def _models(args: argparse.Namespace) -> int:
    rows = []
    for entry in load_catalogue():
        metadata = read_metadata(models_dir() / entry.file)
        rows.append({**entry.__dict__, "metadata": json.loads(metadata.to_json())})
    if args.json:
        print(json.dumps(rows, indent=2))
        return 0
    name_width = max((len(row["metadata"]["name"]) for row in rows), default=0)
    for row in rows:
        meta = row["metadata"]
        state = "trained" if meta["trained"] else "UNTRAINED baseline"
        print(
            f"{row['family']:<8} {row['scale']}×  {meta['name']:<{name_width}} {meta['variant']} "
            f"d={meta['num_blocks']} f={meta['feature_size']}  {state}  {row['file']}"
        )
        print(f"          sha256 {row['sha256']}")
    return 0


def _tile_size(text: str) -> int:
    return _whole_number(text, 0)


def _positive_int(text: str) -> int:
    return _whole_number(text, 1)


def _whole_number(text: str, least: int) -> int:
    try:
        value = int(text)
    except ValueError:
        value = least - 1
    if value < least:
        raise argparse.ArgumentTypeError(
            f"must be a whole number of at least {least}, got {text!r}"
        )
    return value


def _parse_roi(text: str) -> Window:
    try:
        col, row, width, height = (int(part) for part in text.split(","))
        return Window(col, row, width, height)
    except ValueError as error:
        raise argparse.ArgumentTypeError(
            f"ROI must be COL,ROW,WIDTH,HEIGHT in whole pixels, got {text!r}"
        ) from error


class _ProgressBar:
    """A bar on a terminal; plain ``progress: NN%`` lines otherwise (parsable by SNAP)."""

    def __init__(self, enabled: bool) -> None:
        self._enabled = enabled
        self._tty = sys.stderr.isatty()
        self._last = -1

    def __call__(self, fraction_done: float, message: str) -> None:
        percent = int(fraction_done * 100)
        if not self._enabled or percent == self._last:
            return
        self._last = percent
        if self._tty:
            filled = percent * 30 // 100
            sys.stderr.write(f"\r[{'#' * filled}{'.' * (30 - filled)}] {percent:3d}% {message}")
        else:
            sys.stderr.write(f"progress: {percent}%\n")
        sys.stderr.flush()

    def finish(self) -> None:
        if self._enabled and self._tty:
            sys.stderr.write("\n")


if __name__ == "__main__":
    sys.exit(main())
