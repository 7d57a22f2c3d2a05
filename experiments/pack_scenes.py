"""Pack experiments' scenes for a machine without GDAL (a GPU box lent for training).

    python experiments/pack_scenes.py experiments/finetune-benmock-a-d8-t2x.toml \
        experiments/finetune-up42-d8-s6x.toml --out runs/pack

Writes one compressed .npz per scene the configs use, each once (dsen2.train.pack), and prints
their sizes; experiments/gpu-*.toml list these files. Needs GDAL and the scenes (run
experiments/prepare_scarce_data.py first).
"""

from __future__ import annotations

import argparse
from pathlib import Path

from dsen2.train.config import load_config
from dsen2.train.pack import pack_experiments


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("configs", type=Path, nargs="+", help="experiments whose scenes to pack")
    parser.add_argument("--out", type=Path, required=True, help="folder for the .npz files")
    args = parser.parse_args()
    configs = [load_config(path) for path in args.configs]
    packed = pack_experiments(configs, args.out)
    trained = {scene for config in configs for scene in config.data.train}
    print("| scene | role | packed file | MB |")
    print("|---|---|---|---|")
    for scene in packed:
        role = "train" if scene.source in trained else "validation"
        size_mb = scene.size_bytes / 1e6
        print(f"| {Path(scene.source).name} | {role} | {scene.path} | {size_mb:.1f} |")
    print(f"total {sum(s.size_bytes for s in packed) / 2**20:.1f} MiB in {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
