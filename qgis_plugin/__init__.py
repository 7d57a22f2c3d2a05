"""QGIS plugin "Sentinel-2 super-resolution (DSen2)": a Processing provider over the dsen2 core."""

from __future__ import annotations

from typing import Any


def classFactory(iface: Any) -> Any:  # noqa: N802 (the name QGIS looks for)
    from .dependencies import activate

    activate()
    from .plugin import DSen2Plugin

    return DSen2Plugin(iface)
