"""Peak resident memory of the calling process, for the benchmark scripts.

Not ``getrusage().ru_maxrss``: Linux carries the parent's RSS into a child's ``ru_maxrss`` across
fork/exec, so a child started by a benchmark that holds large arrays would report the parent's
peak. ``VmHWM`` in ``/proc/self/status`` is the high-water mark of this process's own memory.
"""

from __future__ import annotations


def peak_rss_mb() -> float:
    """This process's own peak RSS in MB (``VmHWM``)."""
    with open("/proc/self/status", encoding="ascii") as status:
        for line in status:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    raise RuntimeError("/proc/self/status has no VmHWM line (not Linux?)")
