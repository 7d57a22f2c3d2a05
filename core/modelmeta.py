"""The versioned metadata every DSen2 ONNX file carries, read without building a session.

The metadata is one JSON document stored under the ``metadata_props`` key ``dsen2`` of the ONNX
ModelProto. It is read straight from the protobuf wire format (only the top-level
``metadata_props`` field is decoded; the graph is skipped), so listing models costs no session.
"""

from __future__ import annotations

import json
import mmap
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from dsen2.bands import BANDS_10M, BANDS_20M, BANDS_20M_TO_5M, BANDS_60M, OUTPUT_5M
from dsen2.errors import ModelError

# Schema 1: graph inputs are band stacks only. Schema 2 adds ``detail_weights``: a 2× or 6× graph
# that also takes the scene's detail weights (DETAIL_INPUTS, dsen2.detail). Exports write the lowest
# schema that describes them, so a dsen2 that reads only schema 1 refuses exactly the models it
# could not feed.
SCHEMA_VERSION = 2
DETAIL_SCHEMA_VERSION = 2
METADATA_KEY = "dsen2"
# The detail weights' graph input by scale: [N, output bands, 4], each output band's weights on
# B2 B3 B4 B8 (dsen2.detail), fitted by the engine on the product before its first tile.
DETAIL_INPUTS = {2: "w20", 6: "w60"}

# The ONNX contract by scale: graph inputs (name → bands) and the output's bands.
CONTRACTS: dict[int, tuple[dict[str, tuple[str, ...]], tuple[str, ...]]] = {
    2: ({"b10": BANDS_10M, "b20": BANDS_20M}, BANDS_20M),
    6: ({"b10": BANDS_10M, "b20": BANDS_20M, "b60": BANDS_60M}, BANDS_60M),
    4: ({"b10": BANDS_10M, "b20": BANDS_20M_TO_5M}, OUTPUT_5M),
}
OUTPUT_NAMES = {2: "sr20", 6: "sr60", 4: "sr05"}

# onnx.proto3: ModelProto.metadata_props is field 14; StringStringEntryProto has key=1, value=2.
_FIELD_METADATA_PROPS = 14


@dataclass(frozen=True)
class ModelMetadata:
    """What a DSen2 graph computes and how it was made.

    Attributes:
        name: unique model name, e.g. ``"dsen2-t2x-baseline"``.
        variant: architecture family: ``"DSen2"``, ``"VDSen2"`` or ``"custom"``.
        scale: the coarsest input's pixel size over the output's: 2 (20 m → 10 m network),
            6 (60 m → 10 m network) or 4 (10 m and 20 m → 5 m network, trained on SEN2VENµS).
        num_blocks, feature_size: ResBlock count d and width f.
        input_bands: band names of each graph input, by input name (``b10``, ``b20``, ``b60``).
        output_bands: band names of the single output, in channel order.
        receptive_field_px: how far (in 10 m pixels) an output pixel sees its input.
        macs_per_px: multiply-adds per output pixel (10 m, or 5 m for scale 4).
        trained: False for baselines and random-weight exports.
        training: free-text summary of the training (data, epochs, hardware) or why untrained.
        version: the model's own version string.
        schema_version: version of this metadata schema (1, or 2 with ``detail_weights``).
        detail_weights: the graph takes a further input (``w60`` at 6×, ``w20`` at 2×), the
            scene's detail weights (dsen2.detail), which the engine fits on the product before
            its first tile.
    """

    name: str
    variant: str
    scale: int
    num_blocks: int
    feature_size: int
    input_bands: dict[str, tuple[str, ...]]
    output_bands: tuple[str, ...]
    receptive_field_px: int
    macs_per_px: int
    trained: bool
    training: str
    version: str
    schema_version: int = 1
    detail_weights: bool = False

    def __post_init__(self) -> None:
        if self.scale not in CONTRACTS:
            raise ModelError(f"model {self.name!r}: scale must be 2, 4 or 6, got {self.scale}")
        expected_inputs, expected_outputs = CONTRACTS[self.scale]
        if not 1 <= self.schema_version <= SCHEMA_VERSION:
            raise ModelError(
                f"model {self.name!r} uses metadata schema {self.schema_version}; this dsen2 "
                f"reads schemas 1 to {SCHEMA_VERSION}: upgrade dsen2 or re-export the model"
            )
        if self.detail_weights and (self.scale not in DETAIL_INPUTS or self.schema_version < 2):
            raise ModelError(
                f"model {self.name!r}: detail weights need a 2× or 6× model and metadata schema "
                f"{DETAIL_SCHEMA_VERSION}, got scale {self.scale}, schema {self.schema_version}"
            )
        inputs = {key: tuple(value) for key, value in self.input_bands.items()}
        if inputs != expected_inputs or tuple(self.output_bands) != expected_outputs:
            raise ModelError(
                f"model {self.name!r}: bands {inputs} → {self.output_bands} break the contract "
                f"{expected_inputs} → {expected_outputs}"
            )
        if self.receptive_field_px < self.scale:
            raise ModelError(
                f"model {self.name!r}: receptive field {self.receptive_field_px} px "
                f"is smaller than its scale {self.scale}"
            )
        object.__setattr__(self, "input_bands", inputs)
        object.__setattr__(self, "output_bands", tuple(self.output_bands))

    @property
    def output_name(self) -> str:
        return OUTPUT_NAMES[self.scale]

    @property
    def output_gsd_m(self) -> int:
        """Pixel size of the output grid: 5 m for the 4× (SEN2VENµS) networks, else 10 m."""
        return 5 if self.scale == 4 else 10

    @property
    def detail_input(self) -> str:
        """The name of the graph's detail weights input (when it takes one)."""
        return DETAIL_INPUTS[self.scale]

    @property
    def graph_inputs(self) -> tuple[str, ...]:
        """The graph's input names in call order: the band stacks, then the detail weights
        (``w60`` at 6×, ``w20`` at 2×) if taken."""
        return (*self.input_bands, *((self.detail_input,) if self.detail_weights else ()))

    def to_json(self) -> str:
        fields = asdict(self)
        if not self.detail_weights:  # schema 1 documents stay as they were
            del fields["detail_weights"]
        return json.dumps(fields, sort_keys=True)

    @classmethod
    def from_json(cls, text: str, origin: str) -> ModelMetadata:
        try:
            fields: dict[str, Any] = json.loads(text)
            return cls(**fields)
        except (json.JSONDecodeError, TypeError) as error:
            raise ModelError(f"{origin}: malformed dsen2 metadata ({error})") from error


def read_metadata(path: str | Path) -> ModelMetadata:
    """Read a model's metadata from its .onnx file without creating an inference session.

    Raises:
        ModelError: unreadable file, not ONNX, or no/invalid dsen2 metadata.
    """
    props = read_metadata_props(path)
    if METADATA_KEY not in props:
        raise ModelError(f"{str(path)!r} has no dsen2 metadata; export it with dsen2.train.export")
    return ModelMetadata.from_json(props[METADATA_KEY], str(path))


def read_metadata_props(path: str | Path) -> dict[str, str]:
    """All ``metadata_props`` entries of an ONNX file (key → value)."""
    try:
        with (
            open(path, "rb") as handle,
            mmap.mmap(handle.fileno(), 0, access=mmap.ACCESS_READ) as data,
        ):
            return _parse_metadata_props(data)
    except (OSError, ValueError) as error:
        raise ModelError(f"cannot read model file {str(path)!r}: {error}") from error


def _parse_metadata_props(data: mmap.mmap) -> dict[str, str]:
    props: dict[str, str] = {}
    position, end = 0, len(data)
    while position < end:
        key, position = _varint(data, position)
        field_number, wire_type = key >> 3, key & 7
        if wire_type == 0:
            _, position = _varint(data, position)
        elif wire_type == 1:
            position += 8
        elif wire_type == 5:
            position += 4
        elif wire_type == 2:
            length, position = _varint(data, position)
            if field_number == _FIELD_METADATA_PROPS:
                entry = _parse_entry(bytes(data[position : position + length]))
                props[entry[0]] = entry[1]
            position += length
        else:
            raise ValueError(f"not an ONNX file (protobuf wire type {wire_type} at {position})")
    if position != end:
        raise ValueError("truncated ONNX file")
    return props


def _parse_entry(data: bytes) -> tuple[str, str]:
    values = {1: "", 2: ""}
    position = 0
    while position < len(data):
        key, position = _varint(data, position)
        if key & 7 != 2:
            raise ValueError("malformed metadata entry")
        length, position = _varint(data, position)
        values[key >> 3] = data[position : position + length].decode("utf-8")
        position += length
    return values[1], values[2]


def _varint(data: bytes | mmap.mmap, position: int) -> tuple[int, int]:
    result, shift = 0, 0
    while True:
        if position >= len(data):
            raise ValueError("truncated protobuf varint")
        byte = data[position]
        position += 1
        result |= (byte & 0x7F) << shift
        if not byte & 0x80:
            return result, position
        shift += 7
        if shift > 63:
            raise ValueError("malformed protobuf varint")
