"""What commands write to stdout: lines and tables, and generated text streamed as it is
produced. A closed pipe is a normal end; a failing stdout (a full disk) one line
(``cli.main`` handles both, for every command)."""

from __future__ import annotations

import os
import sys
import time

import typer

from charrnn.errors import CharRNNError
from charrnn.files import os_reason
from charrnn.safetext import shown


class StdoutFailed(CharRNNError):
    """stdout could not take what a command wrote (a full disk, an I/O error)."""

    def __init__(self, e: OSError) -> None:
        super().__init__(f"cannot write to stdout: {os_reason(e)}")


class StdoutClosed(Exception):
    """The reader of stdout went away (``| head``): a normal end. Not an OSError, so that
    nothing on the way (click turns EPIPE into exit 1) mistakes it for a failure."""


class Watched:
    """A command's stdout (text or binary), its failures told apart from every other
    OSError: a closed pipe becomes StdoutClosed, anything else StdoutFailed. ``cli.main``
    puts it in place for the length of a command."""

    def __init__(self, inner) -> None:
        self._inner = inner

    def _call(self, name: str, *args):
        try:
            return getattr(self._inner, name)(*args)
        except BrokenPipeError:
            raise StdoutClosed from None
        except OSError as e:
            raise StdoutFailed(e) from None

    def write(self, data):
        return self._call("write", data)

    def flush(self) -> None:
        self._call("flush")

    @property
    def buffer(self):
        return Watched(self._inner.buffer)

    def __getattr__(self, name: str):
        return getattr(self._inner, name)


def say(text: str) -> None:
    """A line of a command's result on stdout (names that are not UTF-8 as \\xNN)."""
    print(shown(text))


def quiet_stdout() -> None:
    """Point stdout at /dev/null: the reader went away (or the disk is full), and the
    interpreter's last flush must not fail again."""
    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, sys.stdout.fileno())
    os.close(devnull)


def stream(pieces, end_line: bool = False) -> None:
    """Write text to stdout as UTF-8, flushing the first piece at once, then at line ends
    and every 50 ms; a closed pipe is a normal end. ``end_line``: on a terminal, finish
    with a newline so the shell prompt starts on a fresh line."""
    out = sys.stdout.buffer
    sys.stdout.flush()
    last, buf, tail = float("-inf"), "", ""
    try:
        for piece in pieces:
            buf += piece
            now = time.monotonic()
            if buf and (now - last > 0.05 or "\n" in piece):
                out.write(buf.encode("utf-8"))
                out.flush()
                tail, buf, last = buf[-1:] or tail, "", now
        if buf:
            out.write(buf.encode("utf-8"))
            tail = buf[-1:]
        if end_line and tail != "\n" and sys.stdout.isatty():
            out.write(b"\n")
        out.flush()
    except (BrokenPipeError, StdoutClosed):
        # The reader went away (e.g. `| head`): that is a normal end, not an error.
        quiet_stdout()
        raise typer.Exit(0) from None
