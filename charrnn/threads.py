"""CPU threads on a shared machine: how busy the cores are with other work, and how many
threads this process should use.

A thread that waits at a barrier for a peer the kernel has descheduled wastes its core,
and an OpenMP thread spins while it waits: with one core busy elsewhere, torch's default
of one thread per core made training 12x slower (docs/benchmarks.md, "Busy machine").
So commands measure how much of the cores other processes use (``Load``: /proc/stat
against this process's own CPU time, over the time since the command started, no extra
wait) and use the cores left (``choose``); training re-checks as it goes. A thread count
the user set (``OMP_NUM_THREADS``; ``OPENBLAS_NUM_THREADS`` for sampling) always wins.

No numpy, no torch: the choices are made before they load.
"""

from __future__ import annotations

import os
import sys
import time
from dataclasses import dataclass
from pathlib import Path

_LOADAVG = Path("/proc/loadavg")  # Linux; its 4th field counts runnable threads now
_STAT = Path("/proc/stat")  # Linux; per-CPU time in clock ticks since boot
USER_THREADS = ("OMP_NUM_THREADS",)  # torch's thread count, when the user sets it
FIRST_LOOK = 0.3  # seconds of the first reading at least (importing torch takes longer)


def cores() -> int:
    """The cores this process may run on."""
    affinity = getattr(os, "sched_getaffinity", None)
    return len(affinity(0)) if affinity else os.cpu_count() or 1


def sampling_threads() -> int:
    """BLAS threads for sampling: 2 while another core is idle, else 1.

    A second thread makes a step of a 2x384 or larger model faster (the weights are read
    by two cores) with bit-identical results, but when the cores are busy every step
    waits for a descheduled thread and sampling slows to a crawl (docs/sampling.md). So
    it is used only if fewer threads are runnable right now (this one
    included) than we have cores; a load average would lag, and count our own loop.
    """
    try:
        running = int(_LOADAVG.read_text().split()[3].partition("/")[0])
    except (OSError, ValueError, IndexError):  # no /proc: stay on the safe side
        return 1
    return 2 if running < cores() else 1


def set_blas_threads() -> None:
    """Set ``sampling_threads()`` BLAS threads, unless numpy has loaded already (too late)
    or the user set a thread count of their own (theirs wins)."""
    names = ("OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS", "OMP_NUM_THREADS")
    if "numpy" not in sys.modules and not any(n in os.environ for n in names):
        os.environ["OPENBLAS_NUM_THREADS"] = os.environ["MKL_NUM_THREADS"] = str(
            sampling_threads())


def _busy_seconds() -> float | None:
    """CPU seconds spent busy (not idle, not waiting for I/O) on our cores since boot."""
    try:
        lines = _STAT.read_text().splitlines()
    except OSError:
        return None
    mine = {f"cpu{c}" for c in getattr(os, "sched_getaffinity", lambda _: set())(0)}
    ticks = 0
    for line in lines[1:]:
        name, *values = line.split()
        if not name.startswith("cpu"):
            break
        if not mine or name in mine:  # user nice system idle iowait irq softirq steal
            v = [int(x) for x in values[:8]]
            ticks += sum(v) - v[3] - v[4]
    return ticks / os.sysconf("SC_CLK_TCK")


class Load:
    """How many cores other processes keep busy, between two readings.

    Busy time on our cores minus this process's own CPU time (all its threads), divided
    by the wall time between: a spinning process elsewhere counts 1.0, our own work 0.
    The first reading is taken when the object is made; ``others`` takes the next."""

    def __init__(self) -> None:
        self._last = (time.perf_counter(), _busy_seconds(), time.process_time())

    def others(self, window: float = 0.0) -> float | None:
        """Cores busy with other work since the last reading (None without /proc); waits
        until at least ``window`` seconds have passed since it (/proc/stat counts in ticks
        of 10 ms: a short window reads little)."""
        time.sleep(max(0.0, self._last[0] + window - time.perf_counter()))
        now = (time.perf_counter(), _busy_seconds(), time.process_time())
        (t0, busy0, own0), self._last = self._last, now
        if busy0 is None or now[1] is None or now[0] - t0 < 0.05:
            return None
        return max(0.0, (now[1] - busy0 - (now[2] - own0)) / (now[0] - t0))


def choose(others: float | None, available: int) -> int:
    """Threads for the cores left: a core counts as taken when other work keeps it busy
    half the time or more (an idle machine's background noise takes none)."""
    if others is None:
        return available
    return max(1, available - int(others + 0.5))


@dataclass(frozen=True)
class Threads:
    """A thread count for torch and why it was chosen."""

    count: int
    cores: int
    others: float | None  # cores busy with other work when it was chosen
    user: str | None = None  # the variable the user set, when the count is theirs

    def describe(self) -> str:
        count = f"{self.count} thread{'s' if self.count != 1 else ''}"
        if self.user:
            return f"{count} ({self.user})"
        of = f"{count} of {self.cores} core{'s' if self.cores != 1 else ''}"
        if self.others is None:
            return of
        if self.others < 0.05:
            return f"{of} (idle)"
        return f"{of} ({self.others:.1f} busy with other work)"


def torch_threads(load: Load) -> Threads:
    """How many threads torch should use now: the user's count, else the cores left."""
    for name in USER_THREADS:
        value = os.environ.get(name, "")
        if value.isdigit() and int(value) > 0:
            return Threads(int(value), cores(), None, f"{name}={value}")
    others = load.others(window=FIRST_LOOK)
    return Threads(choose(others, cores()), cores(), others)
