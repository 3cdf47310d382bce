"""BLAS threads for sampling and serving, chosen before numpy loads (OpenBLAS reads
them at load)."""

from __future__ import annotations

import os
import sys
from pathlib import Path

_LOADAVG = Path("/proc/loadavg")  # Linux; its 4th field counts runnable threads now


def sampling_threads() -> int:
    """BLAS threads for sampling: 2 while another core is idle, else 1.

    A second thread makes a step of a 2x384 or larger model faster (the weights are read
    by two cores) with bit-identical results, but when the cores are busy every step
    waits for a descheduled thread and sampling slows to a crawl (docs/sampling.md). So
    it is used only if fewer threads are runnable right now (this one
    included) than we have cores; a load average would lag, and count our own loop.
    """
    affinity = getattr(os, "sched_getaffinity", None)  # the cores we may run on
    cores = len(affinity(0)) if affinity else os.cpu_count() or 1
    try:
        running = int(_LOADAVG.read_text().split()[3].partition("/")[0])
    except (OSError, ValueError, IndexError):  # no /proc: stay on the safe side
        return 1
    return 2 if running < cores else 1


def set_blas_threads() -> None:
    """Set ``sampling_threads()`` BLAS threads, unless numpy has loaded already (too late)
    or the user set a thread count of their own (theirs wins)."""
    names = ("OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS", "OMP_NUM_THREADS")
    if "numpy" not in sys.modules and not any(n in os.environ for n in names):
        os.environ["OPENBLAS_NUM_THREADS"] = os.environ["MKL_NUM_THREADS"] = str(
            sampling_threads())
