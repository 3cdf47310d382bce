"""File helpers every writer shares: atomic replacement and OS errors in plain words.

Checkpoints, the corpus cache, run locks, HTML pages and exports all write through here,
so a reader never sees half a file (or half a folder) and every OS failure reads the same
way.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import BinaryIO

from charrnn.errors import CharRNNError

TMP_SUFFIX = ".tmp"  # of a file being written: .<name>.<random>.tmp beside it


def os_reason(e: OSError) -> str:
    """'No space left on device' from an OSError, however it was constructed."""
    if e.strerror:
        return e.strerror
    return os.strerror(e.errno) if isinstance(e.errno, int) else str(e) or type(e).__name__


def atomic_write_bytes(path: Path, data: bytes) -> None:
    """Temp file in the same folder, write, fsync, rename over ``path``, fsync the folder.

    A reader (or a process killed at any instant) sees the old file or the new one, never
    a mix; a write that fails removes its temp file and leaves ``path`` untouched.
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=TMP_SUFFIX, dir=path.parent)
    try:
        os.fchmod(fd, 0o666 & ~_umask())  # mkstemp's 0600 would hide files from others
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    try:  # make the rename durable too; best effort: some systems cannot fsync a folder
        dir_fd = os.open(path.parent, os.O_RDONLY)
        try:
            os.fsync(dir_fd)
        finally:
            os.close(dir_fd)
    except OSError:
        pass


@contextlib.contextmanager
def replacing(path: Path) -> Iterator[BinaryIO]:
    """Stream a file into ``path``: written to ``.<name>.<pid>.tmp`` beside it and renamed
    over it when the block ends normally; an exception (a check raised inside the block,
    a full disk) removes the temp file and leaves ``path`` as it was.

    Not synced: for files that can be rebuilt (caches, indexes, notes), where an fsync
    would cost more than it saves; checkpoints use ``atomic_write_bytes``."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}{TMP_SUFFIX}")
    try:
        with tmp.open("wb") as f:
            yield f
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


def remove_partial_writes(folder: Path, suffix: str) -> list[Path]:
    """Delete the temp files of ``*<suffix>`` files that a killed writer left behind (call
    only while holding the folder's lock, so no live writer owns them)."""
    stale = [p for p in folder.glob(f".*{suffix}.*{TMP_SUFFIX}") if p.is_file()]
    for p in stale:
        p.unlink(missing_ok=True)
    return stale


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def check_out(path: str | Path) -> Path:
    """Refuse an output path that cannot take a page, before any work is done.

    Tries to create (and removes) a file in the nearest existing folder on the way:
    permission bits alone would not tell (root passes them; /proc refuses anyway), and
    folders still missing are left uncreated until the page is written."""
    path = Path(path)
    if path.is_dir():
        raise CharRNNError(f"{path} is a directory; give a file name such as report.html")
    folder = path.absolute().parent
    while not folder.exists() and folder != folder.parent:
        folder = folder.parent
    if not folder.is_dir():
        raise CharRNNError(f"cannot write {path}: {folder} is a file, not a folder")
    try:
        fd, probe = tempfile.mkstemp(prefix=".charrnn-probe.", dir=folder)
        os.close(fd)
        os.unlink(probe)
    except OSError as e:
        raise CharRNNError(f"cannot write {path}: cannot create files in {folder} "
                           f"({os_reason(e)})") from None
    return path


def write_page(path: str | Path, page: str) -> Path:
    """Write a page atomically (a reader never sees half of it, an old page stays whole
    if the write fails)."""
    return write_file(path, page.encode("utf-8"))


def write_file(path: str | Path, data: bytes) -> Path:
    """``atomic_write_bytes`` for an output the user named: checked first, and a failure
    is one CharRNNError."""
    path = check_out(path)
    try:
        atomic_write_bytes(path, data)
    except OSError as e:
        raise CharRNNError(f"cannot write {path}: {os_reason(e)}") from None
    return path


def check_folder_out(path: str | Path, ours: Callable[[Path], bool]) -> Path:
    """Refuse a folder that an export cannot write, before any work is done: a file
    there, a folder holding anything but an earlier export of the same kind (``ours``
    says; it is then replaced whole), or a place where no file can be created."""
    path = Path(path)
    if path.exists() and not path.is_dir():
        raise CharRNNError(f"cannot write {path}: it is a file, not a folder")
    if path.is_dir() and any(path.iterdir()) and not ours(path):
        raise CharRNNError(f"{path} already holds files that charrnn export did not write; "
                           "give a new or empty folder")
    check_out(path / "probe")  # can files be created at, or on the way to, that folder?
    return path


def write_folder(path: str | Path, files: dict[str, bytes],
                 ours: Callable[[Path], bool]) -> Path:
    """Write ``files`` (name -> bytes) as the folder ``path``, whole or not at all.

    They are written and synced in a temporary folder beside it (``.<name>.<random>.tmp``),
    which is then renamed into place: a reader never sees half an export, and a failure
    (full disk, Ctrl-C) removes the temporary folder and leaves what was there. An
    earlier export at ``path`` (see ``check_folder_out``) is moved aside first and removed
    once the new one is in place (put back if the rename fails)."""
    path = check_folder_out(path, ours)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{path.name}.", suffix=TMP_SUFFIX, dir=path.parent))
    old: Path | None = None
    try:
        for name, data in files.items():
            with (tmp / name).open("wb") as f:
                f.write(data)
                f.flush()
                os.fsync(f.fileno())
        os.chmod(tmp, 0o777 & ~_umask())  # mkdtemp's 0700 would hide the folder from others
        if path.is_dir() and any(path.iterdir()):
            old = Path(tempfile.mkdtemp(prefix=f".{path.name}.", suffix=".old" + TMP_SUFFIX,
                                        dir=path.parent))
            os.replace(path, old)  # onto the empty folder just made: an atomic move aside
        try:
            os.replace(tmp, path)  # onto a missing or empty folder
        except BaseException:
            if old is not None:
                os.replace(old, path)
                old = None
            raise
    except OSError as e:
        raise CharRNNError(f"cannot write {path}: {os_reason(e)}") from None
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
        if old is not None:
            shutil.rmtree(old, ignore_errors=True)
    return path
