"""The plugin object QGIS creates: registers the provider and the dependency installer action."""

from __future__ import annotations

from typing import Any

from qgis.core import Qgis, QgsApplication, QgsTask
from qgis.PyQt.QtGui import QIcon
from qgis.PyQt.QtWidgets import QAction

from .dependencies import DependencyError, install, install_hint, missing_dependencies
from .provider import ICON_PATH, DSen2Provider

MENU = "&DSen2"


class DSen2Plugin:
    """Adds the ``dsen2`` Processing provider; in the desktop also a menu to install onnxruntime."""

    def __init__(self, iface: Any) -> None:
        self.iface = iface
        self.provider: DSen2Provider | None = None
        self.install_action: QAction | None = None
        self._install_task: QgsTask | None = None

    def initProcessing(self) -> None:  # noqa: N802 (QGIS's plugin interface)
        if self.provider is None:
            self.provider = DSen2Provider()
            QgsApplication.processingRegistry().addProvider(self.provider)

    def initGui(self) -> None:  # noqa: N802
        self.initProcessing()
        if self.iface is None:  # qgis_process and other headless hosts
            return
        self.install_action = QAction(
            QIcon(str(ICON_PATH)), "Install dependencies (onnxruntime)…", self.iface.mainWindow()
        )
        self.install_action.triggered.connect(self.install_dependencies)
        self.iface.addPluginToMenu(MENU, self.install_action)
        problem = missing_dependencies()
        if problem is not None:
            self.iface.messageBar().pushMessage(
                "DSen2", f"onnxruntime is missing ({problem}). {install_hint()}", Qgis.Warning, 0
            )

    def unload(self) -> None:
        if self.provider is not None:
            QgsApplication.processingRegistry().removeProvider(self.provider)
            self.provider = None
        if self.install_action is not None and self.iface is not None:
            self.iface.removePluginMenu(MENU, self.install_action)
            self.install_action.deleteLater()
            self.install_action = None

    def install_dependencies(self) -> None:
        """Run pip in a background task; report the outcome in the message bar."""

        def run(task: QgsTask) -> str:
            return str(install())

        def finished(exception: Exception | None, folder: str | None = None) -> None:
            bar = self.iface.messageBar()
            if exception is None:
                bar.pushMessage("DSen2", f"onnxruntime installed in {folder}", Qgis.Success, 10)
            elif isinstance(exception, DependencyError):
                bar.pushMessage("DSen2", str(exception), Qgis.Critical, 0)
            else:
                bar.pushMessage(
                    "DSen2", f"installing onnxruntime failed: {exception}", Qgis.Critical, 0
                )

        self._install_task = QgsTask.fromFunction(
            "Installing onnxruntime for DSen2", run, on_finished=finished
        )
        QgsApplication.taskManager().addTask(self._install_task)
