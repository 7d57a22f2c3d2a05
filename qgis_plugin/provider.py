"""The Processing provider ``dsen2``: a literal list of the plugin's algorithms."""

from __future__ import annotations

from pathlib import Path

from qgis.core import QgsProcessingProvider
from qgis.PyQt.QtGui import QIcon

from .algorithms import SuperResolveBands, SuperResolveProduct

ICON_PATH = Path(__file__).resolve().parent / "icon.svg"


class DSen2Provider(QgsProcessingProvider):
    """Sentinel-2 super-resolution (DSen2) in the Processing Toolbox."""

    def id(self) -> str:
        return "dsen2"

    def name(self) -> str:
        return "Sentinel-2 super-resolution (DSen2)"

    def longName(self) -> str:  # noqa: N802 (QGIS API names)
        return self.name()

    def icon(self) -> QIcon:
        return QIcon(str(ICON_PATH))

    def svgIconPath(self) -> str:  # noqa: N802
        return str(ICON_PATH)

    def supportedOutputRasterLayerExtensions(self) -> list[str]:  # noqa: N802
        return ["tif"]

    def loadAlgorithms(self) -> None:  # noqa: N802
        for algorithm in (SuperResolveProduct(), SuperResolveBands()):
            self.addAlgorithm(algorithm)
