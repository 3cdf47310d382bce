"""Is the model writing or copying? Verbatim copies of the training text in a sample.

An ``Index`` is a suffix array over a corpus's ids: every position of the text, sorted by
the text that follows it. Built once per corpus by libdivsufsort (``pydivsufsort``, the
``novelty`` extra) and kept beside the corpus's id cache (``charrnn.cache``) as
``<name>.sa``, a memory-mapped array (int32 while the corpus has < 2**31 characters,
else int64), with a JSON sidecar ``<name>.sa.json`` recording the format version, the
corpus digest, the length and the file's size and modification time. An index whose
sidecar is missing or unreadable, whose digest, length or file stat differ, or that fails
a spot check of its order, is rebuilt, never trusted; the longest copy a query reports
is checked against the corpus itself.

Queries are matching statistics: for every position i of a sample, the longest prefix
of sample[i:] that occurs in the corpus. All positions are binary-searched at once in
numpy (about log2(n) rounds over arrays as long as the sample), comparing windows of
characters and skipping the prefix both search bounds already share, so a check touches
only a few thousand pages of the memory-mapped files, never the whole corpus.

Vocabularies over 256 characters (uint16/uint32 ids) go through pydivsufsort's integer
support: the ids as big-endian bytes, sorted, every position that is not a character
boundary dropped. That is exact (aligned big-endian bytes compare like the ids) and
costs about 4x the memory and time of a uint8 corpus; indexing UTF-8 bytes instead would
need a byte -> character map for every answer.
"""

from __future__ import annotations

import json
import os
import sys
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from charrnn.errors import CharRNNError
from charrnn.sieve import DEFAULT_MIN_COPY
from charrnn.text import BUILTIN_CORPUS, Vocab, read_text, text_digest

INDEX_VERSION = 1
_WINDOW = 8  # characters compared per row per round of the search
_SPOT_CHECKS = 64  # random neighbouring suffix-array entries checked for order at open
KEY_STEP = 64  # every KEY_STEP-th suffix's first characters are kept as a sorted key
_END_QUERY, _END_CORPUS = -1, -2  # past a query / past the corpus: never equal to an id


@dataclass(frozen=True)
class CopyReport:
    """Verbatim copies of the training text in one text (prime + sample).

    Only copies that reach into the generated part count (a quoted prime alone is no
    copy); ``share`` is the fraction of generated characters inside a copy of at least
    ``min_copy`` characters.
    """

    longest: int  # characters
    corpus_at: int | None  # a corpus character offset where the longest copy occurs
    text_at: int  # where it starts in the checked text (prime included)
    share: float
    min_copy: int

    def fields(self) -> dict:
        """The report as ``--jsonl`` fields."""
        return {"longest_copy": self.longest, "copy_at": self.corpus_at,
                "copy_start": self.text_at, "copied_share": round(self.share, 4),
                "min_copy": self.min_copy}

    def summary(self) -> str:
        if not self.longest:
            return "no copied characters"
        return (f"longest copy {self.longest} characters (corpus character {self.corpus_at}),"
                f" {self.share:.0%} of its characters in copies of >= {self.min_copy}")


class Index:
    """A corpus's ids and their suffix array (both usually memory-mapped, read-only)."""

    def __init__(self, ids: np.ndarray, sa: np.ndarray, keys: np.ndarray, vocab: Vocab,
                 source: str, digest: str) -> None:
        self.ids, self.sa, self.keys = np.asarray(ids), np.asarray(sa), np.asarray(keys)
        self.vocab, self.source, self.digest = vocab, source, digest
        self._cps = np.array([ord(c) for c in vocab.chars], np.uint32)
        self.key_bits, self.key_chars = key_shape(len(vocab))
        self.step = KEY_STEP
        self._words = None  # the corpus as big-endian uint64 at every offset (uint8 only)
        if self.ids.dtype == np.uint8 and len(self.ids) >= 8:
            self._words = np.ndarray((len(self.ids) - 7,), ">u8", self.ids, strides=(1,))

    def __len__(self) -> int:
        return len(self.ids)

    def encode(self, text: str) -> np.ndarray:
        """Corpus ids of ``text`` (int64); characters the corpus lacks match nothing."""
        cps = np.frombuffer(text.encode("utf-32-le"), "<u4")
        ids = np.searchsorted(self._cps, cps)
        ids[ids == len(self._cps)] = 0
        return np.where(self._cps[ids] == cps, ids, _END_QUERY).astype(np.int64)

    def matching(self, q: np.ndarray, starts: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """For each start i: the length of the longest prefix of q[i:] found in the
        corpus, and a corpus position where it occurs (-1 if none).

        ``q`` must end with at least ``_WINDOW`` copies of ``_END_QUERY``. A binary search
        per start, all at once, in the stretch of the suffix array that the sampled keys
        leave; it keeps the common prefix of the query with the suffixes just below and
        above it, and the longest match is one of those two.
        """
        n, sa = len(self.sa), self.sa
        k = len(starts)
        lo, hi = self._narrow(q, starts)
        llo, lhi = np.zeros(k, np.int64), np.zeros(k, np.int64)
        seen_lo, seen_hi = lo == 0, hi == n  # the lcp with that neighbour is known (0)
        act = np.flatnonzero(lo < hi)
        while act.size:
            a, b = lo[act], hi[act]
            mid = (a + b) >> 1
            lcp, greater = self._compare(q, starts[act], sa[mid].astype(np.int64),
                                         np.minimum(llo[act], lhi[act]))
            lo[act] = np.where(greater, mid + 1, a)
            hi[act] = np.where(greater, b, mid)
            llo[act] = np.where(greater, lcp, llo[act])
            lhi[act] = np.where(greater, lhi[act], lcp)
            seen_lo[act] |= greater
            seen_hi[act] |= ~greater
            act = act[lo[act] < hi[act]]
        for seen, side, bound in ((seen_lo, llo, lo - 1), (seen_hi, lhi, hi)):
            rest = np.flatnonzero(~seen)  # a bound set by the keys, never compared
            if rest.size:
                side[rest], _ = self._compare(q, starts[rest], sa[bound[rest]].astype(
                    np.int64), np.zeros(rest.size, np.int64))
        below = (llo >= lhi) & (lo > 0)
        length = np.where(below, llo, lhi)
        at = np.where(below, sa[np.maximum(lo - 1, 0)], sa[np.minimum(hi, n - 1)])
        return length, np.where(length > 0, at, -1).astype(np.int64)

    def _narrow(self, q: np.ndarray, starts: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """[lo, hi): where in the suffix array each query belongs, from the sampled keys.

        Keys (``pack``) order the first few characters exactly as the full comparison
        does, so a sampled suffix with a smaller key lies below the query, one with a
        larger key above it.
        """
        n, keys, step = len(self.sa), self.keys, self.step
        qk = pack(q[starts[:, None] + np.arange(self.key_chars)] + 2, self.key_bits)
        left = np.searchsorted(keys, qk, "left")
        right = np.searchsorted(keys, qk, "right")
        lo = np.where(left > 0, (left - 1) * step + 1, 0)
        hi = np.where(right < len(keys), right * step, n)
        return lo.astype(np.int64), hi.astype(np.int64)

    def _compare(self, q: np.ndarray, starts: np.ndarray, pos: np.ndarray,
                 skip: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Common prefix of q[starts:] and corpus[pos:] (both known equal for ``skip``
        characters) and whether the query sorts after the corpus suffix.

        A window of ``_WINDOW`` characters settles most rows; the rest, in long matches,
        go on in growing windows, for a uint8 corpus 8 characters per uint64
        (``_compare_words``), so a long copy costs a few rounds, not one per window.
        """
        lcp, greater = skip.copy(), np.zeros(len(starts), bool)
        todo = self._compare_chars(q, starts, pos, lcp, greater, np.arange(len(starts)), True)
        if todo.size and self._words is not None:
            todo = self._compare_words(q, starts, pos, lcp, greater, todo)
        self._compare_chars(q, starts, pos, lcp, greater, todo, False)
        return lcp, greater

    def _compare_chars(self, q: np.ndarray, starts: np.ndarray, pos: np.ndarray,
                       lcp: np.ndarray, greater: np.ndarray, todo: np.ndarray,
                       once: bool) -> np.ndarray:
        """``_compare`` by characters for rows ``todo``; ``once``: one window only.
        Updates ``lcp`` and ``greater``; returns the rows still undecided."""
        n, ids, width = len(self.ids), self.ids, _WINDOW
        while todo.size:
            off = lcp[todo, None] + np.arange(width)
            qv = q.take(starts[todo, None] + off, mode="clip")  # past q's end: -1 too
            ci = pos[todo, None] + off
            cv = ids.take(ci, mode="clip").astype(np.int64)
            cv[ci >= n] = _END_CORPUS
            neq = qv != cv
            first = neq.argmax(axis=1)
            rows = np.arange(len(todo))
            hit = neq[rows, first]
            lcp[todo] += np.where(hit, first, width)
            done = todo[hit]
            greater[done] = qv[rows[hit], first[hit]] > cv[rows[hit], first[hit]]
            todo, width = todo[~hit], min(width * 4, 1024)
            if once:
                break
        return todo

    def _compare_words(self, q: np.ndarray, starts: np.ndarray, pos: np.ndarray,
                       lcp: np.ndarray, greater: np.ndarray, todo: np.ndarray) -> np.ndarray:
        """``_compare`` 8 characters at a time: the corpus and the query read as
        big-endian uint64 at any character offset (a stride-1 view), so the first
        differing character is the first non-zero byte of their XOR. Updates ``lcp``
        and ``greater``; returns the rows left to the character loop (windows that would
        run past the corpus's last 8 characters)."""
        n, words = len(self.ids), self._words
        qbytes = np.concatenate([np.maximum(q, 0).astype(np.uint8), np.zeros(8, np.uint8)])
        qwords = np.ndarray((len(qbytes) - 7,), ">u8", qbytes, strides=(1,))
        cut = np.flatnonzero(q < 0)  # each row's query ends at its first -1
        qend = cut[np.searchsorted(cut, starts)]
        width, rest = 2, []
        while todo.size:
            cpos = pos[todo] + lcp[todo]
            near = cpos + 8 * width > n  # the window would leave the corpus: by character
            rest.append(todo[near])
            todo, cpos = todo[~near], cpos[~near]
            steps = 8 * np.arange(width, dtype=np.int64)
            cw = words[cpos[:, None] + steps].astype(np.uint64)  # (take would copy all)
            qw = qwords[np.minimum(starts[todo, None] + lcp[todo, None] + steps,
                                   len(qwords) - 1)].astype(np.uint64)
            x = cw ^ qw
            nz = x != 0
            j = nz.argmax(axis=1)
            rows = np.arange(len(todo))
            xj = x[rows, j]
            diff = np.where(nz[rows, j], 8 * j + _zero_bytes(xj), 8 * width)
            limit = qend[todo] - starts[todo] - lcp[todo]  # query characters left
            stop = np.minimum(diff, limit)
            done = stop < 8 * width
            lcp[todo] += np.where(done, stop, 8 * width)
            # a difference first: the larger byte; else the query ended: it sorts first
            first_diff = diff < limit
            greater[todo] = np.where(first_diff, qw[rows, j] > cw[rows, j], False)
            todo, width = todo[~done], min(width * 4, 128)
        return np.concatenate(rest) if rest else np.zeros(0, np.int64)

    def _padded(self, text: str) -> np.ndarray:
        return np.concatenate([self.encode(text), np.full(_WINDOW, _END_QUERY)])

    def report(self, text: str, generated_from: int = 0,
               min_copy: int = DEFAULT_MIN_COPY) -> CopyReport:
        """The copies of the training text in ``text`` whose generated part starts at
        character ``generated_from`` (the prime's length)."""
        q = self._padded(text)
        m = len(text)
        starts = np.arange(m)
        length, at = self.matching(q, starts)
        reach = starts + length
        counts = reach > generated_from  # copies that hold generated characters
        if not m or not counts.any():
            return CopyReport(0, None, 0, 0.0, min_copy)
        best = int(np.argmax(np.where(counts, length, -1)))
        longest, where = int(length[best]), int(at[best])
        if longest and not np.array_equal(self.ids[where:where + longest],
                                          q[best:best + longest]):
            raise CharRNNError(f"the copy index of {self.source} gives wrong answers; delete "
                               f"{self.source}'s cached files (see charrnn.cache) and retry")
        ends = np.maximum.accumulate(np.where(length >= min_copy, reach, 0))
        inside = ends > starts
        generated = inside[generated_from:]
        share = float(generated.mean()) if generated.size else 0.0
        return CopyReport(longest, where if longest else None, best, share, min_copy)

    def occurs(self, text: str) -> bool:
        """Whether ``text`` occurs verbatim in the corpus.

        The corpus's start and end count as line breaks, so that with ``-p $'\\n'`` and
        ``--stop '\\n'`` the first and last lines of a list are found too.
        """
        if not text:
            return True
        length, _ = self.matching(self._padded(text), np.zeros(1, np.int64))
        if int(length[0]) == len(text):
            return True
        n, ids = len(self.ids), self.ids
        ends = []  # (text, whether it must begin the corpus, whether it must end it)
        if text.startswith("\n"):
            ends.append((text[1:], True, False))
        if text.endswith("\n"):
            ends.append((text[:-1], False, True))
        if len(text) > 1 and text[0] == text[-1] == "\n":
            ends.append((text[1:-1], True, True))
        for part, first, last in ends:
            q = self.encode(part)
            if q.size > n or (first and last and q.size != n):
                continue
            if np.array_equal(ids[:q.size] if first else ids[n - q.size:], q):
                return True
        return False


# --------------------------------------------------------------------------- building
def suffix_array(ids: np.ndarray) -> np.ndarray:
    """The suffix array of ``ids`` (any unsigned dtype): int32 if it fits, else int64."""
    try:
        from pydivsufsort import divsufsort
    except ImportError:
        raise CharRNNError("copy checks need pydivsufsort: pip install 'charrnn[novelty]'"
                           ) from None
    sa = np.asarray(divsufsort(ids))
    dtype = np.int32 if len(ids) < 2**31 else np.int64
    return sa if sa.dtype == dtype else sa.astype(dtype)


def _zero_bytes(x: np.ndarray) -> np.ndarray:
    """Leading zero bytes of non-zero uint64 values (by halving: 32, 16, 8 bits)."""
    count = np.zeros(len(x), np.int64)
    for bits in (32, 16, 8):
        top = (x >> np.uint64(64 - bits)) == 0
        count += top * (bits // 8)
        x = np.where(top, x << np.uint64(bits), x)
    return count


def key_shape(vocab_size: int) -> tuple[int, int]:
    """Bits per character and characters per uint64 key: ids + 2, 1 the end of a query
    (or a character the corpus lacks), 0 the end of the corpus."""
    bits = (vocab_size + 1).bit_length()
    return bits, max(1, min(63 // bits, _WINDOW))


def pack(values: np.ndarray, bits: int) -> np.ndarray:
    """Rows of small non-negative ints -> one uint64 each, first column most significant."""
    out = np.zeros(len(values), np.uint64)
    for column in values.T:
        out = (out << np.uint64(bits)) | column.astype(np.uint64)
    return out


def sample_keys(ids: np.ndarray, sa: np.ndarray, vocab_size: int) -> np.ndarray:
    """The key of every ``KEY_STEP``-th suffix in suffix-array order (sorted, uint64)."""
    bits, chars = key_shape(vocab_size)
    n, ar = len(ids), np.arange(chars)
    out = []
    for block in range(0, len(sa), KEY_STEP << 20):
        ci = sa[block:block + (KEY_STEP << 20):KEY_STEP].astype(np.int64)[:, None] + ar
        values = ids[np.minimum(ci, n - 1)].astype(np.int64) + 2
        values[ci >= n] = 0
        out.append(pack(values, bits))
    return np.concatenate(out) if out else np.zeros(0, np.uint64)


def _sidecar(path: Path) -> dict | None:
    try:
        meta = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return meta if isinstance(meta, dict) else None


def _in_order(ids: np.ndarray, sa: np.ndarray, rng: np.random.Generator) -> bool:
    """A spot check: random neighbouring entries in range and sorted (first 64 chars)."""
    n = len(ids)
    if n < 2:
        return bool(n == 0 or sa[0] == 0)
    for j in rng.integers(0, n - 1, min(_SPOT_CHECKS, n - 1)).tolist():
        a, b = int(sa[j]), int(sa[j + 1])
        if not (0 <= a < n and 0 <= b < n) or a == b:
            return False
        x, y = ids[a:a + 64].astype(np.int64), ids[b:b + 64].astype(np.int64)
        diff = np.flatnonzero(x[:len(y)] != y[:len(x)])
        if diff.size:
            if x[diff[0]] > y[diff[0]]:
                return False
        elif len(x) > len(y):  # a prefix sorts first
            return False
    return True


def open_cached(ids: np.ndarray, ids_path: Path, vocab: Vocab, source: str, digest: str,
                log=None) -> Index:
    """The index of a cached corpus, (re)built beside its id file when not trustworthy."""
    paths = [ids_path.with_suffix(".sa"), ids_path.with_suffix(".sak")]
    meta_path = ids_path.with_suffix(".sa.json")
    n = len(ids)
    dtype = np.dtype(np.int32 if n < 2**31 else np.int64)
    meta = _sidecar(meta_path) or {}
    expect = {"version": INDEX_VERSION, "digest": digest, "chars": n, "dtype": dtype.name,
              "step": KEY_STEP}
    if all(meta.get(k) == v for k, v in expect.items()) and _stats(paths) == meta.get("stat"):
        sa = np.memmap(paths[0], dtype, mode="r", shape=(n,))
        keys = np.memmap(paths[1], np.uint64, mode="r")
        if len(keys) == -(-n // KEY_STEP) and _in_order(np.asarray(ids), np.asarray(sa),
                                                        np.random.default_rng()):
            return Index(ids, sa, keys, vocab, source, digest)
    if log:
        log(f"indexing {source} for copy checks ({n:,} characters)")
    try:
        # A copy-on-write map: writable, as pydivsufsort wants; the file never changes.
        sa = suffix_array(np.memmap(ids_path, ids.dtype, mode="c", shape=ids.shape))
        _write(paths[0], sa.astype(dtype, copy=False))
        _write(paths[1], sample_keys(ids, sa, len(vocab)))
        del sa
        from charrnn.checkpoint import atomic_write_bytes

        atomic_write_bytes(meta_path, json.dumps({**expect, "stat": _stats(paths)}).encode())
    except OSError as e:
        raise CharRNNError(f"cannot write the copy index in {meta_path.parent}: "
                           f"{e.strerror or e}") from None
    return Index(ids, np.memmap(paths[0], dtype, mode="r", shape=(n,)),
                 np.memmap(paths[1], np.uint64, mode="r"), vocab, source, digest)


def _stats(paths: list[Path]) -> list[list[int]] | None:
    try:
        return [[st.st_size, st.st_mtime_ns] for st in (p.stat() for p in paths)]
    except OSError:
        return None


def _write(path: Path, array: np.ndarray) -> None:
    """Write through a temporary file and rename, so a reader never sees half a file."""
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        with tmp.open("wb") as f:
            array.tofile(f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


def open_source(source: str, digest: str | None = None, name: str = "the checkpoint",
                log=None) -> Index:
    """The index of a training text by path (or the built-in corpus), checked against
    ``digest`` (the checkpoint's record of its corpus) when one is given."""
    if source == BUILTIN_CORPUS:  # no cache file: indexed in memory (~0.1 s)
        text = read_text(source)
        vocab = Vocab.from_text(text)
        ids, found = vocab.encode(text), text_digest(text)
        index = None
    else:
        from charrnn import cache

        if not Path(source).is_file():
            raise CharRNNError(f"the training text of {name} is missing: {source} "
                               "(--corpus PATH points at a copy of it)")
        encoded = cache.load(source)
        ids, vocab, found = encoded.ids, encoded.vocab, encoded.digest
    if digest and found != digest:
        raise CharRNNError(f"{source} is not the text {name} was trained on (digest {found}, "
                           f"expected {digest}); --corpus PATH points at a copy of it")
    if source == BUILTIN_CORPUS:
        sa = suffix_array(ids)
        index = Index(ids, sa, sample_keys(ids, sa, len(vocab)), vocab, source, found)
    else:
        index = open_cached(encoded.ids, encoded.ids_path, vocab, source, found, log)
    return index


def for_checkpoint(meta: dict, path: str | Path, corpus: str | None = None,
                   log=None) -> Index:
    """The index of the text a checkpoint was trained on: its recorded source, or
    ``corpus`` (a copy), which must match the recorded digest."""
    info = meta.get("corpus") or {}
    source = corpus or info.get("source")
    if not source:
        raise CharRNNError(f"{path} does not record its training text; --corpus PATH names it")
    if corpus and corpus != BUILTIN_CORPUS and not Path(corpus).is_file():
        raise CharRNNError(f"no such file: {corpus} (--corpus)")
    return open_source(str(source), info.get("digest") or None, str(path), log)


def stderr_log(message: str) -> None:
    print(f"charrnn: {message}", file=sys.stderr, flush=True)
