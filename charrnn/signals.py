"""Stopping training cleanly on a signal: finish the step, save, exit.

A signal may arrive at any instant; these helpers turn it into a flag the loop reads
between steps, or hold it until a checkpoint write has finished.
"""

from __future__ import annotations

import signal
from collections.abc import Iterator
from contextlib import contextmanager


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

    SIGNALS = (signal.SIGINT, signal.SIGTERM)

    def __init__(self) -> None:
        self.requested = False
        self.signum = 0  # the signal that asked to stop, if any
        self._immediate = False

    def _handler(self, signum: int, frame: object) -> None:
        self.requested, self.signum = True, signum
        if self._immediate:
            raise KeyboardInterrupt

    @contextmanager
    def installed(self) -> Iterator[None]:
        try:
            old = [signal.signal(s, self._handler) for s in self.SIGNALS]
        except ValueError:  # not the main thread: signals never reach us here
            yield
            return
        try:
            yield
        finally:
            for s, handler in zip(self.SIGNALS, old, strict=True):
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
