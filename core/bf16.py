"""bf16 inference on CPUs with native bf16 (AVX-512-BF16 or AMX), through OpenVINO.

ONNX Runtime's CPU provider has no bf16 convolution, so ``--precision bf16`` runs the same .onnx
file with OpenVINO's CPU plugin (optional: ``pip install 'dsen2[bf16]'``). The graph is split at
its long skip, ``out = (body + skip / s) × s``:

- the convolution body runs in bf16 (about twice the fp32 rate);
- the skip (the bilinear upsampling of the coarse bands in DN, ÷ s) and the final sum stay fp32,
  so bright pixels are not rounded to bf16's 8-bit mantissa (±8 DN at 3000 DN) and only the
  learned residual carries bf16's error. Measured cost on real scenes: README, "Performance".
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from dsen2.errors import DeviceError, MissingDependencyError, ModelError
from dsen2.tiling import round_up

PROVIDER = "OpenVINO-bf16"  # what Bf16Session.get_providers() reports
# Inputs are widened to a multiple of this many 10 m columns: OpenVINO's bf16 convolutions run
# up to 3× slower on some widths (AMX Xeon, DSen2 d=6 f=128, 416 rows: 1.1–1.2 s at 400, 416,
# 432 or 448 columns, 1.5 s at 408 or 412, 3.5 s at 404; README "Performance").
ALIGN_COLUMNS_PX = 16


def _openvino() -> Any:
    try:
        import openvino
    except ImportError as error:
        raise MissingDependencyError(
            "--precision bf16 needs OpenVINO: pip install 'dsen2[bf16]' (or use --precision fp32)"
        ) from error
    return openvino


def cpu_has_bf16() -> bool:
    """Whether OpenVINO is installed and this CPU computes bf16 natively."""
    try:
        return _native_bf16(_openvino().Core())
    except DeviceError:
        return False


def _native_bf16(core: Any) -> bool:
    return "BF16" in core.get_property("CPU", "OPTIMIZATION_CAPABILITIES")


class Bf16Session:
    """A DSen2 graph with its body in bf16 and its skip in fp32, run like an ONNX Runtime
    session (``run(None, feeds)``, ``get_providers()``).

    Raises:
        DeviceError: the CPU has no native bf16 (MissingDependencyError: OpenVINO is missing).
        ModelError: the file is not a DSen2 graph ending in ``(body + skip / s) × s``.
    """

    def __init__(self, model_path: Path, threads: int) -> None:
        openvino = _openvino()
        core = openvino.Core()
        if not _native_bf16(core):
            raise DeviceError(
                "this CPU has no native bf16 (AVX-512-BF16 or AMX); use --precision fp32"
            )
        try:
            model = core.read_model(str(model_path))
        except Exception as error:  # OpenVINO raises its own untyped exceptions
            raise ModelError(f"OpenVINO cannot load {str(model_path)!r}: {error}") from error
        body, skip, self._scale = _split_at_skip(model, model_path)
        parameters = list(model.get_parameters())
        config = {"INFERENCE_NUM_THREADS": threads, "PERFORMANCE_HINT": "LATENCY"}
        self._body = core.compile_model(
            openvino.Model([body], parameters, "body"), "CPU",
            {**config, "INFERENCE_PRECISION_HINT": "bf16"},
        )  # fmt: skip
        self._skip = core.compile_model(
            openvino.Model([skip], parameters, "skip"), "CPU",
            {**config, "INFERENCE_PRECISION_HINT": "f32"},
        )  # fmt: skip
        self._body_request = self._body.create_infer_request()
        self._skip_request = self._skip.create_infer_request()

    def run(
        self, output_names: None, feeds: dict[str, npt.NDArray[np.float32]]
    ) -> list[npt.NDArray[np.float32]]:
        """The graph's single output for ``feeds`` (``output_names`` must be None).

        The image inputs are widened on the right by repeating their last column to a multiple of
        ALIGN_COLUMNS_PX 10 m columns (and of every input's grid factor), and the output is
        cut back: an output pixel depends only on inputs within the receptive field, so the
        tile's centre (a halo of at least the receptive field inside its edges) is unchanged.
        """
        images = {name: array for name, array in feeds.items() if array.ndim == 4}  # no weights
        cols = max(array.shape[-1] for array in images.values())
        factors = {name: cols // array.shape[-1] for name, array in images.items()}
        wide = round_up(cols, math.lcm(ALIGN_COLUMNS_PX, *factors.values()))
        if wide != cols:
            feeds = {
                **feeds,
                **{name: _widen(a, (wide - cols) // factors[name]) for name, a in images.items()},
            }
        body = self._body_request.infer(feeds)[self._body.outputs[0]]
        skip = self._skip_request.infer(feeds)[self._skip.outputs[0]]
        result = ((body + skip) * self._scale).astype(np.float32, copy=False)
        out_cols = result.shape[-1] * cols // wide
        return [np.ascontiguousarray(result[..., :out_cols])]

    def get_providers(self) -> list[str]:
        return [PROVIDER]


def _widen(array: npt.NDArray[np.float32], columns: int) -> npt.NDArray[np.float32]:
    """``array`` with its last column repeated ``columns`` more times."""
    return np.pad(array, [(0, 0)] * (array.ndim - 1) + [(0, columns)], mode="edge")


def _split_at_skip(model: Any, model_path: Path) -> tuple[Any, Any, np.float32]:
    """(body output, skip output, s) of a graph whose result is ``Multiply(Add(body, skip), s)``
    with the skip side a ``Divide`` (our exports: dsen2.train.network)."""
    refused = ModelError(
        f"{str(model_path)!r} does not end in the DSen2 skip (body + skip / s) × s, so it cannot "
        "run with --precision bf16; use --precision fp32"
    )
    results = model.get_results()
    if len(results) != 1:
        raise refused
    multiply = results[0].input_value(0).get_node()
    if multiply.get_type_name() != "Multiply":
        raise refused
    by_type = {value.get_node().get_type_name(): value for value in multiply.input_values()}
    if set(by_type) != {"Add", "Constant"}:
        raise refused
    scale = np.asarray(by_type["Constant"].get_node().get_data(), np.float32)
    add = by_type["Add"].get_node()
    sides = {value.get_node().get_type_name(): value for value in add.input_values()}
    if "Divide" not in sides or len(sides) != 2 or scale.size != 1:
        raise refused
    (body,) = (value for name, value in sides.items() if name != "Divide")
    return body, sides["Divide"], np.float32(scale.reshape(()))
