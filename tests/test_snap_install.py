"""``dsen2 snap install`` / ``uninstall`` into a SNAP user directory, and the example graphs."""

from __future__ import annotations

import re
import subprocess
import sys
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

from dsen2.snap.install import package_dir

GRAPHS = sorted((package_dir() / "graphs").glob("*.xml"))


def dsen2_snap(*args: str | Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "dsen2", "snap", *map(str, args)],
        capture_output=True,
        text=True,
        timeout=300,
    )


def files_under(folder: Path) -> set[str]:
    return {p.relative_to(folder).as_posix() for p in folder.rglob("*") if p.is_file()}


def test_install_without_python_bridge_writes_the_tool_adapter(tmp_path: Path) -> None:
    result = dsen2_snap("install", "--snap-user-dir", tmp_path)
    assert result.returncode == 0, result.stderr
    adapter = tmp_path / "auxdata" / "tool-adapters" / "DSen2"
    assert files_under(tmp_path) == {
        "auxdata/tool-adapters/DSen2/META-INF/descriptor.xml",
        "auxdata/tool-adapters/DSen2/dsen2-template.vm",
    }
    assert (adapter / "work").is_dir()
    root = ET.parse(adapter / "META-INF" / "descriptor.xml").getroot()
    variables = {v.findtext("key"): v.findtext("value") for v in root.iter("variable")}
    executable = Path(variables["DSEN2_EXECUTABLE"] or "")
    assert executable.is_file() and executable.name == "dsen2"
    assert variables["DSEN2_WORK_DIR"] == str(adapter / "work")
    assert "snappy-conf" in result.stdout and "DSen2Tiles was not installed" in result.stdout
    assert re.search(r"^  gpt DSen2 .*-f GeoTIFF-BigTIFF .*MTD_MSIL1C\.xml$", result.stdout, re.M)
    version = subprocess.run([executable, "--version"], capture_output=True, text=True)
    assert version.returncode == 0 and version.stdout.startswith("dsen2 ")
    defaults = {p.findtext("name"): p.findtext("defaultValue") for p in root.iter("parameter")}
    assert defaults["targetProductFile"] == str(adapter / "work" / "dsen2_10m.tif")  # no $VAR


def test_reinstall_and_uninstall_keep_the_users_results(tmp_path: Path) -> None:
    """The default target GeoTIFF goes to the adapter's work folder: a reinstall (an upgrade)
    or an uninstall must not delete it, as they once did."""
    assert dsen2_snap("install", "--snap-user-dir", tmp_path).returncode == 0
    adapter = tmp_path / "auxdata" / "tool-adapters" / "DSen2"
    result = adapter / "work" / "dsen2_10m.tif"
    result.write_bytes(b"a user's result")
    again = dsen2_snap("install", "--snap-user-dir", tmp_path)
    assert again.returncode == 0, again.stderr
    assert result.read_bytes() == b"a user's result"
    assert (adapter / "META-INF" / "descriptor.xml").is_file()
    removed = dsen2_snap("uninstall", "--snap-user-dir", tmp_path)
    assert removed.returncode == 0, removed.stderr
    assert f"kept {adapter / 'work'}: it holds your results" in removed.stdout
    assert files_under(tmp_path) == {"auxdata/tool-adapters/DSen2/work/dsen2_10m.tif"}
    result.unlink()
    assert "removed" in dsen2_snap("uninstall", "--snap-user-dir", tmp_path).stdout
    assert not adapter.exists()


def write_bridge_config(snap_dir: Path, python: str) -> None:
    (snap_dir / "snap-python").mkdir(parents=True)
    (snap_dir / "snap-python" / "snappy.properties").write_text(
        "#Created by eu.esa.snap.snappy.PyBridge\n"
        f"snap.pythonExecutable={python}\n"
        f"snap.pythonModuleDir={snap_dir / 'snap-python'}\n",
        encoding="utf-8",
    )


def test_install_with_a_configured_bridge_adds_the_python_operator(tmp_path: Path) -> None:
    write_bridge_config(tmp_path, sys.executable)
    result = dsen2_snap("install", "--snap-user-dir", tmp_path)
    assert result.returncode == 0, result.stderr
    python = tmp_path / "snap-python"
    assert files_under(python) == {
        "snappy.properties",
        "dsen2_tiles/dsen2_tiles_op.py",
        "dsen2_tiles/dsen2_tiles_op-info.xml",
        "dsen2_tiles/META-INF/services/eu.esa.snap.snappy.gpf.PyOperatorSpi",
        "dsen2_tiles_snap9/dsen2_tiles_op.py",
        "dsen2_tiles_snap9/dsen2_tiles_op-info.xml",
        "dsen2_tiles_snap9/META-INF/services/org.esa.snap.python.gpf.PyOperatorSpi",
    }
    module = package_dir() / "python_operator" / "dsen2_tiles_op.py"
    assert (python / "dsen2_tiles" / "dsen2_tiles_op.py").read_bytes() == module.read_bytes()
    assert "DSen2Tiles runs in SNAP's Python" in result.stdout
    # SNAP imports the module from its folder as a top-level module
    imported = subprocess.run(
        [sys.executable, "-c", "import dsen2_tiles_op; print(dsen2_tiles_op.DSen2TilesOp)"],
        cwd=python / "dsen2_tiles",
        capture_output=True,
        text=True,
    )
    assert imported.returncode == 0 and "DSen2TilesOp" in imported.stdout, imported.stderr
    removed = dsen2_snap("uninstall", "--snap-user-dir", tmp_path)
    assert removed.returncode == 0 and removed.stdout.count("removed") == 3
    assert files_under(tmp_path) == {"snap-python/snappy.properties"}


def test_bridge_python_without_dsen2_gets_no_operator(tmp_path: Path) -> None:
    write_bridge_config(tmp_path, "/usr/bin/python3 -I")  # cannot even be executed as a path
    result = dsen2_snap("install", "--snap-user-dir", tmp_path)
    assert result.returncode == 0, result.stderr
    assert (
        "cannot run dsen2" in result.stdout
        and not (tmp_path / "snap-python" / "dsen2_tiles").exists()
    )


def test_custom_tool_adapters_dir(tmp_path: Path) -> None:
    adapters = tmp_path / "adapters"
    result = dsen2_snap(
        "install", "--snap-user-dir", tmp_path / "snap", "--tool-adapters-dir", adapters
    )
    assert result.returncode == 0, result.stderr
    assert (adapters / "DSen2" / "META-INF" / "descriptor.xml").is_file()


def operator_parameters() -> dict[str, set[str]]:
    adapter = ET.parse(package_dir() / "tool_adapter" / "META-INF" / "descriptor.xml").getroot()
    python = ET.parse(
        package_dir() / "python_operator" / "snap10" / "dsen2_tiles_op-info.xml"
    ).getroot()
    return {
        root.findtext("alias", ""): {p.findtext("name", "") for p in root.iter("parameter")}
        for root in (adapter, python)
    }


SNAP_OPERATORS = {"Read": {"file"}, "Write": {"file", "formatName"},
                  "Subset": {"referenceBand", "region", "copyMetadata"},
                  "BandMaths": {"targetBands"}}  # fmt: skip


@pytest.mark.parametrize("graph", GRAPHS, ids=lambda p: p.stem)
def test_example_graphs(graph: Path) -> None:
    root = ET.parse(graph).getroot()
    assert root.tag == "graph" and root.findtext("version") == "1.0"
    known = {**SNAP_OPERATORS, **operator_parameters()}
    nodes = {node.get("id"): node for node in root.iter("node")}
    ours = [n for n in nodes.values() if n.findtext("operator") in ("DSen2", "DSen2Tiles")]
    assert len(ours) == 1
    for node in nodes.values():
        operator = node.findtext("operator", "")
        assert operator in known, operator
        parameters = {child.tag for child in node.find("parameters")}  # type: ignore[union-attr]
        assert parameters <= known[operator], (operator, parameters - known[operator])
        for source in node.iter("sourceProduct"):
            assert source.get("refid") in nodes
    text = graph.read_text(encoding="utf-8")
    variables = set(re.findall(r"\$\{(\w+)\}", text))
    assert {"input", "output"} <= variables
    comment = text.split("-->", 1)[0]
    for variable in variables:  # the documented gpt line sets every variable
        assert f"-P{variable}=" in comment, variable
