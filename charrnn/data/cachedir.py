"""The corpus cache folder: where entries live, how they are opened, and keeping it bounded.

An entry is ``<base>.json`` (what it was built from) with ``<base>.ids``, for several
inputs held-out split files ``<base>.val*.ids``, and once copy checks ask for it the
index ``<base>.sa``, ``<base>.sak`` and ``<base>.sa.json`` (``index_paths``). The folder
is ``$CHARRNN_CACHE_DIR``, else ``$XDG_CACHE_HOME/charrnn/corpora``, else
``~/.cache/charrnn/corpora``; charrnn creates it 0700, and an entry's files are no more
readable than its sources (a 0600 file's ids are 0600): the ids are the text.

An entry is valid for the ``stamp`` of every source file: size, modification time,
inode and change time. The inode changes when another file is renamed into place, the
change time at every write (no program can set it back), so a file swapped for another
of the same size and mtime (``cp -p``, ``rsync -t``, ``tar x``, ``mv b a``) is encoded
again; a content digest would cost a pass over the text at every start
(docs/reliability.md, "The corpus cache's key").

After every new encoding the cache is pruned: entries whose source is gone or has
changed since (it would be re-encoded anyway) are deleted, then the least recently used
ones until the cache is under its cap (``$CHARRNN_CACHE_MAX``, e.g. ``500M`` or ``20G``;
default 10G; never the entry in use). ``charrnn cache`` lists the entries, ``--prune``
and ``--clear`` act by hand. Deleting any of it is safe: an entry is rebuilt from its
source when next needed (a pipe's text is kept in its run folder, not here).
"""

from __future__ import annotations

import contextlib
import json
import math
import os
import re
import stat
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from charrnn.data.text import Vocab
from charrnn.errors import CharRNNError, ConfigError
from charrnn.files import atomic_write_bytes, open_regular
from charrnn.safetext import dumps

DEFAULT_CAP = 10 * 10**9  # bytes (decimal units throughout, as du --si)
MAX_CAP = 10**18  # 1,000,000T: anything above is no cap a disk can reach
_UNITS = {"": 1, "K": 10**3, "M": 10**6, "G": 10**9, "T": 10**12}
_INDEX = (".sa", ".sak", ".sa.json")  # a copy index beside an entry's ids (novelty/)


class NotTheText(CharRNNError):
    """A file (or files) that a checkpoint names as its corpus but whose content is not
    the one it recorded: a checkpoint's paths are hints, never a reason to cache a file."""

    def __init__(self, found: str) -> None:
        super().__init__("its content is not the text recorded (digest differs)")
        self.found = found


def cache_root() -> Path:
    """Where encoded corpora are kept (see the module docstring), after checking both
    settings: every command that touches the cache calls this first, so a bad
    ``$CHARRNN_CACHE_MAX`` or a ``$CHARRNN_CACHE_DIR`` that is a file fails before any
    work, every time (not only after an encoding)."""
    cap_bytes()
    env = os.environ.get("CHARRNN_CACHE_DIR")
    if env:
        root = Path(env)
        if root.exists() and not root.is_dir():
            raise ConfigError(f"CHARRNN_CACHE_DIR={env} is a file, not a folder")
        return root
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base) / "charrnn" / "corpora"


def make_root(root: Path) -> None:
    """Create the cache folder, readable by its owner only. A folder charrnn chose
    (not $CHARRNN_CACHE_DIR) is made so again if an older version left it open."""
    try:
        root.mkdir(mode=0o700, parents=True)
    except FileExistsError:
        if not os.environ.get("CHARRNN_CACHE_DIR"):
            with contextlib.suppress(OSError):
                st = root.stat()
                if st.st_uid == os.getuid() and stat.S_IMODE(st.st_mode) & 0o077:
                    root.chmod(0o700)


def stamp(st: os.stat_result) -> list[int]:
    """What a cache entry is valid for, of one source file (see the module docstring)."""
    return [st.st_size, st.st_mtime_ns, st.st_ino, st.st_ctime_ns]


def entry_mode(sources: list[Path]) -> int:
    """Permission bits for an entry of these files: read and write for the owner, and
    for group and others only what every source grants them (and the umask allows)."""
    shared = 0o066
    for p in sources:
        with contextlib.suppress(OSError):
            shared &= p.stat().st_mode
    mask = os.umask(0)
    os.umask(mask)
    return 0o600 | (shared & ~mask)


def index_paths(ids_path: Path) -> tuple[Path, Path, Path]:
    """The copy index of an entry: its suffix array, sampled keys and their record."""
    return tuple(ids_path.with_suffix(s) for s in _INDEX)  # type: ignore[return-value]


def entry_base(root: Path, name: str, key: str) -> Path:
    """``<root>/<name>-<key>``: a readable, safe file name for an entry (add a suffix)."""
    stem = "".join(c if c.isalnum() or c in "-_." else "_" for c in name)[:40]
    return root / f"{stem}-{key}"


def read_meta(path: Path) -> dict | None:
    """An entry's JSON record, or None when it is missing or unreadable."""
    try:
        with open_regular(path) as f:  # a FIFO named like a record never blocks
            meta = json.loads(f.read().decode("utf-8"))
    except (OSError, ValueError):
        return None
    return meta if isinstance(meta, dict) else None


def publish(meta_path: Path, meta: dict, mode: int) -> None:
    """Record a freshly encoded entry (its ids are written already), then prune the cache
    around it: a new entry is when the cache can outgrow its cap."""
    atomic_write_bytes(meta_path, dumps(meta, exact=True).encode("utf-8"), mode)
    prune(meta_path.parent, keep=meta_path)


def open_ids(meta_path: Path, ids_path: Path, meta: dict) -> tuple[Vocab, np.ndarray]:
    """An entry's vocabulary and ids (read-only ``np.memmap``), checked against its record;
    marks the entry used, for the size cap."""
    vocab = Vocab(tuple(meta["vocab"]))
    if ids_path.stat().st_size != meta["chars"] * vocab.dtype.itemsize:
        raise CharRNNError(f"the corpus cache {ids_path} is damaged; delete it and retry")
    ids = np.memmap(ids_path, dtype=vocab.dtype, mode="r", shape=(meta["chars"],))
    with contextlib.suppress(OSError):  # last use, for the cache's size cap
        os.utime(meta_path)
    return vocab, ids


def write_error(folder: Path, e: OSError) -> CharRNNError:
    return CharRNNError(f"cannot write the corpus cache in {folder}: {e.strerror or e} "
                        "(set CHARRNN_CACHE_DIR to a writable folder)")


@dataclass
class Entry:
    meta: Path
    files: list[Path]
    size: int  # bytes, all files
    used: float  # last use (the meta file's mtime)
    source: str
    status: str  # ok | stale (the source changed) | gone (the source is missing) | damaged

    def as_dict(self) -> dict:
        return {"entry": str(self.meta), "size": self.size, "last_used": self.used,
                "source": self.source, "status": self.status}


def cap_bytes() -> int:
    text = os.environ.get("CHARRNN_CACHE_MAX", "").strip().upper()
    if not text:
        return DEFAULT_CAP
    m = re.fullmatch(r"(\d+(?:\.\d+)?)\s*([KMGT]?)B?", text)
    cap = float(m[1]) * _UNITS[m[2]] if m else math.nan
    if not (math.isfinite(cap) and cap <= MAX_CAP):
        raise ConfigError(f"CHARRNN_CACHE_MAX={text[:40]!r}: use a size such as 500M or "
                          "20G (at most 1000000T)")
    return int(cap)


def entries(root: Path | None = None) -> list[Entry]:
    """Every entry in the cache, least recently used first."""
    root = Path(root) if root is not None else cache_root()
    if not root.is_dir():
        return []
    out = []
    for meta in root.glob("*.json"):
        if meta.name.endswith(_INDEX[-1]):  # an index's record, listed with its entry
            continue
        stem = glob_escape(meta.stem)
        files = [meta, *root.glob(f"{stem}.*ids"),
                 *(p for p in index_paths(meta.with_suffix(".ids")) if p.exists())]
        try:
            used = meta.stat().st_mtime
            size = sum(f.stat().st_size for f in files)
        except OSError:  # removed meanwhile
            continue
        source, status = _judge(meta)
        out.append(Entry(meta, files, size, used, source, status))
    return sorted(out, key=lambda e: e.used)


def glob_escape(text: str) -> str:
    return re.sub(r"([*?\[])", r"[\1]", text)


def _judge(meta: Path) -> tuple[str, str]:
    try:
        with open_regular(meta) as f:
            m = json.loads(f.read().decode("utf-8"))
        if "stamps" in m:  # several inputs (charrnn.data.corpora): every file found then
            source = " + ".join(m["inputs"])
            stamps = m["stamps"]
        else:
            source, stamps = m["source"], [[m["source"], *m["stamp"]]]
        stamps = [(str(row[0]), list(row[1:])) for row in stamps]
    except (OSError, ValueError, KeyError, TypeError, IndexError):
        return "?", "damaged"
    status = "ok"
    for path, recorded in stamps:
        try:
            st = os.stat(path)
        except OSError:
            status = "gone"
            continue
        if stamp(st) != recorded:
            return source, "stale"
    return source, status


def remove(entry: Entry) -> None:
    for f in entry.files:
        f.unlink(missing_ok=True)


def prune(root: Path | None = None, keep: Path | None = None,
          cap: int | None = None) -> list[Entry]:
    """Delete entries whose source is gone or stale, then the least recently used until
    the cache fits ``cap``; ``keep`` (an entry's .json) is never deleted. Also removes
    temporary files that a killed encoder left an hour ago or more."""
    root = Path(root) if root is not None else cache_root()
    cap = cap_bytes() if cap is None else cap
    removed, kept = [], []
    for e in entries(root):
        if e.meta != keep and e.status in ("gone", "stale", "damaged"):
            remove(e)
            removed.append(e)
        else:
            kept.append(e)
    total = sum(e.size for e in kept)
    for e in kept:  # least recently used first
        if total <= cap:
            break
        if e.meta != keep:
            remove(e)
            removed.append(e)
            total -= e.size
    for tmp in root.glob(".*.tmp") if root.is_dir() else ():
        try:
            if time.time() - tmp.stat().st_mtime > 3600:
                tmp.unlink()
        except OSError:
            pass
    return removed


def clear(root: Path | None = None) -> list[Entry]:
    found = entries(root)
    for e in found:
        remove(e)
    return found


def human(n: float) -> str:
    for unit in ("B", "KB", "MB", "GB"):
        if n < 1000 or unit == "GB":
            return f"{n:,.0f} {unit}" if unit == "B" else f"{n:,.1f} {unit}"
        n /= 1000
    return f"{n:,.1f} TB"  # pragma: no cover - the loop returns
