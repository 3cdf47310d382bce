"""One training run per run folder: an OS lock on ``<run>/.lock``.

Two runs writing the same ``latest`` checkpoint would each undo the other's progress, so
the second one refuses. The lock is the operating system's (``flock``, or ``msvcrt`` on
Windows), held on an open file: it goes away with the process however that ends, even
by ``kill -9``, so a crashed run never leaves a stale lock that needs deleting by hand.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from charrnn.config import LOCK_NAME
from charrnn.errors import CharRNNError
from charrnn.files import os_reason

try:
    import fcntl

    def _try_lock(fd: int) -> None:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)

except ImportError:  # pragma: no cover - Windows
    import msvcrt

    def _try_lock(fd: int) -> None:
        msvcrt.locking(fd, msvcrt.LK_NBLCK, 1)  # type: ignore[attr-defined]


@contextmanager
def hold(run_dir: Path) -> Iterator[None]:
    """Create ``run_dir`` if needed and hold its lock for the ``with`` body, or refuse."""
    path = run_dir / LOCK_NAME
    if run_dir.exists() and not run_dir.is_dir():
        raise CharRNNError(f"cannot use run folder {run_dir}/: it is a file, not a folder")
    created = [d for d in (run_dir, *run_dir.parents) if not d.exists()]
    try:
        run_dir.mkdir(parents=True, exist_ok=True)
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o666)
    except OSError as e:
        raise CharRNNError(f"cannot use run folder {run_dir}/: {os_reason(e)}") from None
    try:
        try:
            _try_lock(fd)
        except OSError:
            owner = _read_owner(fd)
            raise CharRNNError(
                f"{run_dir}/ is in use by another charrnn run{owner}; wait for it to end "
                "or choose another --out") from None
        try:  # who holds it, for the message above; a full disk must not stop the run
            os.ftruncate(fd, 0)
            os.lseek(fd, 0, os.SEEK_SET)
            os.write(fd, f"{os.getpid()}\n".encode())
        except OSError:
            pass
        yield
    finally:
        if created and [p.name for p in run_dir.iterdir()] == [LOCK_NAME]:
            _remove_empty(path, created)  # a run that failed at once leaves no folder
        os.close(fd)  # releases the lock; an existing run's .lock stays (deleting races)


def _remove_empty(lock: Path, folders: list[Path]) -> None:
    """Undo the folders this run created, while still holding the lock; never forces."""
    try:
        lock.unlink()
        for d in folders:  # innermost first; stops at the first that is not empty
            d.rmdir()
    except OSError:
        pass


def _read_owner(fd: int) -> str:
    try:
        os.lseek(fd, 0, os.SEEK_SET)
        pid = os.read(fd, 32).decode("ascii").strip()
    except (OSError, UnicodeDecodeError):
        return ""
    return f" (pid {pid})" if pid.isdigit() else ""
