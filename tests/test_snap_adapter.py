"""The SNAP tool adapter (alias DSen2) as SNAP's snap-sta module reads and runs it.

ToolAdapterIO reads ``META-INF/descriptor.xml`` with XStream into a ToolAdapterOperatorDescriptor
(every element must be one of its fields), renders the Velocity template with the parameters,
``$sourceProductFile`` and ``$targetProductFile``, splits the result into one argument per line
after ``mainToolFileLocation`` and runs it, matching each output line against progressPattern
and errorPattern. Here the template is rendered by a small renderer of the Velocity subset it
uses and the command line runs on real data; its output must equal ``dsen2 run``'s.
"""

from __future__ import annotations

import re
import subprocess
import sys
import xml.etree.ElementTree as ET
from pathlib import Path

import numpy as np
import pytest
from osgeo import gdal

from dsen2.product import open_product
from dsen2.snap.install import package_dir
from tests.conftest import needs_bf16, read_raster
from tests.dimap_fixture import write_dimap
from tests.safe_fixture import SafeSpec, write_safe

ADAPTER = package_dir() / "tool_adapter"
DSEN2 = Path(sys.executable).with_name("dsen2")

# Fields of snap-sta's ToolAdapterOperatorDescriptor (XStream element names; "parameters" and
# "variables" are its aliases) and of ToolParameterDescriptor (DefaultParameterDescriptor's
# fields plus parameterType).
DESCRIPTOR_FIELDS = {
    "name", "operatorClass", "alias", "label", "version", "description", "authors", "copyright",
    "internal", "autoWriteSuppressed", "menuLocation", "preprocessTool",
    "preprocessorExternalTool", "writeForProcessing", "processingWriter",
    "mainToolFileLocation", "workingDir", "template", "progressPattern", "errorPattern",
    "stepPattern", "variables", "parameters", "source", "isSystem", "isHandlingOutputName",
    "windowsBundle", "linuxBundle", "macosxBundle", "helpID", "sourceProductDescriptors",
    "sourceProductsDescriptor", "targetProductDescriptor", "targetPropertyDescriptors",
    "numSourceProducts", "templateType",
}  # fmt: skip
PARAMETER_FIELDS = {
    "name", "alias", "dataType", "defaultValue", "description", "label", "unit", "interval",
    "valueSet", "condition", "pattern", "format", "notNull", "notEmpty", "rasterDataNodeClass",
    "validatorClass", "converterClass", "domConverterClass", "itemAlias", "deprecated",
    "parameterType",
}  # fmt: skip
READ_BY_TOOL_ADAPTER_IO = {
    "name", "alias", "label", "version", "description", "menuLocation", "mainToolFileLocation",
    "workingDir", "template", "progressPattern", "errorPattern", "writeForProcessing",
    "processingWriter", "parameters", "sourceProductDescriptors", "variables",
}  # fmt: skip


def descriptor() -> ET.Element:
    return ET.parse(ADAPTER / "META-INF" / "descriptor.xml").getroot()


def render_velocity(template: str, context: dict[str, object]) -> str:
    """Render the Velocity subset the adapter uses: ``$name``/``${name}`` references (a missing
    one stays literal, as in Velocity), and ``#if($name)``/``#if($name == "text")`` …
    ``#else`` … ``#end`` blocks, nested or inline. Null and missing values are false."""
    token = re.compile(r"#if\(\s*\$(\w+)\s*(?:==\s*\"([^\"]*)\"\s*)?\)|#else|#end")
    out: list[str] = []
    stack: list[tuple[bool, bool]] = []  # (condition, in else branch) of each open #if
    position = 0

    def active() -> bool:
        return all(cond != in_else for cond, in_else in stack)

    def references(text: str) -> str:
        return re.sub(
            r"\$\{?(\w+)\}?",
            lambda m: str(context[m.group(1)]) if m.group(1) in context else m.group(0),
            text,
        )

    for match in token.finditer(template):
        if active():
            out.append(references(template[position : match.start()]))
        position = match.end()
        if match.group(0).startswith("#if"):
            value = context.get(match.group(1))
            wanted = match.group(2)
            cond = value not in (None, False, "") if wanted is None else str(value) == wanted
            stack.append((cond, False))
        elif match.group(0) == "#else":
            cond, _ = stack.pop()
            stack.append((cond, True))
        else:
            stack.pop()
    assert not stack, "unbalanced #if/#end"
    out.append(references(template[position:]))
    return "".join(out)


def command_line(context: dict[str, object]) -> list[str]:
    """What ToolAdapterOp executes: the tool file, then one argument per rendered line
    (Java's ``split("\\r\\n|\\n")``, which drops trailing empty strings)."""
    template = (ADAPTER / descriptor().findtext("template/file", "")).read_text(encoding="utf-8")
    lines = re.split(r"\r\n|\n", render_velocity(template, context))
    while lines and lines[-1] == "":
        lines.pop()
    assert all(line.strip() == line and line for line in lines), lines
    return [str(DSEN2), *lines]


def parameter_defaults() -> dict[str, object]:
    return {
        p.findtext("name", ""): p.findtext("defaultValue")
        for p in descriptor().iter("parameter")
        if p.findtext("defaultValue") is not None
    }


def test_descriptor_has_the_fields_tool_adapter_io_reads() -> None:
    root = descriptor()
    assert root.tag == "operator"
    fields = {child.tag for child in root}
    assert fields <= DESCRIPTOR_FIELDS, fields - DESCRIPTOR_FIELDS
    assert fields >= READ_BY_TOOL_ADAPTER_IO, READ_BY_TOOL_ADAPTER_IO - fields
    assert root.findtext("alias") == "DSen2" and root.findtext("name")
    assert root.findtext("operatorClass") == (
        "org.esa.snap.core.gpf.operators.tooladapter.ToolAdapterOp"
    )
    assert (root.findtext("menuLocation") or "").startswith("Menu/Optical/")
    assert root.findtext("writeForProcessing") == "true"
    assert root.findtext("processingWriter") == "BEAM-DIMAP"
    assert root.find("template").get("type") == "file"  # type: ignore[union-attr]
    assert (ADAPTER / root.findtext("template/file", "")).is_file()
    variables = {v.findtext("key") for v in root.iter("variable")}
    assert root.findtext("mainToolFileLocation") == "$DSEN2_EXECUTABLE"
    assert root.findtext("workingDir") == "$DSEN2_WORK_DIR"
    assert {"DSEN2_EXECUTABLE", "DSEN2_WORK_DIR"} <= variables
    for parameter in root.iter("parameter"):
        assert {c.tag for c in parameter} <= PARAMETER_FIELDS
        assert parameter.findtext("parameterType") == "RegularParameter"
        values = [v.text for v in parameter.iter("string")]
        if values:
            assert parameter.findtext("defaultValue") in values
    names = {p.findtext("name") for p in root.iter("parameter")}
    assert {"targetProductFile", "model", "modelFolder", "bands", "device", "precision"} == names
    assert [d.findtext("name") for d in root.find("sourceProductDescriptors")] == [  # type: ignore[union-attr]
        "sourceProduct 1"
    ]


def test_template_references_only_known_names() -> None:
    template = (ADAPTER / "dsen2-template.vm").read_text(encoding="utf-8")
    names = set(re.findall(r"\$\{?(\w+)", template))
    parameters = {p.findtext("name") for p in descriptor().iter("parameter")}
    assert names <= parameters | {"sourceProductFile"}, names - parameters


@pytest.fixture(scope="module")
def l2a(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """A real-pixel L2A SAFE (baseline 04.00, offset −1000) and the same product as the
    BEAM-DIMAP intermediate SNAP writes for the adapter."""
    folder = tmp_path_factory.mktemp("adapter")
    spec = SafeSpec("L2A", "04.00", size_px=72)
    safe = write_safe(folder, spec)
    return safe / "MTD_MSIL2A.xml", write_dimap(folder / "work", safe, spec)


def run(command: list[str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(command, capture_output=True, text=True, timeout=300)


@pytest.mark.parametrize("bands", ["all", "20m"])
def test_rendered_command_equals_dsen2_run(
    l2a: tuple[Path, Path], tiny_models: Path, tmp_path: Path, bands: str
) -> None:
    mtd, dim = l2a
    reference = tmp_path / "cli.tif"
    cli = run([str(DSEN2), "run", str(mtd), "-o", str(reference), "--model", str(tiny_models),
               "--bands", bands])  # fmt: skip
    assert cli.returncode == 0, cli.stderr
    expected = read_raster(reference)
    for source, name in ((mtd, "mtd"), (dim, "dimap")):
        context = {
            **parameter_defaults(),
            "bands": bands,
            "modelFolder": tiny_models,
            "sourceProductFile": source,
            "targetProductFile": tmp_path / f"adapter_{name}.tif",
        }
        command = command_line(context)
        assert command[1:3] == ["run", str(source)]
        result = run(command)
        assert result.returncode == 0, result.stderr
        np.testing.assert_array_equal(read_raster(tmp_path / f"adapter_{name}.tif"), expected)


@needs_bf16
def test_rendered_bf16_command_equals_dsen2_run_bf16(
    l2a: tuple[Path, Path], tiny_models: Path, tmp_path: Path
) -> None:
    mtd, _ = l2a
    reference = tmp_path / "cli.tif"
    cli = run([str(DSEN2), "run", str(mtd), "-o", str(reference), "--model", str(tiny_models),
               "--precision", "bf16"])  # fmt: skip
    assert cli.returncode == 0, cli.stderr
    context = {
        **parameter_defaults(),
        "precision": "bf16",
        "modelFolder": tiny_models,
        "sourceProductFile": mtd,
        "targetProductFile": tmp_path / "adapter.tif",
    }
    command = command_line(context)
    assert "--precision=bf16" in command
    result = run(command)
    assert result.returncode == 0, result.stderr
    np.testing.assert_array_equal(read_raster(tmp_path / "adapter.tif"), read_raster(reference))
    dataset = gdal.Open(str(tmp_path / "adapter.tif"))
    assert dataset.GetMetadataItem("DSEN2_PRECISION") == "bf16"
    dataset = None


def test_default_model_renders_the_catalogue_family() -> None:
    context = {**parameter_defaults(), "sourceProductFile": "in.dim", "targetProductFile": "o.tif"}
    command = command_line(context)
    assert command[1:] == [
        "run", "in.dim", "--output=o.tif", "--model=dsen2", "--bands=all", "--device=auto",
        "--precision=fp32",
    ]  # fmt: skip


def test_dimap_intermediate_keeps_the_radiometry(l2a: tuple[Path, Path]) -> None:
    mtd, dim = l2a
    safe, dimap = open_product([mtd]), open_product([dim])
    assert dimap.kind == "BEAM-DIMAP" and dimap.level == "L2A"
    assert dimap.processing_baseline == "04.00" and dimap.spacecraft == "Sentinel-2A"
    assert dimap.radiometry.quantification == safe.radiometry.quantification
    assert set(dimap.band_files) == set(safe.band_files)  # view_zenith_B1 is not band B1
    for band in safe.band_files:
        assert dimap.radiometry.offset(band) == safe.radiometry.offset(band) == -1000
    assert dimap.band_files["B8A"].endswith("interimProduct.data/B8A.img")
    assert open_product([dim.with_suffix(".data")]).band_files == dimap.band_files


def test_progress_and_error_lines_match_the_patterns(
    l2a: tuple[Path, Path], tiny_models: Path, tmp_path: Path
) -> None:
    """Real CLI output (stderr is a pipe, as in SNAP's ProcessExecutor) against the patterns,
    with Java's Matcher.matches() (whole line) and find() semantics."""
    root = descriptor()
    progress = re.compile(root.findtext("progressPattern", ""))
    error = re.compile(root.findtext("errorPattern", ""))
    mtd, _ = l2a
    result = run([str(DSEN2), "run", str(mtd), "-o", str(tmp_path / "o.tif"), "--model",
                  str(tiny_models), "--tile-size", "24"])  # fmt: skip
    assert result.returncode == 0, result.stderr
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    percents = [int(m.group(1)) for line in lines if (m := progress.fullmatch(line))]
    assert len(percents) == len(lines) >= 3  # every stderr line is a progress line
    assert percents == sorted(percents) and percents[-1] == 100
    assert all(progress.search(line) for line in lines)
    assert not any(error.search(line) for line in lines + result.stdout.splitlines())
    failed = run([str(DSEN2), "run", str(tmp_path / "missing.SAFE"), "-o", str(tmp_path / "x.tif")])
    assert failed.returncode == 1
    (line,) = failed.stderr.strip().splitlines()
    match = error.fullmatch(line)
    assert match and "does not exist" in match.group(1)
    assert not progress.search(line)
