"""File helpers every writer shares: the one way charrnn writes a file, and OS errors in
plain words.

Checkpoints, the corpus cache, run notes, HTML pages and exports all write through here,
so a reader never sees half a file (or half a folder), every OS failure reads the same
way, and no write ever replaces something that is not a regular file (or, for an
export's folder, a folder):

========================================  =============================================
what is at the path                        what a write does
========================================  =============================================
nothing, or a regular file                 temp file beside it, fsync, rename over it
a symbolic link to a regular file (or to   the same at the link's target: the link stays
nothing yet)
a character device or a FIFO               an output (``write_output``) is written
(``/dev/null``, a named pipe)              through it; a kept file refuses it
one of our open descriptors (``/dev/       an output is written to that descriptor (what
stdout``, ``/dev/fd/N``)                   the shell opened, appended or not, stays so)
a folder, a socket, a block device         refused: one line, nothing touched
========================================  =============================================
"""

from __future__ import annotations

import contextlib
import errno
import io
import os
import re
import shutil
import stat
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import BinaryIO

from charrnn.errors import CharRNNError
from charrnn.safetext import shown

TMP_SUFFIX = ".tmp"  # of a file being written: .<name>.<random>.tmp beside it
_KINDS = {stat.S_IFDIR: "a folder", stat.S_IFCHR: "a character device",
          stat.S_IFBLK: "a block device", stat.S_IFIFO: "a named pipe (FIFO)",
          stat.S_IFSOCK: "a socket", stat.S_IFLNK: "a symbolic link"}
_FD_PATH = re.compile(r"/dev/(?:fd/(\d+)|std(in|out|err))|/proc/(?:self|\d+)/fd/(\d+)")


def os_reason(e: OSError) -> str:
    """'No space left on device' from an OSError, however it was constructed."""
    if e.strerror:
        return e.strerror
    return os.strerror(e.errno) if isinstance(e.errno, int) else str(e) or type(e).__name__


class NotAFile(OSError):
    """A path that holds something other than a regular file (or a link to one), which a
    write must not replace."""

    def __init__(self, path: Path, mode: int) -> None:
        kind = _KINDS.get(stat.S_IFMT(mode), "not a regular file")
        super().__init__(errno.EEXIST, f"it is {kind}, not a regular file", str(path))


def _target(path: Path) -> Path:
    """Where an atomic write of ``path`` renames its temp file: ``path`` itself when it is
    missing or a regular file, the real path behind a symbolic link (so the link stays);
    NotAFile for anything else (a device, a FIFO, a socket, a folder)."""
    try:
        st = os.lstat(path)
    except OSError:  # nothing there (or nothing can be: the write will say why)
        return path
    if stat.S_ISREG(st.st_mode):
        return path
    if stat.S_ISLNK(st.st_mode):
        real = Path(os.path.realpath(path))
        try:
            st = os.lstat(real)
        except OSError:  # a link to nothing yet: the file is made where it points
            return real
        if stat.S_ISREG(st.st_mode) and _fd_of(path) is None:
            return real
    raise NotAFile(path, os.stat(path).st_mode if os.path.exists(path) else st.st_mode)


def open_regular(path: Path) -> io.BufferedReader:
    """Open a file for reading, refusing (NotAFile) anything but a regular file before a
    read can block: a FIFO named like a checkpoint must not hang whoever opens it."""
    fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK)
    try:
        mode = os.fstat(fd).st_mode
        if not stat.S_ISREG(mode):
            raise NotAFile(Path(path), mode)
        os.set_blocking(fd, True)
    except BaseException:
        os.close(fd)
        raise
    return os.fdopen(fd, "rb")


def atomic_write_bytes(path: Path, data: bytes, mode: int | None = None) -> None:
    """Temp file in the same folder, write, fsync, rename over ``path``, fsync the folder.

    A reader (or a process killed at any instant) sees the old file or the new one, never
    a mix; a write that fails removes its temp file and leaves ``path`` untouched. A path
    that is not a regular file (see the module docstring) is refused, never replaced.
    ``mode``: the new file's permission bits (default: as the umask allows).
    """
    path = _target(Path(path))
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=TMP_SUFFIX, dir=path.parent)
    try:
        # mkstemp's 0600 would hide files from others; a cache entry asks for its source's
        os.fchmod(fd, 0o666 & ~_umask() if mode is None else mode)
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
def replacing(path: Path, mode: int | None = None) -> Iterator[BinaryIO]:
    """Stream a file into ``path``: written to ``.<name>.<pid>.tmp`` beside it and renamed
    over it when the block ends normally; an exception (a check raised inside the block,
    a full disk) removes the temp file and leaves ``path`` as it was. ``mode``: the new
    file's permission bits (default: as the umask allows). Refuses what
    ``atomic_write_bytes`` refuses.

    Not synced: for files that can be rebuilt (caches, indexes, notes), where an fsync
    would cost more than it saves; checkpoints use ``atomic_write_bytes``."""
    path = _target(Path(path))
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}{TMP_SUFFIX}")
    try:
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC,
                     0o666 if mode is None else mode)
        if mode is not None:
            os.fchmod(fd, mode)  # whatever the umask or a leftover temp file said
        with os.fdopen(fd, "wb") as f:
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


def _fd_of(path: Path) -> int | None:
    """The descriptor number a path such as /dev/stdout or /dev/fd/3 names, when it is
    one of this process's open descriptors (followed link by link); else None."""
    p, seen = str(path), 0
    while seen < 40:
        m = _FD_PATH.fullmatch(p)
        if m:
            n = int(m[1] or m[3]) if not m[2] else ("in", "out", "err").index(m[2])
            if m[0].startswith("/proc/") and "/self/" not in m[0] and \
                    not m[0].startswith(f"/proc/{os.getpid()}/"):
                return None
            try:
                os.fstat(n)
            except OSError:
                return None
            return n
        if not os.path.islink(p):
            return None
        p, seen = os.path.join(os.path.dirname(p), os.readlink(p)), seen + 1
    return None


def _write_through(path: Path, data: bytes) -> None:
    """Write ``data`` into an open descriptor, a device or a FIFO, in place."""
    given = _fd_of(path)
    # a FIFO waits for its reader, as `echo >` does
    fd = os.open(path, os.O_WRONLY) if given is None else given
    try:
        view = memoryview(data)
        while view:
            view = view[os.write(fd, view):]
    finally:
        if given is None:
            os.close(fd)


def _through(path: Path) -> bool:
    """Whether an output to ``path`` is written through it (see the module docstring)."""
    if _fd_of(path) is not None:
        return True
    try:
        mode = os.stat(path).st_mode
    except OSError:
        return False
    return stat.S_ISCHR(mode) or stat.S_ISFIFO(mode)


def write_output(path: Path, data: bytes) -> None:
    """Write an output the user named (a page): through a device, a FIFO or one of our
    descriptors; else atomically, as ``atomic_write_bytes``."""
    if _through(path):
        _write_through(path, data)
    else:
        atomic_write_bytes(path, data)


def check_out(path: str | Path) -> Path:
    """Refuse an output path that cannot take a page, before any work is done.

    Tries to create (and removes) a file in the nearest existing folder on the way:
    permission bits alone would not tell (root passes them; /proc refuses anyway), and
    folders still missing are left uncreated until the page is written. A device, a FIFO
    or an open descriptor is written through and needs no check; a socket, a block
    device or a folder is refused."""
    path = Path(path)
    if path.is_dir():
        raise CharRNNError(f"{path} is a directory; give a file name such as report.html")
    if _through(path):
        return path
    try:
        where = _target(path)
    except NotAFile as e:
        raise CharRNNError(f"cannot write {path}: {os_reason(e)}") from None
    folder = where.absolute().parent
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
    """Write a page (``write_file``): a reader never sees half of it, an old page stays
    whole if the write fails, and a device, FIFO or link is never replaced."""
    return write_file(path, shown(page).encode("utf-8"))  # a name that is not UTF-8


def write_file(path: str | Path, data: bytes) -> Path:
    """``write_output`` for an output the user named: checked first, and a failure is one
    CharRNNError."""
    path = check_out(path)
    try:
        write_output(path, data)
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
    if path.is_symlink():  # a link to a folder: the folder behind it is replaced, the link kept
        path = Path(os.path.realpath(path))
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
