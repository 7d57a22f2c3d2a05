"""Render the QGIS dialog of ``dsen2:superresolveproduct`` to a PNG, headless, for the README.

    QT_QPA_PLATFORM=offscreen python packaging/qgis_dialog_screenshot.py docs/qgis-dialog.png

Runs the real QGIS 3.22 Processing dialog (the one the Toolbox opens) with the plugin's provider
registered; nothing is mocked. Advanced parameters are expanded so they show too.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def render(output: Path, algorithm_id: str = "dsen2:superresolveproduct") -> Path:
    os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
    sys.path.insert(0, str(ROOT))
    sys.path.insert(0, "/usr/share/qgis/python/plugins")
    from qgis.core import QgsApplication
    from qgis.gui import QgsCollapsibleGroupBoxBasic
    from qgis.PyQt import sip
    from qgis.PyQt.QtWidgets import QGroupBox

    app = QgsApplication([], True)
    app.initQgis()
    try:
        from processing.core.Processing import Processing
        from processing.gui.AlgorithmDialog import AlgorithmDialog

        from qgis_plugin.provider import DSen2Provider

        Processing.initialize()
        provider = DSen2Provider()
        QgsApplication.processingRegistry().addProvider(provider)
        algorithm = QgsApplication.processingRegistry().createAlgorithmById(algorithm_id)
        dialog = AlgorithmDialog(algorithm)
        dialog.resize(900, 820)
        dialog.show()
        for _ in range(20):
            app.processEvents()
        for group in dialog.findChildren(QGroupBox, "grpAdvanced"):
            sip.cast(group, QgsCollapsibleGroupBoxBasic).setCollapsed(False)  # show advanced too
        for _ in range(20):
            app.processEvents()
        output.parent.mkdir(parents=True, exist_ok=True)
        if not dialog.grab().save(str(output)):
            raise SystemExit(f"could not write {output}")
        dialog.close()
        QgsApplication.processingRegistry().removeProvider(provider)
    finally:
        app.exitQgis()
    return output


if __name__ == "__main__":
    print(render(Path(sys.argv[1] if len(sys.argv) > 1 else "docs/qgis-dialog.png")))
