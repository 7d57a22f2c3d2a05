"""Many products on a Dask cluster: one product per task, resumable, failures kept to their row.

``dsen2 batch`` expands its inputs into products, names each output after its product id and
submits one task per product to a Dask distributed cluster: a ``LocalCluster`` sized to this
machine, or an existing scheduler. Each task runs the CLI's own path (``open_product`` +
``superresolve`` with the same :class:`RunOptions`), so outputs equal ``dsen2 run``'s bit for bit.

Dask is an optional extra (``pip install 'dsen2[batch]'``). It is imported only when a cluster is
opened or a task asks for its worker, so the rest of dsen2 imports without it.
"""

from __future__ import annotations

import csv
import dataclasses
import io
import json
import logging
import os
import re
import signal
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from enum import StrEnum
from pathlib import Path
from typing import TYPE_CHECKING, Protocol, TextIO

import onnxruntime as ort
from osgeo import gdal

from dsen2 import __version__
from dsen2.catalogue import ResolvedModel, resolve_models
from dsen2.engine import (
    DEFAULT_TILE_SIZE_PX,
    RunOptions,
    default_tile_size_px,
    recorded_warnings,
    superresolve,
)
from dsen2.errors import ClusterError, DSen2Error, InputNotFoundError, OutputError
from dsen2.inference import Device, Precision, available_cores
from dsen2.product import RASTER_SUFFIXES, Product, open_product
from dsen2.raster import GdalErrors

if TYPE_CHECKING:
    from distributed import Client, SpecCluster

PIP_INSTALL = "pip install 'dsen2[batch]'"
# Peak memory of one product is bounded by the tile, not the image. Measured with the shipped
# DSen2 pair (d=6, f=128) at 384 px tiles: 0.70 GB peak RSS for `dsen2 run`, 0.84 GB for a Dask
# worker process (0.12 GB idle) after a product. Each worker gets 1 GiB plus 1 GiB per
# (tile / 384 px)², as ONNX Runtime's working buffers grow with the tile area.
_BASE_MEMORY_BYTES = 1 << 30
_TILE_MEMORY_BYTES = 1 << 30
WORKER_GDAL_CACHE_BYTES = 256 * 1024 * 1024  # as the CLI caps its own process
REPORT_STEM = "batch-report"
_PRODUCT_FILE_SUFFIXES = (".zip", ".xml", ".dim")
_UNSAFE_NAME = re.compile(r"[^A-Za-z0-9._-]+")
_MTD_FILE = re.compile(r"^MTD_MSIL(1C|2A)\.xml$", re.IGNORECASE)
_RESOLUTION_FOLDER = re.compile(r"^R\d+m$")


class Status(StrEnum):
    """What happened to one product."""

    DONE = "done"
    SKIPPED = "skipped"  # its output was already there, made from the same input and options
    FAILED = "failed"
    CANCELLED = "cancelled"  # the batch was interrupted before the product finished


@dataclass(frozen=True)
class ProductJob:
    """One product to super-resolve: the task's whole input (it travels to a worker).

    Attributes:
        index: position among the batch's inputs (the report keeps this order).
        input: absolute path of the product.
        product_id: the product's id, which names the output.
        output: absolute path of the output GeoTIFF.
        options: the run's options, as ``dsen2 run`` takes them.
        offset_dn: for band folders, the DN offset (``--offset``); None otherwise.
    """

    index: int
    input: Path
    product_id: str
    output: Path
    options: RunOptions
    offset_dn: float | None = None

    def outcome(
        self,
        status: Status,
        seconds: float | None,
        error: str | None = None,
        warnings: tuple[str, ...] = (),
    ) -> Outcome:
        output = self.output if status in (Status.DONE, Status.SKIPPED) else None
        return Outcome(
            self.index, self.input, self.product_id, status, seconds, output, error, warnings
        )


@dataclass(frozen=True)
class Outcome:
    """One row of the report."""

    index: int
    input: Path
    product_id: str | None
    status: Status
    seconds: float | None
    output: Path | None
    error: str | None = None
    warnings: tuple[str, ...] = ()  # the run's (dsen2.engine.RunResult.warnings)

    def row(self) -> dict[str, str | float | None]:
        return {
            "input": str(self.input),
            "product_id": self.product_id,
            "status": self.status.value,
            "seconds": None if self.seconds is None else round(self.seconds, 3),
            "output": None if self.output is None else str(self.output),
            "error": self.error,
            "warnings": " | ".join(self.warnings) or None,
        }


@dataclass(frozen=True)
class Provenance:
    """What an output was made from and how. A finished output whose provenance equals the
    request's is skipped; any difference redoes it.

    The output's own tags carry the product id, model checksums and bands, and its layout shows
    COG and data type; the options no tag records (tile size, requested ROI, DN offset,
    precision) and the input files' sizes and modification times (a product downloaded or
    edited again is redone) are kept in a sidecar ``.<output name>.batch.json`` written after
    the output.
    """

    product_id: str
    models_sha256: tuple[tuple[str, str], ...]  # (model name, sha256), by scale
    band_names: tuple[str, ...]
    reflectance: bool
    cog: bool
    tile_size_px: int
    roi_10m_px: tuple[int, int, int, int] | None
    offset_dn: float | None
    precision: str = "fp32"
    inputs: tuple[tuple[str, int, int], ...] = ()  # (path, bytes, mtime ns) of each file read

    def to_json(self) -> str:
        return json.dumps(dataclasses.asdict(self), indent=2) + "\n"


def provenance_of(
    product: Product,
    models: dict[int, ResolvedModel],
    options: RunOptions,
    offset_dn: float | None,
) -> Provenance:
    roi = options.roi
    return Provenance(
        product_id=product.product_id,
        models_sha256=tuple((m.metadata.name, m.sha256) for _, m in sorted(models.items())),
        band_names=options.output_bands,
        reflectance=options.reflectance,
        cog=options.cog,
        tile_size_px=options.tile_size_px,
        roi_10m_px=None if roi is None else (roi.col_off, roi.row_off, roi.width, roi.height),
        offset_dn=offset_dn,
        precision=options.precision.value,
        inputs=tuple(
            (str(path), stat.st_size, stat.st_mtime_ns)
            for path in sorted(product.source_files())
            for stat in (path.stat(),)
        ),
    )


def sidecar_path(output: Path) -> Path:
    """Where the provenance of ``output`` is recorded (hidden, next to it)."""
    return output.with_name(f".{output.name}.batch.json")


def current_warnings(output: Path, expected: Provenance) -> tuple[str, ...] | None:
    """The warnings the run that made ``output`` gave (from its tags) when ``output`` is a
    finished file made from ``expected``'s input and options; None when it is not."""
    sidecar = sidecar_path(output)
    if not (output.is_file() and sidecar.is_file()):
        return None
    try:
        recorded = json.loads(sidecar.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    if recorded != json.loads(expected.to_json()):
        return None
    with GdalErrors():  # an unreadable output is simply made again
        dataset = gdal.OpenEx(str(output), gdal.OF_RASTER | gdal.OF_READONLY)
    if dataset is None or dataset.RasterCount == 0:
        return None
    try:
        tags = dataset.GetMetadata() or {}
        try:
            models = json.loads(tags.get("DSEN2_MODELS", "{}"))
        except ValueError:
            return None
        current = (
            tags.get("INPUT_PRODUCT") == expected.product_id
            and {name: m.get("sha256") for name, m in models.items()}
            == dict(expected.models_sha256)
            and tags.get("BAND_NAMES") == ",".join(expected.band_names)
            and (dataset.GetRasterBand(1).DataType == gdal.GDT_Float32) == expected.reflectance
            and (dataset.GetMetadataItem("LAYOUT", "IMAGE_STRUCTURE") == "COG") == expected.cog
        )
        return recorded_warnings(tags) if current else None
    finally:
        dataset = None


def process_product(job: ProductJob) -> Outcome:
    """The task: super-resolve one product as ``dsen2 run`` does, unless its output is current.

    Bad input (any DSen2Error) and unexpected errors become a failed outcome, never retried.

    Raises:
        OSError: a transient I/O error (not a DSen2Error); Dask retries the task.
    """
    started = time.perf_counter()
    try:
        status, warnings = _superresolve_unless_current(job)
    except DSen2Error as error:
        return job.outcome(Status.FAILED, time.perf_counter() - started, str(error))
    except OSError:
        raise
    except Exception as error:  # a bug: recorded on the product's row, not retried
        message = f"{type(error).__name__}: {error}"
        return job.outcome(Status.FAILED, time.perf_counter() - started, message)
    return job.outcome(status, time.perf_counter() - started, warnings=warnings)


def _superresolve_unless_current(job: ProductJob) -> tuple[Status, tuple[str, ...]]:
    options = job.options
    if options.threads is None:
        options = dataclasses.replace(options, threads=_threads_per_task())
    _configure_gdal(options.threads)
    product = open_product([job.input], offset_dn=job.offset_dn)
    expected = provenance_of(
        product, resolve_models(options.model, options.scales), options, job.offset_dn
    )
    earlier = current_warnings(job.output, expected)
    if earlier is not None:  # made before: its warnings, from its tags, stay in the report
        return Status.SKIPPED, earlier
    sidecar = sidecar_path(job.output)
    sidecar.unlink(missing_ok=True)  # from here on the output is not current
    _remove_partials(job.output)  # left by a worker killed mid-product
    result = superresolve(product, job.output, options)
    _write_atomically(sidecar, expected.to_json())
    return Status.DONE, result.warnings


def _remove_partials(output: Path) -> None:
    """Delete the temporary files a run towards ``output`` leaves when its process is killed."""
    for stale in output.parent.glob(f".{output.name}.*.partial*"):
        stale.unlink(missing_ok=True)


def _threads_per_task() -> int | None:
    """CPU threads for a task whose options leave it open: the worker machine's cores shared
    among the worker's task slots; all cores outside a Dask worker (as the CLI)."""
    try:
        from distributed import get_worker
    except ImportError:
        return None
    try:
        worker = get_worker()
    except ValueError:  # not running inside a Dask worker
        return None
    return max(1, available_cores() // max(1, worker.state.nthreads))


def _configure_gdal(threads: int | None) -> None:
    """Cap GDAL's block cache (5 % of RAM per process by default) and JPEG 2000 decoding threads
    (all cores by default), so that many workers on one machine do not oversubscribe it."""
    if "GDAL_CACHEMAX" not in os.environ:
        gdal.SetCacheMax(WORKER_GDAL_CACHE_BYTES)
    if threads and "GDAL_NUM_THREADS" not in os.environ:
        gdal.SetConfigOption("GDAL_NUM_THREADS", str(threads))


def _write_atomically(path: Path, text: str) -> None:
    temp = path.with_name(f".{path.name}.{uuid.uuid4().hex[:8]}.partial")
    try:
        temp.write_text(text, encoding="utf-8")
        os.replace(temp, path)
    finally:
        temp.unlink(missing_ok=True)


# --- inputs ---------------------------------------------------------------------------------


def expand_inputs(inputs: Sequence[str | Path]) -> list[Path]:
    """The products named by ``inputs``: products, folders of products, or list files.

    A folder is one product when it is a SAFE folder (``*.SAFE``, or an ``MTD_MSIL*.xml`` at
    its top), a BEAM-DIMAP ``.data`` folder, a band folder (band rasters at its top) or an L2A
    ``IMG_DATA`` folder (only ``R10m``, ``R20m``, ``R60m`` inside); otherwise every product
    directly inside it (SAFE and band folders, ``.zip``, ``.dim``) is one. Any file that is not
    a product (``.zip``, ``.xml``, ``.dim``, ``.jp2``, ``.tif``) is a list: one path a line,
    ``#`` starts a comment, relative paths are relative to the list's folder. Paths that do not
    exist are kept; their product fails with the core's message.

    Raises:
        InputNotFoundError: a list file cannot be read, or a folder holds no product.
    """
    products: list[Path] = []
    for item in inputs:
        path = Path(item).absolute()
        if path.is_file() and path.suffix.lower() not in (
            *_PRODUCT_FILE_SUFFIXES,
            *RASTER_SUFFIXES,
        ):
            products.extend(expand_inputs(_read_list(path)))
        elif path.is_dir():
            inside = _products_in_folder(path)
            products.extend([path] if inside is None else inside)
        else:
            products.append(path)
    return products


def _read_list(path: Path) -> list[Path]:
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as error:
        raise InputNotFoundError(
            f"{str(path)!r} is neither a product nor a readable text list of products ({error})"
        ) from error
    lines = (line.split("#", 1)[0].strip() for line in text.splitlines())
    return [path.parent / line for line in lines if line]


def _products_in_folder(folder: Path) -> list[Path] | None:
    """The products inside ``folder``, or None when the folder is itself one product."""
    if folder.suffix.lower() in (".safe", ".data") or _is_safe_root(folder):
        return None
    children = sorted(folder.iterdir())
    if any(c.is_file() and c.suffix.lower() in RASTER_SUFFIXES for c in children):
        return None  # a band folder
    if children and all(c.is_dir() and _RESOLUTION_FOLDER.match(c.name) for c in children):
        return None  # an L2A IMG_DATA folder: R10m, R20m, R60m
    products = [
        child
        for child in children
        if (child.is_file() and child.suffix.lower() in (".zip", ".dim"))
        or (
            child.is_dir()
            and child.suffix.lower() != ".data"  # its .dim names the product
            and (child.suffix.lower() == ".safe" or _is_safe_root(child) or _holds_rasters(child))
        )
    ]
    if not products:
        raise InputNotFoundError(
            f"folder {str(folder)!r} holds no products (SAFE folders, .zip, .dim or band "
            "folders); pass products, folders of products, or a text file listing them"
        )
    return products


def _is_safe_root(folder: Path) -> bool:
    return any(child.is_file() and _MTD_FILE.match(child.name) for child in folder.iterdir())


def _holds_rasters(folder: Path) -> bool:
    return any(
        child.is_file() and child.suffix.lower() in RASTER_SUFFIXES for child in folder.iterdir()
    )


def output_name(product_id: str, options: RunOptions) -> str:
    """``<product_id>_10m.tif`` (``_5m.tif`` with bands ``5m``); unsafe characters become ``_``."""
    return f"{_UNSAFE_NAME.sub('_', product_id)}_{10 // options.output_factor}m.tif"


def plan_jobs(
    products: Sequence[Path],
    output_dir: Path,
    options: RunOptions,
    offset_dn: float | None = None,
) -> tuple[list[ProductJob], list[Outcome]]:
    """One job per product, named by its product id; products that cannot even be opened, and
    products whose id another one already has (both would write one file), fail here."""
    jobs: list[ProductJob] = []
    failed: list[Outcome] = []
    by_output: dict[Path, Path] = {}
    for index, path in enumerate(products):
        try:
            product_id = open_product([path], offset_dn=offset_dn).product_id
        except DSen2Error as error:
            failed.append(Outcome(index, path, None, Status.FAILED, 0.0, None, str(error)))
            continue
        output = output_dir.absolute() / output_name(product_id, options)
        if output in by_output:
            message = (
                f"product id {product_id!r} is also the id of {str(by_output[output])!r}: both "
                f"would write {output.name}; process them into different output folders"
            )
            failed.append(Outcome(index, path, product_id, Status.FAILED, 0.0, None, message))
            continue
        by_output[output] = path
        jobs.append(ProductJob(index, path, product_id, output, options, offset_dn))
    return jobs, failed


# --- the cluster ----------------------------------------------------------------------------


def task_memory_bytes(
    tile_size_px: int = DEFAULT_TILE_SIZE_PX, precision: Precision = Precision.FP32
) -> int:
    """Memory one worker needs to run one product with tiles of ``tile_size_px``. The budget
    holds for the precision's default tile (bf16's 768 px tiles need less than fp32's 384 px:
    dsen2.engine.default_tile_size_px) and grows with the tile's area above it."""
    area = (tile_size_px / default_tile_size_px(precision)) ** 2
    return _BASE_MEMORY_BYTES + int(_TILE_MEMORY_BYTES * max(1.0, area))


@dataclass(frozen=True)
class ClusterPlan:
    """The shape of a local cluster. Each worker is a process that runs one product at a time
    with ``threads_per_worker`` CPU threads (ONNX Runtime's and GDAL's decoding threads).

    Attributes:
        workers: worker processes.
        threads_per_worker: CPU threads each product gets (``RunOptions.threads``).
        memory_limit_bytes: Dask's memory limit of each worker.
        gpu_ids: the CUDA device each worker sees (``CUDA_VISIBLE_DEVICES``), or () on CPU.
    """

    workers: int
    threads_per_worker: int
    memory_limit_bytes: int
    gpu_ids: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        if self.workers < 1 or self.threads_per_worker < 1 or self.memory_limit_bytes < 1:
            raise ValueError(f"a cluster needs at least one worker, thread and byte: {self}")
        if self.gpu_ids and len(self.gpu_ids) != self.workers:
            raise ValueError(f"one GPU id per worker, got {self.gpu_ids} for {self.workers}")

    def describe(self) -> str:
        gib = self.memory_limit_bytes / (1 << 30)
        gpus = f", GPU {','.join(self.gpu_ids)}" if self.gpu_ids else ""
        return (
            f"{self.workers} worker(s) × {self.threads_per_worker} thread(s), "
            f"{gib:.1f} GiB memory limit each{gpus}"
        )


def plan_local_cluster(
    cores: int,
    available_memory_bytes: int,
    memory_per_worker_bytes: int,
    gpu_ids: Sequence[str] = (),
    workers: int | None = None,
    threads_per_worker: int | None = None,
) -> ClusterPlan:
    """Size a local cluster so that workers × threads ≈ cores and every worker has its memory.

    On CPU: workers = min(cores // threads, available memory // memory per worker), at least
    one; leftover cores become threads. With GPUs: one worker per GPU (or ``workers`` of them,
    sharing the GPUs in turn), the cores shared among them.
    """
    if gpu_ids:
        count = workers or len(gpu_ids)
        return ClusterPlan(
            count,
            threads_per_worker or max(1, cores // count),
            memory_per_worker_bytes,
            tuple(gpu_ids[i % len(gpu_ids)] for i in range(count)),
        )
    if workers is None:
        by_cores = cores // (threads_per_worker or 1)
        by_memory = available_memory_bytes // memory_per_worker_bytes
        workers = max(1, min(by_cores, by_memory))
    return ClusterPlan(
        workers, threads_per_worker or max(1, cores // workers), memory_per_worker_bytes
    )


def detect_gpus(device: Device) -> tuple[str, ...]:
    """CUDA devices the products can run on: none for ``cpu`` or without onnxruntime-gpu;
    ``CUDA_VISIBLE_DEVICES`` when set; else those ``nvidia-smi -L`` lists."""
    if device is Device.CPU or "CUDAExecutionProvider" not in ort.get_available_providers():
        return ()
    visible = os.environ.get("CUDA_VISIBLE_DEVICES")
    if visible is not None:
        return tuple(part.strip() for part in visible.split(",") if part.strip())
    try:
        listing = subprocess.run(
            ["nvidia-smi", "-L"], capture_output=True, text=True, timeout=30, check=True
        ).stdout
    except (OSError, subprocess.SubprocessError):
        return ()
    count = sum(1 for line in listing.splitlines() if line.startswith("GPU "))
    return tuple(str(index) for index in range(count))


def require_dask() -> None:
    """Raises DSen2Error with the install command when Dask distributed is missing."""
    try:
        import distributed  # noqa: F401
    except ImportError as error:
        raise DSen2Error(
            f"dsen2 batch needs Dask distributed ({error}); install it with {PIP_INSTALL}"
        ) from error


def scheduler_address(explicit: str | None) -> str | None:
    """``--scheduler``, else Dask's ``scheduler-address`` setting (``DASK_SCHEDULER_ADDRESS``)."""
    if explicit:
        return explicit
    import dask

    address = dask.config.get("scheduler-address", None)
    return str(address) if address else None


def machine_plan(
    options: RunOptions, workers: int | None, threads_per_worker: int | None
) -> ClusterPlan:
    """The local cluster for this machine: its cores, available memory (within any container
    limit) and GPUs."""
    import psutil
    from distributed.system import MEMORY_LIMIT

    available = min(int(psutil.virtual_memory().available), int(MEMORY_LIMIT))
    return plan_local_cluster(
        available_cores(),
        available,
        task_memory_bytes(options.tile_size_px, options.precision),
        detect_gpus(options.device),
        workers,
        threads_per_worker,
    )


@dataclass(frozen=True)
class ClusterInfo:
    """What the batch runs on, for the terminal and the report."""

    description: str
    dashboard: str | None


@contextmanager
def open_cluster(
    address: str | None, plan: ClusterPlan | None, dashboard_address: str | None = ":8787"
) -> Iterator[tuple[Client, ClusterInfo]]:
    """Connect to the scheduler at ``address``, or start a local cluster shaped by ``plan``;
    everything started here is closed on exit.

    Raises:
        ClusterError: the scheduler cannot be reached or has no workers.
    """
    from distributed import Client

    if address is not None:
        try:
            client = Client(address, timeout="10s")
        except (OSError, TimeoutError) as error:
            raise ClusterError(
                f"cannot reach the Dask scheduler {address!r} ({error}); start one with "
                "`dask scheduler` and workers with `dask worker ADDRESS`, or leave out "
                "--scheduler (and DASK_SCHEDULER_ADDRESS) for a local cluster"
            ) from error
        try:
            try:
                client.wait_for_workers(1, timeout=60)
            except TimeoutError as error:
                raise ClusterError(
                    f"the Dask scheduler {address!r} has no workers; start some with "
                    f"`dask worker {address} --nthreads 1 --memory-limit 2GiB`"
                ) from error
            scheduler = client.scheduler_info(n_workers=-1)
            workers = scheduler["workers"]
            threads = sum(worker["nthreads"] for worker in workers.values())
            info = ClusterInfo(
                f"scheduler {address}: {len(workers)} worker(s), {threads} task slot(s)",
                client.dashboard_link if "dashboard" in scheduler.get("services", {}) else None,
            )
            yield client, info
        finally:
            client.close()
        return
    assert plan is not None
    with _ctrl_c_ignored_by_new_processes():
        cluster = _start_local_cluster(plan, dashboard_address)
    try:
        client = Client(cluster)
        try:
            dashboard = cluster.dashboard_link if dashboard_address is not None else None
            yield client, ClusterInfo(f"local cluster: {plan.describe()}", dashboard)
        finally:
            client.close()
    finally:
        cluster.close()


def _start_local_cluster(plan: ClusterPlan, dashboard_address: str | None) -> SpecCluster:
    from distributed import LocalCluster, Nanny, Scheduler, SpecCluster

    if plan.gpu_ids:  # one worker per GPU, each seeing only its own device
        return SpecCluster(
            scheduler={"cls": Scheduler, "options": {"dashboard_address": dashboard_address}},
            workers={
                f"gpu-{index}": {
                    "cls": Nanny,
                    "options": {
                        "nthreads": 1,
                        "memory_limit": plan.memory_limit_bytes,
                        "env": {"CUDA_VISIBLE_DEVICES": gpu},
                        "silence_logs": logging.ERROR,
                    },
                }
                for index, gpu in enumerate(plan.gpu_ids)
            },
        )
    return LocalCluster(
        n_workers=plan.workers,
        threads_per_worker=1,  # one product at a time per worker process
        processes=True,
        memory_limit=plan.memory_limit_bytes,
        dashboard_address=dashboard_address,
        # the console is the batch's own (progress, report); Dask's warnings, e.g. a task
        # cancelled by Ctrl-C "ended with CancelledError", are noise there, its errors are not
        silence_logs=logging.ERROR,
    )


@contextmanager
def _ctrl_c_ignored_by_new_processes() -> Iterator[None]:
    """Worker processes started here ignore SIGINT (the disposition is inherited): Ctrl-C in a
    terminal reaches the whole process group, and only the client should act on it, by
    cancelling the tasks and closing the cluster."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = signal.signal(signal.SIGINT, signal.SIG_IGN)
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, previous)


def run_tasks(
    client: Client, jobs: Sequence[ProductJob], retries: int, progress: BatchProgress
) -> tuple[list[Outcome], bool]:
    """Submit one task per job and collect the outcomes as they finish.

    Returns the outcomes and whether the user interrupted (Ctrl-C): then the unfinished tasks
    are cancelled and their products reported as cancelled.
    """
    from distributed import as_completed

    futures = {
        client.submit(
            process_product,
            job,
            key=f"dsen2-{job.product_id}-{uuid.uuid4().hex[:8]}",
            retries=retries,
            pure=False,
        ): job
        for job in jobs
    }
    outcomes: list[Outcome] = []
    try:
        for future in as_completed(futures):
            job = futures[future]
            try:
                outcome = future.result()
            except Exception as error:  # transient errors after their retries, lost workers
                tries = f" (tried {retries + 1} times)" if isinstance(error, OSError) else ""
                outcome = job.outcome(
                    Status.FAILED, None, f"{type(error).__name__}: {error}{tries}"
                )
            future.release()
            outcomes.append(outcome)
            progress.finished(outcome)
    except KeyboardInterrupt:
        logging.getLogger("distributed").setLevel(logging.ERROR)  # no shutdown chatter
        client.cancel(list(futures))
        finished = {outcome.index for outcome in outcomes}
        outcomes += [
            job.outcome(Status.CANCELLED, None) for job in jobs if job.index not in finished
        ]
        return outcomes, True
    return outcomes, False


# --- the batch ------------------------------------------------------------------------------


class BatchProgress(Protocol):
    """How a batch reports: once when it starts, then after every product."""

    def started(self, products: int, cluster: ClusterInfo | None) -> None: ...

    def finished(self, outcome: Outcome) -> None: ...


@dataclass(frozen=True)
class BatchRequest:
    """Everything ``dsen2 batch`` is asked to do.

    Attributes:
        inputs: products, folders of products, or list files (see :func:`expand_inputs`).
        output_dir: where outputs, their sidecars and the report go (created if missing).
        options: run options for every product; ``threads`` is the CPU threads per product
            (default: the local cluster's plan, or the worker's cores over its task slots).
        offset_dn: for band folders, their DN offset.
        scheduler: address of an existing Dask scheduler; None for ``DASK_SCHEDULER_ADDRESS``
            or, when that is unset too, a local cluster.
        workers: local cluster workers (default: sized from cores and memory).
        retries: retries of a task after a transient I/O error.
        report: report path (``.json`` or ``.csv``); None for both in ``output_dir``.
        dashboard_address: where a local cluster serves its dashboard (None: no dashboard).
    """

    inputs: tuple[Path, ...]
    output_dir: Path
    options: RunOptions = field(default_factory=RunOptions)
    offset_dn: float | None = None
    scheduler: str | None = None
    workers: int | None = None
    retries: int = 2
    report: Path | None = None
    dashboard_address: str | None = ":8787"

    def __post_init__(self) -> None:
        if self.retries < 0:
            raise ClusterError(f"--retries must be 0 or more, got {self.retries}")
        if self.workers is not None and self.workers < 1:
            raise ClusterError(f"--workers must be 1 or more, got {self.workers}")
        if self.options.threads is not None and self.options.threads < 1:
            raise ClusterError(
                f"--threads-per-worker must be 1 or more, got {self.options.threads}"
            )
        if self.report is not None and self.report.suffix.lower() not in (".json", ".csv"):
            raise OutputError(f"the report must be a .json or .csv file, got {str(self.report)!r}")

    @property
    def report_paths(self) -> tuple[Path, ...]:
        if self.report is not None:
            return (self.report,)
        return tuple(self.output_dir / f"{REPORT_STEM}{suffix}" for suffix in (".json", ".csv"))


@dataclass(frozen=True)
class BatchReport:
    """What a batch did, product by product, in input order."""

    outcomes: tuple[Outcome, ...]
    seconds: float
    cluster: str
    interrupted: bool = False

    def count(self, status: Status) -> int:
        return sum(1 for outcome in self.outcomes if outcome.status is status)

    @property
    def failed(self) -> tuple[Outcome, ...]:
        return tuple(o for o in self.outcomes if o.status is Status.FAILED)

    def summary(self) -> str:
        counts = ", ".join(
            f"{self.count(s)} {s.value}"
            for s in Status
            if self.count(s) or s in (Status.DONE, Status.FAILED)
        )
        rate = self.count(Status.DONE) / max(self.seconds, 1e-9) * 60
        return (
            f"batch: {counts} of {len(self.outcomes)} products in {self.seconds:.1f} s "
            f"({rate:.1f} products/min)"
        )

    def to_json(self) -> str:
        document = {
            "dsen2_version": __version__,
            "cluster": self.cluster,
            "seconds": round(self.seconds, 3),
            "interrupted": self.interrupted,
            "counts": {status.value: self.count(status) for status in Status},
            "products": [outcome.row() for outcome in self.outcomes],
        }
        return json.dumps(document, indent=2) + "\n"

    def to_csv(self) -> str:
        buffer = io.StringIO()
        writer = csv.DictWriter(
            buffer,
            ["input", "product_id", "status", "seconds", "output", "error", "warnings"],
            lineterminator="\n",
        )
        writer.writeheader()
        for outcome in self.outcomes:
            writer.writerow(outcome.row())
        return buffer.getvalue()


def write_report(report: BatchReport, path: Path) -> None:
    """Write ``report`` as JSON or CSV (by ``path``'s suffix), atomically."""
    text = report.to_csv() if path.suffix.lower() == ".csv" else report.to_json()
    try:
        _write_atomically(path, text)
    except OSError as error:
        raise OutputError(f"cannot write the report {str(path)!r}: {error}") from error


def run(request: BatchRequest, progress: BatchProgress) -> BatchReport:
    """Run a batch: expand the inputs, open or reach a cluster, run one task per product,
    write the report(s).

    Raises:
        DSen2Error: Dask is missing, the inputs cannot be listed, the output folder or report
            cannot be written, or the cluster cannot be reached. A product's own failure is
            its report row, never an exception.
    """
    started = time.perf_counter()
    require_dask()
    address = scheduler_address(request.scheduler)
    options = dataclasses.replace(request.options, model=_absolute_model(request.options.model))
    plan = None
    if address is None:
        plan = machine_plan(options, request.workers, options.threads)
        options = dataclasses.replace(options, threads=plan.threads_per_worker)
    elif request.workers is not None:
        raise ClusterError(
            "--workers sizes a local cluster; with a scheduler, start workers with `dask worker`"
        )
    products = expand_inputs(request.inputs)
    _prepare_output_dir(request)
    jobs, outcomes = plan_jobs(products, request.output_dir, options, request.offset_dn)
    jobs_by_index = {job.index: job for job in jobs}
    interrupted = False
    description = "none (no product could be opened)"
    if jobs:
        with open_cluster(address, plan, request.dashboard_address) as (client, info):
            description = info.description
            progress.started(len(jobs) + len(outcomes), info)
            for outcome in outcomes:
                progress.finished(outcome)
            finished, interrupted = run_tasks(client, jobs, request.retries, progress)
        if interrupted and address is None:  # the local workers are gone: tidy what they left
            for outcome in finished:
                if outcome.status is Status.CANCELLED:
                    _remove_partials(jobs_by_index[outcome.index].output)
    else:
        progress.started(len(outcomes), None)
        for outcome in outcomes:
            progress.finished(outcome)
        finished = []
    report = BatchReport(
        tuple(sorted([*outcomes, *finished], key=lambda o: o.index)),
        time.perf_counter() - started,
        description,
        interrupted,
    )
    for path in request.report_paths:
        write_report(report, path)
    return report


def _prepare_output_dir(request: BatchRequest) -> None:
    """Create the output folder and check it, and the reports' folders, can be written to,
    before any cluster starts."""
    folder = request.output_dir
    if folder.exists() and not folder.is_dir():
        raise OutputError(f"the output folder {str(folder)!r} is a file; give a folder")
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as error:
        raise OutputError(f"cannot create the output folder {str(folder)!r}: {error}") from error
    for place in {folder, *(path.parent for path in request.report_paths)}:
        if not place.is_dir():
            raise OutputError(f"the report folder {str(place)!r} does not exist; create it first")
        if not os.access(place, os.W_OK):
            raise OutputError(f"the folder {str(place)!r} is not writable")


def _absolute_model(model: str) -> str:
    """Model paths made absolute (workers may run elsewhere); catalogue families unchanged."""
    parts = [part for part in model.split(",") if part]
    if len(parts) > 1 or Path(model).suffix.lower() == ".onnx" or Path(model).is_dir():
        return ",".join(str(Path(part).absolute()) for part in parts)
    return model


class ConsoleProgress:
    """The terminal's view of a batch: a bar over products on a terminal, one plain line per
    product otherwise (logs, CI). Failures and warnings are always printed as they happen."""

    def __init__(self, enabled: bool = True, stream: TextIO | None = None) -> None:
        self._enabled = enabled
        self._stream = stream or sys.stderr
        self._tty = self._stream.isatty()
        self._total = 0
        self._counts: dict[Status, int] = dict.fromkeys(Status, 0)

    def started(self, products: int, cluster: ClusterInfo | None) -> None:
        self._total = products
        if not self._enabled or cluster is None:
            return
        self._write(f"{cluster.description}\n")
        if cluster.dashboard:
            self._write(f"dashboard: {cluster.dashboard}{_dashboard_note()}\n")
        self._draw_bar()

    def finished(self, outcome: Outcome) -> None:
        self._counts[outcome.status] += 1
        if not self._enabled:
            return
        done = sum(self._counts.values())
        seconds = "" if outcome.seconds is None else f" {outcome.seconds:.1f} s"
        name = outcome.product_id or str(outcome.input)
        line = f"[{done}/{self._total}] {outcome.status.value:<7} {name}{seconds}"
        if outcome.error:
            line += f": {outcome.error}"
        line += "".join(f"\n  warning: {warning}" for warning in outcome.warnings)
        if self._tty:
            if outcome.status is Status.FAILED or outcome.warnings:
                self._write(f"\r\033[K{line}\n")
            self._draw_bar()
        else:
            self._write(line + "\n")

    def finish(self) -> None:
        if self._enabled and self._tty:
            self._write("\n")

    def _draw_bar(self) -> None:
        if not self._tty:
            return
        done = sum(self._counts.values())
        filled = done * 30 // max(1, self._total)
        counts = ", ".join(f"{n} {s.value}" for s, n in self._counts.items() if n)
        self._write(
            f"\r[{'#' * filled}{'.' * (30 - filled)}] {done}/{self._total} products {counts}"
        )

    def _write(self, text: str) -> None:
        self._stream.write(text)
        self._stream.flush()


def _dashboard_note() -> str:
    import importlib.util

    return "" if importlib.util.find_spec("bokeh") else " (its pages need: pip install bokeh)"
