"""Stopping training cleanly on a signal (Ctrl-C, kill, a closed terminal): finish the
step, save, exit.

A signal may arrive at any instant; these helpers turn it into a flag the loop reads
between steps, or hold it until a checkpoint write has finished.
"""

from __future__ import annotations

import os
import signal
from collections.abc import Iterator
from contextlib import contextmanager


def _detach_terminal(fds: list[int]) -> None:
    """Point stdout/stderr that were a (now closed) terminal at /dev/null: a line written
    to a hung-up terminal fails (EIO), which would stop the save or its closing note."""
    devnull = os.open(os.devnull, os.O_WRONLY)
    try:
        for fd in fds:
            os.dup2(devnull, fd)
    finally:
        os.close(devnull)


@contextmanager
def defer_sigint() -> Iterator[None]:
    """Hold Ctrl-C until a checkpoint write finishes, then deliver it to the old handler."""
    pending: list[int] = []
    try:
        old = signal.signal(signal.SIGINT, lambda s, f: pending.append(s))
    except ValueError:  # not the main thread: nothing to defer
        yield
        return
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, old)
        if pending:
            signal.raise_signal(signal.SIGINT)


class StopOnSignal:
    """Ctrl-C (or a plain ``kill``: SIGTERM) while training: finish the step in hand,
    then save and stop.

    A KeyboardInterrupt raised anywhere in a step (say between the optimizer update and
    the step counter) would save weights one step ahead of the recorded position, and the
    resumed run would no longer match an uninterrupted one. So the handler only sets a
    flag that the loop reads between steps. Validation changes no training state, so a
    Ctrl-C during it interrupts at once (``immediate``); during a save it waits.
    """

    # SIGHUP: the terminal was closed; the work since the last validation is saved too.
    SIGNALS = tuple(getattr(signal, n) for n in ("SIGINT", "SIGTERM", "SIGHUP")
                    if hasattr(signal, n))

    def __init__(self) -> None:
        self.requested = False
        self.signum = 0  # the signal that asked to stop, if any
        self._immediate = False
        self._ttys: list[int] = []  # stdout/stderr fds that are a terminal

    def _handler(self, signum: int, frame: object) -> None:
        self.requested, self.signum = True, signum
        if signum == getattr(signal, "SIGHUP", None):
            _detach_terminal(self._ttys)
        if self._immediate:
            raise KeyboardInterrupt

    @contextmanager
    def installed(self) -> Iterator[None]:
        self._ttys = [fd for fd in (1, 2) if os.isatty(fd)]  # after a hang-up isatty fails
        hup = getattr(signal, "SIGHUP", None)  # under nohup it is ignored: keep it so
        signals = [s for s in self.SIGNALS
                   if s != hup or signal.getsignal(s) is not signal.SIG_IGN]
        try:
            old = [signal.signal(s, self._handler) for s in signals]
        except ValueError:  # not the main thread: signals never reach us here
            yield
            return
        try:
            yield
        finally:
            for s, handler in zip(signals, old, strict=True):
                signal.signal(s, handler)

    @contextmanager
    def immediate(self) -> Iterator[None]:
        """A stop signal inside this block raises KeyboardInterrupt (also one pending)."""
        self._immediate = True
        try:
            if self.requested:
                raise KeyboardInterrupt
            yield
        finally:
            self._immediate = False
