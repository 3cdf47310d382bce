"""Many files as one corpus: folders walked, unusable files skipped, texts joined, one cache.

``load(inputs, separator)`` turns files and folders into one id file in the corpus cache
(``charrnn.data.cachedir``) and returns it with the span of every file in it. The joined text is

    file 1's text + ("\\n" unless it ends with one) + separator + file 2's text + ... ,

each file normalised as a single file is (BOM dropped, CRLF / CR -> LF). A folder means
every file under it, recursively, hidden folders (``.git``) skipped, run folders (a
folder holding a checkpoint or a run's lock: ``charrnn train .`` must not train on its
own metrics, notes and lock) and the corpus cache skipped, symbolic links followed but
each real folder entered once (so a link loop cannot hang the walk); all files are then
sorted by path. Files that are binary, not UTF-8, empty or unreadable are skipped and
listed in the result.

The cache entry is keyed on the inputs and the separator and records the stamp (path,
size, mtime, inode, ctime: ``cachedir.stamp``) of every file found, so a change to any
of them, or a file added or removed, re-encodes. Validation holds out the last
``val_fraction`` of every file (``split``), so a folder's held-out text represents all
of its files.
"""

from __future__ import annotations

import fnmatch
import hashlib
import json
import os
import stat
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from charrnn.config import RUN_MARKS
from charrnn.data import cachedir
from charrnn.data.encoding import BLOCK_SIZE, Lookup, file_blocks, multibyte, progress_bar
from charrnn.data.text import Vocab
from charrnn.errors import CharRNNError
from charrnn.files import replacing

MULTI_VERSION = 2  # 2: stamps hold the inode and change time too
DEFAULT_SEPARATOR = "\n"  # with each file's own final newline: a blank line between files


@dataclass
class Found:
    """What a walk over the inputs found: candidate files and the ones refused outright."""

    files: list[Path] = field(default_factory=list)
    skipped: list[tuple[str, str]] = field(default_factory=list)  # (path, reason)


def walk(inputs: list[str], cache_root: Path | None = None) -> Found:
    """Every file named or under a named folder, sorted by path within each input (the
    cache folder in use, ``cache_root`` or the default, left out)."""
    found = Found()
    cache = _identity(cachedir.cache_root() if cache_root is None else cache_root)
    for arg in inputs:
        p = Path(arg)
        if not p.exists():
            raise CharRNNError(f"no such file or folder: {p}")
        if not p.is_dir():
            found.files.append(p)
            continue
        seen_dirs: set[tuple[int, int]] = set()
        mine: list[Path] = []
        for root, dirs, files in os.walk(p, followlinks=True, onerror=None):
            st = os.stat(root)
            here = (st.st_dev, st.st_ino)
            if here in seen_dirs or here == cache or _is_run(Path(root), files):
                dirs[:] = []  # a link back up, the cache or a run folder: not the corpus
                continue
            seen_dirs.add(here)
            dirs[:] = sorted(d for d in dirs if not d.startswith("."))
            for name in files:
                f = Path(root) / name
                if f.is_file():
                    mine.append(f)
                else:
                    found.skipped.append((str(f), "broken link" if f.is_symlink()
                                          else "not a regular file"))
        found.files.extend(sorted(mine, key=lambda q: q.parts))
    seen: set[Path] = set()  # a file named twice (or inside a named folder) is read once
    unique = []
    for f in found.files:
        real = f.resolve()
        if real not in seen:
            seen.add(real)
            unique.append(f)
    found.files = unique
    return found


def _identity(folder: Path) -> tuple[int, int] | None:
    try:
        st = folder.stat()
    except OSError:
        return None
    return st.st_dev, st.st_ino


def _is_run(folder: Path, files: list[str]) -> bool:
    """Whether a folder is a run folder (config.RUN_MARKS: a checkpoint or a lock)."""
    return any(fnmatch.fnmatchcase(name, mark) for name in files for mark in RUN_MARKS)


def stamps(files: list[Path]) -> list[list]:
    """[path, *cachedir.stamp] of each file: what the cache entry is valid for."""
    out = []
    for f in files:
        try:
            st = f.stat()
        except OSError:
            raise CharRNNError(f"{f} vanished while the inputs were being read; try again"
                               ) from None
        out.append([str(f), *cachedir.stamp(st)])
    return out


@dataclass
class Joined:
    """A multi-file corpus in the cache: ids, vocabulary, and where each file lies."""

    vocab: Vocab
    ids: np.ndarray  # read-only memmap
    digest: str
    ids_path: Path
    files: list[str]  # the files used, in order
    spans: np.ndarray  # (n, 2): [start, end) of each used file's text (+ its newline)
    skipped: list[tuple[str, str]]
    stamps: list[list]  # of every file found, used or skipped


def entry_key(inputs: list[str], separator: str) -> str:
    resolved = [str(Path(a).resolve()) for a in inputs]
    blob = json.dumps({"inputs": resolved, "separator": separator})
    return hashlib.sha256(blob.encode("utf-8", "surrogatepass")).hexdigest()[:16]


def entry_paths(inputs: list[str], separator: str, root: Path | None = None
                ) -> tuple[Path, Path]:
    root = Path(root) if root is not None else cachedir.cache_root()
    base = cachedir.entry_base(root, Path(inputs[0]).resolve().name or "root",
                               f"multi-{entry_key(inputs, separator)}")
    return base.with_name(base.name + ".json"), base.with_name(base.name + ".ids")


def load(inputs: list[str], separator: str = DEFAULT_SEPARATOR, root: Path | None = None,
         block_size: int = BLOCK_SIZE, progress: bool = True, expect: str | None = None,
         refresh: bool = False) -> Joined:
    """The joined corpus of ``inputs`` from the cache, (re-)encoding it when anything
    changed. ``expect``: the content digest a checkpoint recorded for these inputs, which
    are then only hints: other text raises cachedir.NotTheText and is never cached.
    ``refresh``: encode again even if the entry looks valid (its ids were damaged)."""
    root = cachedir.cache_root() if root is None else Path(root)  # settings checked first
    found = walk(inputs, root)
    if not found.files and not found.skipped:
        raise CharRNNError(f"no files found under {', '.join(inputs)} (hidden folders "
                           "such as .git, run folders and the corpus cache are skipped)")
    current = stamps(found.files)
    meta_path, ids_path = entry_paths(inputs, separator, root)
    meta = cachedir.read_meta(meta_path)
    if refresh or not (meta and meta.get("version") == MULTI_VERSION
                       and meta.get("stamps") == current and ids_path.is_file()):
        try:
            cachedir.make_root(ids_path.parent)
            mode = cachedir.entry_mode(found.files)
            meta = _encode(found, separator, ids_path, block_size, progress, mode, expect)
            if stamps(found.files) != current:
                raise CharRNNError("an input file changed while it was being read; try again")
            meta = {"version": MULTI_VERSION, "kind": "multi",
                    "inputs": [str(Path(a).resolve()) for a in inputs],
                    "separator": separator, "stamps": current, **meta}
            cachedir.publish(meta_path, meta, mode)
        except OSError as e:
            raise cachedir.write_error(ids_path.parent, e) from None
    if expect is not None and meta["digest"] != expect:
        raise cachedir.NotTheText(meta["digest"])
    vocab, ids = cachedir.open_ids(meta_path, ids_path, meta)
    return Joined(vocab, ids, meta["digest"], ids_path, meta["files"],
                  np.asarray(meta["spans"], dtype=np.int64).reshape(-1, 2),
                  [tuple(s) for s in meta["skipped"]], current)


def _reason(message: str) -> str:
    """A skipped file's reason in a word or two, from read_text's one-line error."""
    for key, reason in (("binary", "binary"), ("UTF-16", "UTF-16"), ("UTF-32", "UTF-32"),
                        ("not valid UTF-8", "not UTF-8"), ("empty", "empty"),
                        ("whitespace", "empty"), ("cannot read", "unreadable")):
        if key in message:
            return reason
    return "unreadable"


class _Scan:
    """Pass 1 over one file after another: which characters occur, how many, and the
    content digest of the joined text (so it is known before anything is written)."""

    def __init__(self, separator: str) -> None:
        self.seen = np.zeros(0x110000, bool)
        self.known_ascii = b""
        self.digest, self.used = hashlib.sha256(), 0
        self.separator = separator.encode("utf-8")

    def file(self, path: Path, block_size: int, bar) -> tuple[int, bool]:
        """Characters in ``path`` and whether it ends with a newline; on a bad file, the
        characters it added (and its part of the digest) are forgotten and CharRNNError
        raised."""
        added: list[np.ndarray] = []
        chars, last, text = 0, b"", False
        before = self.digest.copy()
        if self.used:
            self.digest.update(self.separator)
        try:
            for block in file_blocks(path, block_size, bar, check_utf8=True):
                self.digest.update(block)
                chars += len(block)
                last = block[-1:]
                text = text or bool(block.strip())
                rest = np.frombuffer(block.translate(None, self.known_ascii), np.uint8)
                if not len(rest):
                    continue
                cps = rest[rest < 0x80].astype(np.uint32)
                if rest.max() >= 0x80:
                    _, multi, extra = multibyte(rest)
                    cps = np.concatenate([cps, multi])
                    chars -= int(extra.sum())
                new = np.unique(cps[~self.seen[cps]])
                self.seen[new] = True
                added.append(new)
                self._ascii()
            if not text:
                raise CharRNNError(f"{path} is empty" if not chars
                                   else f"{path} holds only whitespace")
        except CharRNNError:
            for new in added:
                self.seen[new] = False
            self._ascii()
            self.digest = before
            raise
        if last != b"\n":
            self.digest.update(b"\n")
        self.used += 1
        return chars, last == b"\n"

    def _ascii(self) -> None:
        self.known_ascii = bytes(np.flatnonzero(self.seen[:128]).astype(np.uint8))


def _encode(found: Found, separator: str, ids_path: Path, block_size: int,
            progress: bool, mode: int, expect: str | None = None) -> dict:
    """Pass 1 (check every file, vocabulary, digest), then pass 2 (ids of the joined
    text). ``expect``: the digest a checkpoint recorded; other text is refused
    (cachedir.NotTheText) before anything is written."""
    sizes = {}
    for f in found.files:
        try:
            sizes[f] = f.stat().st_size
        except OSError:
            sizes[f] = 0
    bar = (progress_bar(2 * sum(sizes.values()), f"encoding {len(found.files):,} files")
           if progress else None)
    try:
        scan, skipped, used = _Scan(separator), list(found.skipped), []
        for f in found.files:
            if sizes[f] == 0 and stat.S_ISREG(_mode(f)):
                skipped.append((str(f), "empty"))
                continue
            try:
                chars, ends_nl = scan.file(f, block_size, bar)
            except CharRNNError as e:
                skipped.append((str(f), _reason(str(e))))
                continue
            used.append((f, chars, ends_nl))
        if not used:
            total = len(found.files) + len(found.skipped)
            raise CharRNNError(f"no usable text in {total:,} files: "
                               f"{summary(skipped, total, 'all ')}")
        digest = scan.digest.hexdigest()[:16]
        if expect is not None and digest != expect:
            raise cachedir.NotTheText(digest)
        extra = "".join({"\n", *separator}) if separator else "\n"
        cps = np.frombuffer(extra.encode("utf-32-le"), "<u4")
        scan.seen[cps] = True
        vocab = Vocab(tuple(chr(c) for c in np.flatnonzero(scan.seen)))
        lookup = Lookup(np.flatnonzero(scan.seen).astype(np.uint32), vocab.dtype)
        newline, sep = vocab.encode("\n").tobytes(), vocab.encode(separator).tobytes()
        spans, pos = [], 0
        with replacing(ids_path, mode) as out:
            for i, (f, chars, ends_nl) in enumerate(used):
                if i:
                    out.write(sep)
                    pos += len(separator)
                try:
                    for block in file_blocks(f, block_size, bar, check_utf8=False):
                        ids = lookup.ids(block)
                        out.write(ids if isinstance(ids, bytes) else ids.data)
                except CharRNNError:
                    raise CharRNNError(f"{f} vanished or changed while it was being "
                                       "read; try again") from None
                if not ends_nl:
                    out.write(newline)
                spans.append([pos, pos + chars + (not ends_nl)])
                pos = spans[-1][1]
            if out.tell() != pos * vocab.dtype.itemsize:
                raise CharRNNError("an input file changed while it was being read; try again")
    finally:
        if bar is not None:
            bar.close()
    return {"vocab": list(vocab.chars), "chars": pos, "digest": digest,
            "dtype": vocab.dtype.name, "files": [str(f) for f, _, _ in used],
            "spans": spans, "skipped": skipped}


def _mode(f: Path) -> int:
    try:
        return f.stat().st_mode
    except OSError:
        return 0


def summary(skipped: list[tuple[str, str]], total: int, lead: str = "") -> str:
    """'skipped 3 of 1,204 files: 2 binary, 1 not UTF-8; first: path (reason)'."""
    from collections import Counter

    counts = Counter(r for _, r in skipped)
    kinds = ", ".join(f"{n:,} {r}" for r, n in sorted(counts.items(),
                                                        key=lambda rn: (-rn[1], rn[0])))
    first = f"{skipped[0][0]} ({skipped[0][1]})"
    return f"skipped {lead}{len(skipped):,} of {total:,} files: {kinds}; first: {first}"


def split(joined: Joined, val_fraction: float, root: Path | None = None
          ) -> tuple[np.ndarray, np.ndarray]:
    """Train and held-out ids: the last ``val_fraction`` of every file is held out.

    Each file's share is rounded so the shares add up to ``val_fraction`` of all files
    (a file of 8 characters still gives its part over several files). The two parts are
    written once, train then held-out, into a file next to the cache entry and memory-
    mapped, so they need no memory however big the corpus.
    """
    spans = joined.spans
    lengths = spans[:, 1] - spans[:, 0]
    cum = np.concatenate([[0], np.cumsum(lengths)])
    n_val = np.diff(np.floor(cum * val_fraction).astype(np.int64))
    total_val = int(n_val.sum())
    if val_fraction > 0 and total_val < 2:
        raise CharRNNError(
            f"text too short to hold out {val_fraction:.0%} for validation "
            f"({len(joined.ids)} characters); use a longer text or --val-fraction 0")
    if total_val == 0:
        return joined.ids, joined.ids[:0]
    path = joined.ids_path.with_name(f"{joined.ids_path.stem}.val{val_fraction!r}.ids")
    n = len(joined.ids)
    if not (path.is_file() and path.stat().st_size == joined.ids_path.stat().st_size
            and path.stat().st_mtime_ns >= joined.ids_path.stat().st_mtime_ns):
        cuts = spans[:, 1] - n_val  # where each file's held-out part starts
        train_parts, val_parts, prev = [], [], 0
        for cut, end in zip(cuts.tolist(), spans[:, 1].tolist(), strict=True):
            train_parts.append((prev, cut))  # also the separator before this file
            val_parts.append((cut, end))
            prev = end
        train_parts.append((prev, n))
        try:
            with replacing(path, stat.S_IMODE(joined.ids_path.stat().st_mode)) as out:
                for a, b in train_parts + val_parts:
                    out.write(np.ascontiguousarray(joined.ids[a:b]).tobytes())
        except OSError as e:
            raise CharRNNError(f"cannot write the corpus cache in {path.parent}: "
                               f"{e.strerror or e}") from None
    both = np.memmap(path, dtype=joined.ids.dtype, mode="r", shape=(n,))
    return both[: n - total_val], both[n - total_val :]
