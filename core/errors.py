"""Every error the library raises on purpose.

Each class inherits :class:`DSen2Error` and the builtin it refines, so callers can catch either.
Messages name the offending value and say what to do next; the CLI prints them as one line.
"""

from __future__ import annotations


class DSen2Error(Exception):
    """Root of all errors raised by dsen2."""


class InputNotFoundError(DSen2Error, FileNotFoundError):
    """The input path does not exist or holds nothing we can read."""


class ProductFormatError(DSen2Error, ValueError):
    """The input is not a Sentinel-2 product or band set we understand."""


class MissingBandError(ProductFormatError):
    """A band the requested output needs is absent from the input."""


class RasterReadError(DSen2Error, OSError):
    """GDAL could not read a band file (corrupt, truncated or unsupported)."""


class GridError(DSen2Error, ValueError):
    """The band grids do not nest (20 m / 60 m pixel corners are not on 10 m corners)."""


class WindowError(DSen2Error, ValueError):
    """A region of interest or tile size that does not fit the image."""


class OptionsError(DSen2Error, ValueError):
    """A run option (bands, device, precision, tile size, threads, ROI) with an invalid value."""


class ModelError(DSen2Error, ValueError):
    """A model file is missing, corrupt, does not match the catalogue, or breaks the contract."""


class DeviceError(DSen2Error, RuntimeError):
    """The requested execution device is not available."""


class MissingDependencyError(DeviceError):
    """An optional package the requested precision or device needs is not installed."""


class OutputError(DSen2Error, OSError):
    """The output cannot be written where it was asked for."""


class CancelledError(DSen2Error):
    """The run was cancelled by the caller; no output was left behind."""


class ClusterError(DSen2Error, RuntimeError):
    """A Dask cluster for ``dsen2 batch`` cannot be started, reached or sized as asked."""
