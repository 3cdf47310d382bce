"""Generated text to stdout: streamed as produced, a closed pipe a normal end."""

from __future__ import annotations

import os
import sys
import time

import typer


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
    except BrokenPipeError:
        # The reader went away (e.g. `| head`): that is a normal end, not an error.
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        raise typer.Exit(0) from None
