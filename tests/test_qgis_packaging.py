"""The plugin zip from packaging/ installs into a QGIS profile, loads, registers and unloads; the
dependency installer puts a pinned onnxruntime into a versioned plugin-local folder."""

from __future__ import annotations

import configparser
import importlib.util
import shlex
import subprocess
import sys
import zipfile
from collections.abc import Iterator
from pathlib import Path

import pytest
import qgis.utils
from qgis.core import QgsApplication

from qgis_plugin import dependencies

BUILDER = Path(__file__).resolve().parents[1] / "packaging" / "build_qgis_plugin.py"
_spec = importlib.util.spec_from_file_location("build_qgis_plugin", BUILDER)
assert _spec is not None and _spec.loader is not None
build_qgis_plugin = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(build_qgis_plugin)
PLUGIN = build_qgis_plugin.PLUGIN_NAME
REQUIRED_METADATA = (
    "name qgisMinimumVersion description about version author email tracker repository "
    "homepage tags icon hasProcessingProvider"
).split()


@pytest.fixture(scope="module")
def plugin_zip(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_qgis_plugin.build(tmp_path_factory.mktemp("dist"))


def test_zip_layout_and_metadata(plugin_zip: Path) -> None:
    with zipfile.ZipFile(plugin_zip) as bundle:
        names = bundle.namelist()
        metadata_text = bundle.read(f"{PLUGIN}/metadata.txt").decode("utf-8")
    assert all(name.startswith(f"{PLUGIN}/") for name in names)
    for required in (
        "__init__.py",
        "metadata.txt",
        "icon.svg",
        "LICENSE",
        "provider.py",
        "ext/dsen2/engine.py",
        "ext/dsen2/models/catalogue.json",
        "ext/dsen2/models/dsen2-t2x-baseline.onnx",
    ):
        assert f"{PLUGIN}/{required}" in names, required
    assert not [n for n in names if "__pycache__" in n or n.endswith(".pyc")]
    assert not [n for n in names if "/tests/" in n or "/train/" in n]
    metadata = configparser.ConfigParser(interpolation=None)
    metadata.read_string(metadata_text)
    general = metadata["general"]
    for key in REQUIRED_METADATA:
        assert general.get(key, "").strip(), key
    assert general["qgisMinimumVersion"] == "3.22"
    assert general["hasProcessingProvider"] == "yes"
    assert general["version"] == build_qgis_plugin.project_version()


@pytest.fixture()
def profile_plugins(plugin_zip: Path, tmp_path: Path, qgis_processing: None) -> Iterator[Path]:
    """The zip unpacked into a temporary profile's python/plugins folder, as QGIS installs it."""
    plugins = tmp_path / "profiles" / "default" / "python" / "plugins"
    plugins.mkdir(parents=True)
    with zipfile.ZipFile(plugin_zip) as bundle:
        bundle.extractall(plugins)
    qgis.utils.plugin_paths.insert(0, str(plugins))
    sys.path.insert(0, str(plugins))
    yield plugins
    sys.path.remove(str(plugins))
    qgis.utils.plugin_paths.remove(str(plugins))


def test_installed_zip_loads_registers_and_unloads(profile_plugins: Path) -> None:
    registry = QgsApplication.processingRegistry()
    assert registry.providerById("dsen2") is None
    qgis.utils.updateAvailablePlugins()
    assert PLUGIN in qgis.utils.available_plugins
    assert qgis.utils.loadPlugin(PLUGIN)
    assert sys.modules[PLUGIN].__file__ == str(profile_plugins / PLUGIN / "__init__.py")
    assert qgis.utils.startPlugin(PLUGIN)
    try:
        provider = registry.providerById("dsen2")
        assert provider is not None
        assert sorted(a.id() for a in provider.algorithms()) == [
            "dsen2:superresolvebands",
            "dsen2:superresolveproduct",
        ]
        assert registry.algorithmById("dsen2:superresolveproduct") is not None
        assert str(profile_plugins / PLUGIN / "ext") in sys.path  # the bundled core
    finally:
        assert qgis.utils.unloadPlugin(PLUGIN)
    assert registry.providerById("dsen2") is None
    assert PLUGIN not in sys.modules
    sys.path.remove(str(profile_plugins / PLUGIN / "ext"))


def test_install_command_is_pinned_and_protects_numpy(tmp_path: Path) -> None:
    cpu, gpu = dependencies.requirement(False), dependencies.requirement(True)
    assert cpu.pin == "onnxruntime==1.32.0" and gpu.pin.startswith("onnxruntime-gpu==")
    folder = cpu.target_dir(tmp_path)
    tag = f"cp{sys.version_info.major}{sys.version_info.minor}"
    assert folder == tmp_path / f"{tag}-onnxruntime-1.32.0"
    command = dependencies.install_command(cpu, tmp_path)
    assert command[1:4] == ["-m", "pip", "install"] and "--no-deps" in command
    assert command[-1] == cpu.pin and command[command.index("--target") + 1] == str(folder)
    assert Path(command[0]).is_file()


def imported_from(folder: Path, code: str) -> list[str]:
    """What ``code`` prints in a fresh interpreter with ``folder`` first on its path."""
    probe = subprocess.run(
        [sys.executable, "-c", f"import sys; sys.path.insert(0, sys.argv[1]); {code}", str(folder)],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert probe.returncode == 0, probe.stderr
    return probe.stdout.split()


@pytest.mark.slow
def test_bf16_hint_installs_openvino_that_activate_finds(tmp_path: Path) -> None:
    """The command the bf16 hint prints, run for real: OpenVINO lands in its own versioned folder
    without numpy, activate() appends that folder, and it imports beside QGIS's numpy."""
    hint = dependencies.bf16_install_hint(tmp_path)
    command = dependencies.install_command(dependencies.bf16_requirement(), tmp_path)
    assert shlex.join(command) in hint and "openvino==" in hint and "--no-deps" in command
    result = subprocess.run(command, capture_output=True, text=True, timeout=900)
    assert result.returncode == 0, result.stderr[-2000:]
    folder = dependencies.bf16_requirement().target_dir(tmp_path)
    assert (folder / "openvino" / "__init__.py").is_file()
    assert not list(folder.glob("numpy*")), "the installer must never bring its own numpy"
    before = list(sys.path)
    try:
        dependencies.activate(tmp_path)
        assert sys.path[-1] == str(folder) and str(folder) not in before
    finally:
        sys.path[:] = before
    openvino_file, numpy_version, has_cpu = imported_from(
        folder,
        "import numpy, openvino; "
        "print(openvino.__file__, numpy.__version__, 'CPU' in openvino.Core().available_devices)",
    )
    assert openvino_file.startswith(str(folder)) and numpy_version.startswith("1.")
    assert has_cpu == "True"


@pytest.mark.slow
def test_installer_puts_onnxruntime_in_its_folder_without_numpy(tmp_path: Path) -> None:
    """A real pip install from the package index (PyPI is reachable in CI)."""
    folder = dependencies.install(gpu=False, base_dir=tmp_path)
    try:
        assert folder == dependencies.requirement(False).target_dir(tmp_path)
        assert (folder / "onnxruntime" / "__init__.py").is_file()
        assert not list(folder.glob("numpy*")), "the installer must never bring its own numpy"
        ort_file, numpy_version = imported_from(
            folder, "import onnxruntime, numpy; print(onnxruntime.__file__, numpy.__version__)"
        )
        assert ort_file.startswith(str(folder)) and numpy_version.startswith("1.")
    finally:
        if str(folder) in sys.path:
            sys.path.remove(str(folder))
