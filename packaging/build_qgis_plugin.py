"""Build the installable QGIS plugin zip: ``dist/dsen2_superresolution-<version>.zip``.

The zip has the layout QGIS's "Install from ZIP" and plugins.qgis.org expect: one top folder (the
plugin's module name) with ``metadata.txt`` and ``__init__.py``. The dsen2 core is bundled under
``ext/`` (without the torch training code) with its models and a minimal ``.dist-info`` so
``dsen2.__version__`` is right; tests, caches and bytecode are left out.

    python packaging/build_qgis_plugin.py [--output-dir dist]
"""

from __future__ import annotations

import argparse
import configparser
import sys
import tomllib
import zipfile
from collections.abc import Iterator
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PLUGIN_NAME = "dsen2_superresolution"
_SKIPPED_PARTS = {"__pycache__", "train", "tests", ".mypy_cache", ".ruff_cache", ".pytest_cache"}
_SKIPPED_SUFFIXES = {".pyc", ".pyo"}


def project_version() -> str:
    with open(ROOT / "pyproject.toml", "rb") as handle:
        return str(tomllib.load(handle)["project"]["version"])


def plugin_version() -> str:
    metadata = configparser.ConfigParser(interpolation=None)
    metadata.read(ROOT / "qgis_plugin" / "metadata.txt", encoding="utf-8")
    return metadata["general"]["version"]


def _files(folder: Path) -> Iterator[Path]:
    for path in sorted(folder.rglob("*")):
        relative = path.relative_to(folder)
        if path.is_file() and not _SKIPPED_PARTS & set(relative.parts):
            if path.suffix not in _SKIPPED_SUFFIXES:
                yield path


def build(output_dir: Path) -> Path:
    """Write the plugin zip into ``output_dir`` and return its path.

    Raises:
        SystemExit: metadata.txt and pyproject.toml disagree on the version.
    """
    version = project_version()
    if plugin_version() != version:
        raise SystemExit(
            f"qgis_plugin/metadata.txt says version {plugin_version()} but pyproject.toml says "
            f"{version}; make them equal"
        )
    output_dir.mkdir(parents=True, exist_ok=True)
    archive = output_dir / f"{PLUGIN_NAME}-{version}.zip"
    partial = archive.with_name(f".{archive.name}.partial")
    ext = f"{PLUGIN_NAME}/ext"
    with zipfile.ZipFile(partial, "w", zipfile.ZIP_DEFLATED) as bundle:
        for path in _files(ROOT / "qgis_plugin"):
            bundle.write(path, f"{PLUGIN_NAME}/{path.relative_to(ROOT / 'qgis_plugin').as_posix()}")
        bundle.write(ROOT / "LICENSE", f"{PLUGIN_NAME}/LICENSE")
        for path in _files(ROOT / "core"):
            bundle.write(path, f"{ext}/dsen2/{path.relative_to(ROOT / 'core').as_posix()}")
        for path in _files(ROOT / "models"):
            bundle.write(path, f"{ext}/dsen2/models/{path.relative_to(ROOT / 'models').as_posix()}")
        bundle.writestr(
            f"{ext}/dsen2-{version}.dist-info/METADATA",
            f"Metadata-Version: 2.1\nName: dsen2\nVersion: {version}\n",
        )
    partial.replace(archive)
    return archive


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--output-dir", type=Path, default=ROOT / "dist")
    args = parser.parse_args(argv)
    print(build(args.output_dir))
    return 0


if __name__ == "__main__":
    sys.exit(main())
