"""ONNX Runtime sessions: device choice and session creation (once per run)."""

from __future__ import annotations

import os
from enum import StrEnum
from pathlib import Path
from typing import Protocol

import numpy as np
import numpy.typing as npt
import onnxruntime as ort

from dsen2.errors import DeviceError, ModelError

_CUDA = "CUDAExecutionProvider"
_CPU = "CPUExecutionProvider"


class Device(StrEnum):
    """Where the networks run. ``auto`` prefers CUDA when onnxruntime-gpu sees a GPU."""

    AUTO = "auto"
    CUDA = "cuda"
    CPU = "cpu"


def available_cores() -> int:
    """CPU cores this process may use (respects affinity masks and container limits)."""
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1


class Precision(StrEnum):
    """Arithmetic of the networks' convolutions. ``bf16`` runs them through OpenVINO on CPUs with
    native bf16 (dsen2.bf16), about twice as fast, at the accuracy cost the README reports."""

    FP32 = "fp32"
    BF16 = "bf16"


class Session(Protocol):
    """What the engine needs of an inference session (ONNX Runtime's, or dsen2.bf16's)."""

    def run(
        self, output_names: None, input_feed: dict[str, npt.NDArray[np.float32]]
    ) -> list[npt.NDArray[np.float32]]: ...

    def get_providers(self) -> list[str]: ...


_shared_arena_registered = False


def _register_shared_cpu_arena() -> None:
    """Register a CPU arena allocator in ONNX Runtime's process-wide environment, once."""
    global _shared_arena_registered
    if _shared_arena_registered:
        return
    memory_info = ort.OrtMemoryInfo(
        "Cpu", ort.OrtAllocatorType.ORT_ARENA_ALLOCATOR, 0, ort.OrtMemType.DEFAULT
    )
    try:
        ort.create_and_register_allocator(memory_info, ort.OrtArenaCfg(0, -1, -1, -1))
    except Exception as error:  # registered by another user of onnxruntime in this process
        if "already" not in str(error).lower():
            raise
    _shared_arena_registered = True


def create_session(
    model_path: Path,
    device: Device,
    threads: int | None = None,
    precision: Precision = Precision.FP32,
) -> Session:
    """Create an inference session on ``device`` computing in ``precision``.

    Raises:
        DeviceError: CUDA was requested but is not usable here, or bf16 is not available
            (it runs on CPU only); MissingDependencyError when OpenVINO is not installed.
        ModelError: the file is not a loadable ONNX graph.
    """
    if precision is Precision.BF16:
        if device is Device.CUDA:
            raise DeviceError(
                "precision bf16 runs on the CPU: use device cpu or auto, or fp32 on CUDA"
            )
        from dsen2.bf16 import Bf16Session

        return Bf16Session(model_path, threads or available_cores())
    options = ort.SessionOptions()
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    options.intra_op_num_threads = threads or available_cores()
    options.inter_op_num_threads = 1
    options.log_severity_level = 3
    # One CPU arena shared by all sessions of the process: the 2× and 6× networks then reuse
    # the same working buffers instead of each holding its own peak (measured on 420 px tiles
    # with both DSen2 networks: 1279 MB → 693 MB peak RSS, and no slower; without any arena
    # memory drops further but every run pays fresh page faults, ~25 % slower).
    _register_shared_cpu_arena()
    options.add_session_config_entry("session.use_env_allocators", "1")
    cuda_built = _CUDA in ort.get_available_providers()
    if device is Device.CUDA and not cuda_built:
        raise DeviceError(
            "CUDA was requested, but this onnxruntime has no CUDA provider; install "
            "onnxruntime-gpu (pip install 'dsen2[gpu]') or use --device cpu"
        )
    providers = [_CUDA, _CPU] if device is not Device.CPU and cuda_built else [_CPU]
    # No memory pattern on CPU: the pattern pre-plans one block per input shape that holds
    # every activation at its planned offset, about twice what the arena's reuse needs (DSen2
    # d=6 f=128, one session, 800² px tile: 2261 → 1239 MB peak RSS; 416²: 752 → 391 MB; run
    # time within the noise; README "Performance"). Not measured on CUDA, so kept there.
    options.enable_mem_pattern = providers != [_CPU]
    try:
        session = ort.InferenceSession(str(model_path), sess_options=options, providers=providers)
    except Exception as error:  # onnxruntime raises its own untyped exceptions
        raise ModelError(f"onnxruntime cannot load {str(model_path)!r}: {error}") from error
    if device is Device.CUDA and session.get_providers()[0] != _CUDA:
        raise DeviceError(
            "CUDA was requested, but onnxruntime found no usable GPU (check the NVIDIA driver "
            "and CUDA/cuDNN libraries); use --device cpu"
        )
    return session


def session_device(session: Session) -> str:
    """``"cuda"`` or ``"cpu"``: where a session actually runs."""
    return "cuda" if session.get_providers()[0] == _CUDA else "cpu"


def run_session(
    session: Session, inputs: dict[str, npt.NDArray[np.float32]]
) -> npt.NDArray[np.float32]:
    """Run a single-output graph on float32 inputs."""
    (output,) = session.run(None, inputs)
    return np.asarray(output, dtype=np.float32)
