"""Installing dsen2 into a SNAP user directory: the tool adapter (always) and the Python
operator (when SNAP's Python bridge is configured for a Python that can run dsen2).

Where SNAP looks (snap-engine and esa-snappy sources):

- Tool adapters: ``ToolAdapterIO.getAdaptersPath()`` = ``<user dir>/auxdata/tool-adapters``
  (unless the adapters path was changed in SNAP's preferences), one folder per alias holding
  ``META-INF/descriptor.xml`` and the template.
- Python operators: ``PyOperatorSpi`` scans the sub-folders of ``<user dir>/snap-python`` for
  ``META-INF/services/<PyOperatorSpi class>``; SNAP 10+ (esa_snappy) and SNAP 9 (snappy) use
  different class names, so each gets its own folder and only the matching SNAP loads it.
- The bridge's Python: ``<user dir>/snap-python/snappy.properties`` (``snap.pythonExecutable``).
"""

from __future__ import annotations

import shutil
import subprocess
import sys
import xml.etree.ElementTree as ET
from dataclasses import dataclass
from importlib import resources
from pathlib import Path

from dsen2.errors import DSen2Error

ADAPTER_ALIAS = "DSen2"
OPERATOR_ALIAS = "DSen2Tiles"
WORK_DIR = "work"  # inside the adapter folder: the default target GeoTIFF's place
OPERATOR_MODULE = "dsen2_tiles_op"
# Python operator variants: installed folder name → packaged folder with -info.xml and services.
OPERATOR_VARIANTS = {"dsen2_tiles": "snap10", "dsen2_tiles_snap9": "snap9"}
PYTHON_PROPERTIES = "snappy.properties"
PYTHON_EXECUTABLE_KEY = "snap.pythonExecutable"
_PYTHON_CHECK = "import numpy, onnxruntime, dsen2.engine; print(dsen2.__version__)"


class SnapInstallError(DSen2Error, OSError):
    """The SNAP user directory cannot be written or read."""


@dataclass(frozen=True)
class UninstallReport:
    """What ``uninstall`` removed, and the adapter's work folder when it was kept because it
    holds files (the user's results)."""

    removed: tuple[Path, ...]
    kept_work: Path | None


@dataclass(frozen=True)
class InstallReport:
    """What ``install`` wrote, and why the Python operator was or was not installed."""

    tool_adapter: Path
    python_operators: tuple[Path, ...]
    python_operator_note: str
    gpt_example: str


def default_snap_user_dir() -> Path:
    return Path.home() / ".snap"


def package_dir() -> Path:
    """The installed ``dsen2.snap`` folder (``snap_operator/`` in a source tree)."""
    return Path(str(resources.files("dsen2.snap")))


def tool_adapters_dir(snap_user_dir: Path) -> Path:
    return snap_user_dir / "auxdata" / "tool-adapters"


def snap_python_dir(snap_user_dir: Path) -> Path:
    return snap_user_dir / "snap-python"


def dsen2_executable() -> Path:
    """The ``dsen2`` console script of this Python (what the tool adapter runs).

    Raises:
        SnapInstallError: no ``dsen2`` script next to this Python or on PATH.
    """
    beside = Path(sys.executable).with_name("dsen2")
    found = beside if beside.is_file() else shutil.which("dsen2")
    if found is None:
        raise SnapInstallError(
            f"no 'dsen2' executable next to {sys.executable!r} or on PATH; install dsen2 with "
            "pip into this Python first"
        )
    return Path(found).resolve()


def install(snap_user_dir: Path, adapters_dir: Path | None = None) -> InstallReport:
    """Write the tool adapter, and the Python operator when SNAP's Python can run dsen2.

    Raises:
        SnapInstallError: a target folder cannot be written.
    """
    adapter = _install_tool_adapter(adapters_dir or tool_adapters_dir(snap_user_dir))
    python = configured_python(snap_user_dir)
    operators: tuple[Path, ...] = ()
    if python is None:
        note = (
            f"SNAP's Python bridge is not configured ({snap_python_dir(snap_user_dir)}/"
            f"{PYTHON_PROPERTIES} is missing), so the in-process operator {OPERATOR_ALIAS} was "
            f"not installed; run <SNAP>/bin/snappy-conf {sys.executable} and install again"
        )
    else:
        problem = python_problem(python)
        if problem is None:
            operators = _install_python_operators(snap_python_dir(snap_user_dir))
            note = f"{OPERATOR_ALIAS} runs in SNAP's Python {python}"
        else:
            note = (
                f"SNAP's Python {python} cannot run dsen2 ({problem}), so {OPERATOR_ALIAS} was "
                f"not installed; run '{python} -m pip install dsen2' (numpy<2, onnxruntime, "
                "GDAL's osgeo) or configure SNAP for this Python with "
                f"<SNAP>/bin/snappy-conf {sys.executable}, then install again"
            )
    example = (
        f"gpt {ADAPTER_ALIAS} -Pbands=all -Pdevice=auto -PtargetProductFile=/tmp/dsen2_10m.tif "
        "-t /tmp/dsen2_10m_snap.tif -f GeoTIFF-BigTIFF /path/to/S2X_MSIL1C_....SAFE/MTD_MSIL1C.xml"
    )
    return InstallReport(adapter, operators, note, example)


def uninstall(snap_user_dir: Path, adapters_dir: Path | None = None) -> UninstallReport:
    """Remove what ``install`` wrote. The adapter's ``work`` folder (where its default target
    GeoTIFF goes) is kept when it holds files: they are the user's results."""
    adapter = (adapters_dir or tool_adapters_dir(snap_user_dir)) / ADAPTER_ALIAS
    removed = []
    kept_work = None
    if adapter.is_dir():
        _clear_keeping_work(adapter)
        work = adapter / WORK_DIR
        if work.is_dir() and any(work.iterdir()):
            kept_work = work
        else:
            shutil.rmtree(adapter)
            removed.append(adapter)
    for folder in (snap_python_dir(snap_user_dir) / name for name in OPERATOR_VARIANTS):
        if folder.is_dir():
            shutil.rmtree(folder)
            removed.append(folder)
    return UninstallReport(tuple(removed), kept_work)


def _clear_keeping_work(adapter: Path) -> None:
    """Delete the installed adapter's files, all but its ``work`` folder (the user's results)."""
    for child in adapter.iterdir():
        if child.name == WORK_DIR and child.is_dir():
            continue
        if child.is_dir():
            shutil.rmtree(child)
        else:
            child.unlink()


def configured_python(snap_user_dir: Path) -> Path | None:
    """The Python SNAP's bridge was configured with (``snappy-conf``), or None."""
    properties = snap_python_dir(snap_user_dir) / PYTHON_PROPERTIES
    if not properties.is_file():
        return None
    for line in properties.read_text(encoding="utf-8").splitlines():
        key, sep, value = line.partition("=")
        if sep and key.strip() == PYTHON_EXECUTABLE_KEY:
            # java.util.Properties escapes ':' and '\' (Windows paths) with a backslash
            return Path(value.strip().replace("\\:", ":").replace("\\\\", "\\"))
    return None


def python_problem(python: Path) -> str | None:
    """None when ``python`` imports numpy, onnxruntime and dsen2; else what went wrong."""
    try:
        result = subprocess.run(
            [str(python), "-c", _PYTHON_CHECK], capture_output=True, text=True, timeout=120
        )
    except (OSError, subprocess.TimeoutExpired) as error:
        return f"cannot run it: {error}"
    if result.returncode != 0:
        lines = result.stderr.strip().splitlines()
        return lines[-1] if lines else f"exit code {result.returncode}"
    return None


def _install_tool_adapter(adapters_dir: Path) -> Path:
    target = adapters_dir / ADAPTER_ALIAS
    source = package_dir() / "tool_adapter"
    try:
        if target.exists():  # a reinstall keeps work/, which holds the user's results
            _clear_keeping_work(target)
        (target / "META-INF").mkdir(parents=True)
        (target / WORK_DIR).mkdir(exist_ok=True)
        shutil.copy(source / "dsen2-template.vm", target / "dsen2-template.vm")
        tree = ET.parse(source / "META-INF" / "descriptor.xml")
        values = {
            "DSEN2_EXECUTABLE": str(dsen2_executable()),
            "DSEN2_WORK_DIR": str(target / WORK_DIR),
        }
        for variable in tree.getroot().iter("variable"):
            value = variable.find("value")
            key = variable.findtext("key", "")
            if value is not None and key in values:
                value.text = values[key]
        for default in tree.getroot().iter("defaultValue"):  # SNAP opens the target file by
            if default.text and "$DSEN2_WORK_DIR" in default.text:  # its literal default path
                default.text = default.text.replace("$DSEN2_WORK_DIR", values["DSEN2_WORK_DIR"])
        tree.write(target / "META-INF" / "descriptor.xml", encoding="UTF-8", xml_declaration=True)
    except OSError as error:
        raise SnapInstallError(
            f"cannot write the tool adapter to {str(target)!r}: {error}"
        ) from error
    return target


def _install_python_operators(python_dir: Path) -> tuple[Path, ...]:
    source = package_dir() / "python_operator"
    written = []
    for name, variant in OPERATOR_VARIANTS.items():
        target = python_dir / name
        try:
            if target.exists():
                shutil.rmtree(target)
            shutil.copytree(source / variant, target)
            shutil.copy(source / f"{OPERATOR_MODULE}.py", target / f"{OPERATOR_MODULE}.py")
        except OSError as error:
            raise SnapInstallError(
                f"cannot write the Python operator to {str(target)!r}: {error}"
            ) from error
        written.append(target)
    return tuple(written)
