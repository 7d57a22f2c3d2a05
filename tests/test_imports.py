"""The core must import and run its CLI help with torch, qgis and esa_snappy unavailable."""

from __future__ import annotations

import subprocess
import sys

BLOCKER = """
import sys
class Block:
    def find_spec(self, name, path=None, target=None):
        if name.split('.')[0] in {'torch', 'qgis', 'esa_snappy', 'snappy'}:
            raise ImportError(f'{name} is blocked in this test')
        return None
sys.meta_path.insert(0, Block())
import dsen2, dsen2.cli, dsen2.engine, dsen2.catalogue, dsen2.product, dsen2.raster
import dsen2.writer, dsen2.summary, dsen2.modelmeta, dsen2.inference
assert not any(m.split('.')[0] in {'torch', 'qgis', 'esa_snappy'} for m in sys.modules)
sys.argv = ['dsen2', 'models']
from dsen2.cli import main
raise SystemExit(main())
"""


def test_core_imports_without_torch_qgis_or_snappy() -> None:
    result = subprocess.run([sys.executable, "-c", BLOCKER], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    assert "dsen2-t2x-baseline" in result.stdout


def test_training_package_is_the_one_that_needs_torch() -> None:
    code = BLOCKER.replace("sys.argv = ['dsen2', 'models']", "import dsen2.train.network")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert result.returncode != 0
    assert "torch is blocked" in result.stderr
