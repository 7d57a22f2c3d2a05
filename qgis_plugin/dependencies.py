"""What the plugin needs in QGIS's own Python, and how to install it without breaking QGIS.

QGIS ships numpy and GDAL but not onnxruntime. The plugin installs a pinned onnxruntime with
pip into a folder inside the plugin, named by Python version and onnxruntime build, with
``--no-deps`` so QGIS's numpy is never upgraded (onnxruntime imports with numpy alone). The folder
is appended to ``sys.path``, so it only fills gaps and never shadows QGIS's own packages.
OpenVINO, which only the bf16 precision needs, installs the same way into its own folder.
"""

from __future__ import annotations

import importlib
import os
import shlex
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

PLUGIN_DIR = Path(__file__).resolve().parent
VENDORED_CORE_DIR = PLUGIN_DIR / "ext"
DEPENDENCIES_DIR = PLUGIN_DIR / "python-deps"
ONNXRUNTIME_CPU = ("onnxruntime", "1.32.0")
ONNXRUNTIME_GPU = ("onnxruntime-gpu", "1.31.1")  # newest onnxruntime-gpu on PyPI
OPENVINO = ("openvino", "2026.4.1")  # precision bf16 (dsen2.bf16); imports with numpy alone
PIP_TIMEOUT_S = 900


class DependencyError(RuntimeError):
    """Installing or importing the plugin's dependencies failed."""


@dataclass(frozen=True)
class Requirement:
    """One pinned distribution (an onnxruntime build, or OpenVINO) and the folder it installs
    into."""

    distribution: str
    version: str

    @property
    def pin(self) -> str:
        return f"{self.distribution}=={self.version}"

    def target_dir(self, base_dir: Path = DEPENDENCIES_DIR) -> Path:
        """``python-deps/cp311-onnxruntime-1.32.0``: one folder per Python and build."""
        python_tag = f"cp{sys.version_info.major}{sys.version_info.minor}"
        return base_dir / f"{python_tag}-{self.distribution}-{self.version}"


def requirement(gpu: bool) -> Requirement:
    return Requirement(*(ONNXRUNTIME_GPU if gpu else ONNXRUNTIME_CPU))


def bf16_requirement() -> Requirement:
    """OpenVINO, which only precision bf16 needs (it is not installed by the menu action)."""
    return Requirement(*OPENVINO)


def cuda_present() -> bool:
    """True when an NVIDIA driver answers (then the CUDA build of onnxruntime is installed)."""
    nvidia_smi = shutil.which("nvidia-smi")
    if nvidia_smi is None:
        return False
    try:
        return subprocess.run([nvidia_smi], capture_output=True, timeout=30).returncode == 0
    except (OSError, subprocess.TimeoutExpired):
        return False


def activate(base_dir: Path = DEPENDENCIES_DIR) -> None:
    """Make the bundled core and any installed dependency folder importable.

    The core bundled in the plugin zip (``ext/``) goes first, so the plugin runs the core it was
    built with; dependency folders for this Python go last, so they never shadow QGIS's packages.
    """
    if VENDORED_CORE_DIR.is_dir() and str(VENDORED_CORE_DIR) not in sys.path:
        sys.path.insert(0, str(VENDORED_CORE_DIR))
    for target in (requirement(True), requirement(False), bf16_requirement()):
        folder = target.target_dir(base_dir)
        if folder.is_dir() and str(folder) not in sys.path:
            sys.path.append(str(folder))


def missing_dependencies() -> str | None:
    """None when the core and onnxruntime import; otherwise what failed to import."""
    try:
        importlib.import_module("onnxruntime")
        importlib.import_module("dsen2.engine")
    except ImportError as error:
        return str(error)
    return None


def qgis_python() -> Path:
    """The Python interpreter behind QGIS (``sys.executable`` is the qgis binary in the desktop).

    Raises:
        DependencyError: no interpreter found next to QGIS's Python prefix.
    """
    if Path(sys.executable).name.lower().startswith("python"):
        return Path(sys.executable)
    version = f"{sys.version_info.major}.{sys.version_info.minor}"
    candidates = [
        Path(sys.exec_prefix) / "python.exe",  # Windows (OSGeo4W, standalone installer)
        Path(sys.exec_prefix) / "python3.exe",
        Path(sys.prefix) / "bin" / f"python{version}",  # Linux packages, macOS QGIS.app
        Path(sys.prefix) / "bin" / "python3",
    ]
    for candidate in candidates:
        if candidate.is_file():
            return candidate
    raise DependencyError(
        "cannot find QGIS's Python interpreter (looked for "
        f"{', '.join(str(c) for c in candidates)}); install {requirement(False).pin} into QGIS's "
        "Python with its own pip"
    )


def install_command(target: Requirement, base_dir: Path = DEPENDENCIES_DIR) -> list[str]:
    """The pip command line that installs ``target`` for QGIS's Python."""
    return [
        str(qgis_python()),
        "-m",
        "pip",
        "install",
        "--disable-pip-version-check",
        "--no-input",
        "--no-deps",
        "--upgrade",
        "--target",
        str(target.target_dir(base_dir)),
        target.pin,
    ]


def command_line(argv: list[str]) -> str:
    """``argv`` quoted for the user's shell: cmd.exe on Windows (paths with spaces), else POSIX."""
    return subprocess.list2cmdline(argv) if os.name == "nt" else shlex.join(argv)


def install_hint(base_dir: Path = DEPENDENCIES_DIR) -> str:
    """One sentence telling the user exactly how to install what is missing."""
    command = command_line(install_command(requirement(cuda_present()), base_dir))
    return (
        "Install it from the menu Plugins ▸ DSen2 ▸ Install dependencies, or close QGIS and run: "
        f"{command}"
    )


def bf16_install_hint(base_dir: Path = DEPENDENCIES_DIR) -> str:
    """One sentence telling the user how to add OpenVINO to QGIS's Python for precision bf16."""
    command = command_line(install_command(bf16_requirement(), base_dir))
    return f"Close QGIS and run: {command} (or choose precision fp32)"


def install(gpu: bool | None = None, base_dir: Path = DEPENDENCIES_DIR) -> Path:
    """Install onnxruntime for QGIS's Python and check that it imports in a fresh interpreter.

    Args:
        gpu: install the CUDA build; None decides by whether an NVIDIA driver answers.
        base_dir: parent of the versioned dependency folders.

    Returns:
        The folder onnxruntime was installed into (already on ``sys.path``).

    Raises:
        DependencyError: pip failed, or the installed onnxruntime does not import.
    """
    target = requirement(cuda_present() if gpu is None else gpu)
    folder = target.target_dir(base_dir)
    folder.parent.mkdir(parents=True, exist_ok=True)
    command = install_command(target, base_dir)
    result = subprocess.run(command, capture_output=True, text=True, timeout=PIP_TIMEOUT_S)
    if result.returncode != 0:
        tail = " ".join((result.stderr or result.stdout).strip().splitlines()[-3:])
        raise DependencyError(
            f"pip could not install {target.pin} ({tail}); ran: {command_line(command)}"
        )
    check = subprocess.run(
        [command[0], "-c", _IMPORT_CHECK, str(folder)], capture_output=True, text=True, timeout=120
    )
    if check.returncode != 0:
        tail = " ".join(check.stderr.strip().splitlines()[-2:])
        raise DependencyError(
            f"{target.pin} installed into {str(folder)!r} but does not import: {tail}"
        )
    activate(base_dir)
    return folder


# Runs in a fresh interpreter with the target folder last on sys.path, as activate() arranges.
_IMPORT_CHECK = (
    "import sys; sys.path.append(sys.argv[1]); import numpy, onnxruntime; "
    "onnxruntime.InferenceSession; print(onnxruntime.__version__, numpy.__version__)"
)
