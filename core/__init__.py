"""dsen2: super-resolve Sentinel-2 20 m and 60 m bands to 10 m with DSen2 ONNX graphs.

The library core reads products with GDAL, runs the networks with ONNX Runtime and writes
GeoTIFF/COG; it never imports torch, qgis or esa_snappy (``dsen2.train`` holds the torch code).
"""

from __future__ import annotations

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("dsen2")
except PackageNotFoundError:  # running from a source tree without installation
    __version__ = "0+unknown"

__all__ = ["__version__"]
