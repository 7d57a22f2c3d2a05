"""The progress-and-cancellation protocol every face maps onto its host.

The engine calls ``progress(fraction_done, message)`` after each tile and checks
``is_cancelled()`` before each tile; the CLI maps these to a progress bar and Ctrl-C, QGIS to
``QgsProcessingFeedback``, SNAP to its ProgressMonitor.
"""

from __future__ import annotations

from collections.abc import Callable

ProgressCallback = Callable[[float, str], None]
CancelPredicate = Callable[[], bool]


def no_progress(fraction_done: float, message: str) -> None:
    """A progress callback that reports nothing."""


def never_cancelled() -> bool:
    """A cancellation predicate for runs that cannot be cancelled."""
    return False
