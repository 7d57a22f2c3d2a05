"""The model catalogue: the literal list of shipped .onnx files, their families and sha256.

``models/catalogue.json`` is the registry; a file is only ever used after its sha256 matches.
Users can also pass their own exports (a folder, or .onnx paths), which are checked against the
ONNX contract through their metadata but not against the catalogue.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from importlib import resources
from pathlib import Path

from dsen2.errors import ModelError
from dsen2.modelmeta import ModelMetadata, read_metadata

CATALOGUE_FILE = "catalogue.json"


@dataclass(frozen=True)
class CatalogueEntry:
    """One shipped model file."""

    family: str
    scale: int
    file: str
    sha256: str
    description: str


@dataclass(frozen=True)
class ResolvedModel:
    """A model file ready to load: where it is, what it is, and its checksum."""

    path: Path
    metadata: ModelMetadata
    sha256: str
    from_catalogue: bool


def models_dir() -> Path:
    """The folder holding the shipped models and ``catalogue.json``."""
    return Path(str(resources.files("dsen2.models")))


def load_catalogue(directory: Path | None = None) -> list[CatalogueEntry]:
    """Read the catalogue (``models/catalogue.json``)."""
    path = (directory or models_dir()) / CATALOGUE_FILE
    try:
        document = json.loads(path.read_text(encoding="utf-8"))
        return [CatalogueEntry(**entry) for entry in document["models"]]
    except (OSError, KeyError, TypeError, json.JSONDecodeError) as error:
        raise ModelError(
            f"the model catalogue {str(path)!r} is unreadable ({error}); reinstall dsen2"
        ) from error


def families(entries: list[CatalogueEntry]) -> list[str]:
    return sorted({entry.family for entry in entries})


def sha256_of(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


# families a user may look for that are deliberately absent, and why (README "Limits")
_NOT_SHIPPED = {
    "vdsen2": ": VDSen2 weights are not shipped, as training them takes a GPU and none has "
    "been available (train one with experiments/gpu-vdsen2-t2x.toml, then pass its export)",
}


def resolve_models(
    model: str, scales: set[int], directory: Path | None = None
) -> dict[int, ResolvedModel]:
    """Find the model for each needed scale.

    Args:
        model: a catalogue family (``"dsen2"``), a folder of .onnx exports, or comma-separated
            .onnx paths.
        scales: the network scales needed (2 and/or 6).

    Raises:
        ModelError: unknown family, missing scale, checksum mismatch or broken contract.
    """
    candidate = Path(model)
    if "," in model or candidate.suffix.lower() == ".onnx" or candidate.is_dir():
        return _resolve_files(model, scales)
    entries = load_catalogue(directory)
    chosen = [entry for entry in entries if entry.family == model]
    if not chosen:
        reason = _NOT_SHIPPED.get(model.lower(), "")
        raise ModelError(
            f"no model family {model!r} in the catalogue{reason} (available: "
            f"{', '.join(families(entries))}); or pass a folder or .onnx files you exported"
        )
    resolved: dict[int, ResolvedModel] = {}
    for scale in sorted(scales):
        entry = next((e for e in chosen if e.scale == scale), None)
        if entry is None:
            raise ModelError(f"the catalogue has no {scale}× model in family {model!r}")
        path = (directory or models_dir()) / entry.file
        if not path.is_file():
            raise ModelError(f"catalogue model {str(path)!r} is missing; reinstall dsen2")
        digest = sha256_of(path)
        if digest != entry.sha256:
            raise ModelError(
                f"model file {str(path)!r} has sha256 {digest}, but the catalogue lists "
                f"{entry.sha256}: the file is corrupt or was replaced; reinstall dsen2"
            )
        resolved[scale] = ResolvedModel(path, _checked(path, scale), digest, from_catalogue=True)
    return resolved


def _resolve_files(model: str, scales: set[int]) -> dict[int, ResolvedModel]:
    candidate = Path(model)
    paths = (
        sorted(candidate.glob("*.onnx"))
        if candidate.is_dir()
        else [Path(part) for part in model.split(",") if part]
    )
    by_scale: dict[int, ResolvedModel] = {}
    for path in paths:
        if not path.is_file():
            raise ModelError(f"model file {str(path)!r} does not exist")
        metadata = read_metadata(path)
        if metadata.scale in by_scale:
            raise ModelError(f"{model!r} holds two {metadata.scale}× models; keep one")
        by_scale[metadata.scale] = ResolvedModel(path, metadata, sha256_of(path), False)
    missing = sorted(scales - set(by_scale))
    if missing:
        hint = " (--bands 20m needs only the 2× model)" if missing == [6] and 2 in scales else ""
        raise ModelError(f"{model!r} has no {' or '.join(f'{s}×' for s in missing)} model{hint}")
    return {scale: by_scale[scale] for scale in sorted(scales)}


def _checked(path: Path, scale: int) -> ModelMetadata:
    metadata = read_metadata(path)
    if metadata.scale != scale:
        raise ModelError(f"{str(path)!r} is a {metadata.scale}× model, listed as {scale}×")
    return metadata
