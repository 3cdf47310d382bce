"""The train command's inputs: pipes kept with the run, and what changed since it started.

``-`` (stdin), a named pipe and a process substitution (``<(cat a b)``, a /dev/fd path
whose size is 0) can be read only once, so ``spool`` copies what comes through, checked
and normalised block by block (bounded memory), into the run folder: ``stdin.txt`` or
``pipe-N.txt``. From then on the run's corpus is that file, so ``--resume``, ``eval``
and the rest work without piping again. ``manifest`` / ``changes`` record the inputs'
files at the start of a run and say, on ``--resume``, exactly what changed since.
"""

from __future__ import annotations

import json
import os
import stat
import sys
from pathlib import Path

from charrnn.data import cache, corpora
from charrnn.data.encoding import stream_blocks
from charrnn.data.text import BUILTIN_CORPUS
from charrnn.errors import CharRNNError
from charrnn.files import open_regular, replacing
from charrnn.safetext import dumps

STDIN = "-"
MANIFEST = "inputs.json"


def is_stream(arg: str) -> bool:
    """stdin, a FIFO, a character device or a socket: something read once, in order."""
    if arg == STDIN:
        return True
    try:
        mode = os.stat(arg).st_mode
    except OSError:
        return False
    return stat.S_ISFIFO(mode) or stat.S_ISCHR(mode) or stat.S_ISSOCK(mode)


def kept_streams(run_dir: Path) -> list[Path]:
    """The files ``spool`` keeps in a run folder (what --force must not lose before the
    new run is known to start)."""
    return sorted(p for p in (run_dir / "stdin.txt", *run_dir.glob("pipe-*.txt"))
                  if p.is_file())


def spool(inputs: list[str], run_dir: Path, stdin=None) -> list[str]:
    """``inputs`` with every stream replaced by a file in ``run_dir`` holding its text."""
    out, pipes = [], 0
    for arg in inputs:
        if not is_stream(arg):
            out.append(arg)
            continue
        if arg == STDIN:
            name, dest = "stdin", run_dir / "stdin.txt"
            src = stdin if stdin is not None else sys.stdin.buffer
            if src is None or (hasattr(src, "isatty") and src.isatty()):
                raise CharRNNError("'-' reads the corpus from stdin, but stdin is a "
                                   "terminal; pipe text in (e.g. git log -p | charrnn "
                                   "train - -o checkpoints/gitlog)")
        else:
            pipes += 1
            name, dest = arg, run_dir / f"pipe-{pipes}.txt"
            try:
                src = open(arg, "rb")  # noqa: SIM115 - closed below
            except OSError as e:
                raise CharRNNError(f"cannot read {arg}: {e.strerror or e}") from None
        size, text = 0, False
        try:
            with replacing(dest) as f:
                for block in stream_blocks(src, name):
                    f.write(block)
                    size += len(block)
                    text = text or bool(block.strip())
                if not size:
                    raise CharRNNError(f"{name} closed before any text came through (0 bytes)")
                if not text:
                    raise CharRNNError(f"{name} held only whitespace")
        except OSError as e:
            raise CharRNNError(f"cannot write {dest}: {e.strerror or e}") from None
        finally:
            if arg != STDIN:
                src.close()
        cache.load(dest, checked=True)  # encoded now, while the text is known to be valid
        print(f"kept the {size:,} bytes read from {name} in {dest}", file=sys.stderr)
        out.append(str(dest))
    return out


def manifest(run_dir: Path, files: list[list]) -> None:
    """Record the inputs' files (``corpora.stamps``) for a later ``changes`` (a note, not
    a checkpoint: replaced by rename, not synced; losing it only loses that message)."""
    try:
        with replacing(run_dir / MANIFEST) as f:
            f.write(dumps({"files": files}, exact=True).encode("utf-8"))
    except OSError as e:
        raise CharRNNError(f"cannot write to {run_dir}/: {e.strerror or e}") from None


def changes(run_dir: Path, files: list[list]) -> str | None:
    """What changed in the inputs since ``manifest`` was written, in one line, or None."""
    try:
        with open_regular(run_dir / MANIFEST) as f:  # a FIFO never blocks
            old = json.loads(f.read().decode("utf-8"))["files"]
        before = {str(row[0]): list(row[1:]) for row in old}
    except (OSError, ValueError, KeyError, TypeError, IndexError):
        return None
    now = {str(row[0]): list(row[1:]) for row in files}
    # an older run's manifest has fewer fields (size, mtime): compare those it has
    changed = [p for p in now if p in before and now[p][:len(before[p])] != before[p]]
    added = [p for p in now if p not in before]
    gone = [p for p in before if p not in now]
    if not (changed or added or gone):
        return None
    parts = []
    for what, paths in (("changed", changed), ("new", added), ("gone", gone)):
        if paths:
            shown = ", ".join(paths[:3]) + (f", ... (+{len(paths) - 3})" if len(paths) > 3
                                            else "")
            parts.append(f"{len(paths):,} {what} ({shown})")
    return "; ".join(parts)


def current_files(source: str | list[str]) -> list[list]:
    """(path, size, mtime) of the files ``source`` means now, for ``changes``."""
    if source == BUILTIN_CORPUS:
        return []
    args = source if isinstance(source, list) else [source]
    if len(args) == 1 and not Path(args[0]).is_dir():
        return corpora.stamps([Path(args[0])]) if Path(args[0]).is_file() else []
    return corpora.stamps(corpora.walk(args).files)
