"""The original DSen2 inference path, reproduced for benchmarking only (TensorFlow/Keras).

Runs in its own environment (``make bench-peer`` creates ``.venv-peer`` with tensorflow-cpu); never
imported by dsen2. It follows what the paper's published inference does, written here from its
description: the coarse bands are bilinearly upsampled to 10 m and the whole image is held in
memory; it is cut into 128-px patches that overlap by an 8-px border on each side; a Keras model of
the paper's architecture is built for the call; all patches are predicted in batches; the patch
centres are stitched back. Weights are He-uniform (speed does not depend on their values).

    .venv-peer/bin/python bench/peer_keras.py INPUT.npz  # prints one JSON line
"""

from __future__ import annotations

import json
import sys
import time

import numpy as np
from peak_memory import peak_rss_mb  # bench/ is this script's own folder

PATCH_PX = 128
BORDER_PX = 8
BATCH = 32
SCALE_DN = 2000.0


def build_model(in_bands: int, out_bands: int, feature_size: int, num_blocks: int):
    import keras
    from keras import layers

    bands = keras.Input((None, None, in_bands))
    skip = keras.Input((None, None, out_bands))
    init = "he_uniform"
    x = layers.Conv2D(feature_size, 3, padding="same", kernel_initializer=init)(bands)
    x = layers.Activation("relu")(x)
    for _ in range(num_blocks):
        y = layers.Conv2D(feature_size, 3, padding="same", kernel_initializer=init)(x)
        y = layers.Activation("relu")(y)
        y = layers.Conv2D(feature_size, 3, padding="same", kernel_initializer=init)(y)
        y = layers.Lambda(lambda t: t * 0.1)(y)
        x = layers.Add()([x, y])
    x = layers.Conv2D(out_bands, 3, padding="same", kernel_initializer=init)(x)
    return keras.Model([bands, skip], layers.Add()([x, skip]))


def upsample_bilinear(stack: np.ndarray, factor: int) -> np.ndarray:
    import tensorflow as tf

    channels_last = np.moveaxis(stack, 0, -1)[np.newaxis]
    rows, cols = stack.shape[1:]
    size = (rows * factor, cols * factor)
    return tf.image.resize(channels_last, size, method="bilinear").numpy()[0]


def superresolve(
    b10: np.ndarray, b20: np.ndarray, feature_size: int, num_blocks: int
) -> np.ndarray:
    """The 20 m network on a whole image: [4,H,W] and [6,H/2,W/2] DN → [H,W,6] DN."""
    up20 = upsample_bilinear(b20, 2) / SCALE_DN
    image = np.concatenate([np.moveaxis(b10, 0, -1) / SCALE_DN, up20], axis=-1)
    rows, cols = image.shape[:2]
    step = PATCH_PX - 2 * BORDER_PX
    padded = np.pad(
        image,
        ((BORDER_PX, BORDER_PX + step), (BORDER_PX, BORDER_PX + step), (0, 0)),
        mode="symmetric",
    )
    corners = [(r, c) for r in range(0, rows, step) for c in range(0, cols, step)]
    patches = np.stack([padded[r : r + PATCH_PX, c : c + PATCH_PX] for r, c in corners])
    model = build_model(image.shape[-1], up20.shape[-1], feature_size, num_blocks)
    predicted = model.predict(
        [patches, patches[..., -up20.shape[-1] :]], batch_size=BATCH, verbose=0
    )
    out = np.zeros((rows + step, cols + step, up20.shape[-1]), np.float32)
    for (r, c), patch in zip(corners, predicted, strict=True):
        out[r : r + step, c : c + step] = patch[BORDER_PX : BORDER_PX + step, BORDER_PX:-BORDER_PX]
    return out[:rows, :cols] * SCALE_DN


def main(path: str) -> None:
    with np.load(path) as archive:
        b10, b20 = archive["b10"], archive["b20"]
    started = time.perf_counter()
    result = superresolve(b10, b20, feature_size=128, num_blocks=6)
    seconds = time.perf_counter() - started
    peak_mb = peak_rss_mb()
    print(
        json.dumps(
            {
                "seconds": seconds,
                "peak_rss_mb": peak_mb,
                "pixels": int(b10.shape[1] * b10.shape[2]),
                "finite": bool(np.isfinite(result).all()),
            }
        )
    )


if __name__ == "__main__":
    main(sys.argv[1])
