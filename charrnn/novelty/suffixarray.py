"""Suffix arrays of corpora, built once and kept memory-mapped beside the id cache.

A suffix array lists every position of a text, sorted by the text that follows it; it
is built by libdivsufsort (``pydivsufsort``, the ``novelty`` extra). For a cached corpus
(``charrnn.data.cache``) it is stored beside the id file as ``<name>.sa`` (int32 while the
corpus has < 2**31 characters, else int64) with ``<name>.sak``, every ``KEY_STEP``-th
suffix's first characters packed into a sorted uint64 (``pack``: a first search step for
all positions at once), and a JSON sidecar ``<name>.sa.json`` recording the format
version, the corpus digest, the length, the dtype and both files' size and modification
time. Stored arrays whose sidecar is missing or unreadable, whose record differs, or that
fail a spot check of their order are rebuilt, never trusted. Files are written to a
temporary name and renamed, the sidecar last.

Vocabularies over 256 characters (uint16/uint32 ids) go through pydivsufsort's integer
support: the ids as big-endian bytes, sorted, every position that is not a character
boundary dropped. That is exact (aligned big-endian bytes compare like the ids) and
costs about 4x the memory and time of a uint8 corpus; indexing UTF-8 bytes instead would
need a byte -> character map for every answer.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from charrnn.data.cachedir import read_meta
from charrnn.errors import CharRNNError
from charrnn.files import atomic_write_bytes, replacing

INDEX_VERSION = 1
KEY_STEP = 64  # every KEY_STEP-th suffix's first characters are kept as a sorted key
_SPOT_CHECKS = 64  # random neighbouring suffix-array entries checked for order at open
_MAX_KEY_CHARS = 8  # characters per key at most (the query is padded by as many)


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


def key_shape(vocab_size: int) -> tuple[int, int]:
    """Bits per character and characters per uint64 key: ids + 2, 1 the end of a query
    (or a character the corpus lacks), 0 the end of the corpus."""
    bits = (vocab_size + 1).bit_length()
    return bits, max(1, min(63 // bits, _MAX_KEY_CHARS))


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


def _stats(paths: list[Path]) -> list[list[int]] | None:
    try:
        return [[st.st_size, st.st_mtime_ns] for st in (p.stat() for p in paths)]
    except OSError:
        return None


def _write(path: Path, array: np.ndarray) -> None:
    """Write through a temporary file and rename, so a reader never sees half a file.

    No fsync (about 0.3 s per 100 MB, a few percent of the build): a file the disk lost
    in a crash fails the sidecar's size and time record or the spot check at opening,
    and is rebuilt."""
    with replacing(path) as f:
        array.tofile(f)


def stored(ids: np.ndarray, ids_path: Path, vocab_size: int, digest: str, source: str,
           log=None) -> tuple[np.ndarray, np.ndarray]:
    """The suffix array and keys of a cached corpus (memory-mapped), (re)built beside
    its id file when the stored ones are not trustworthy (see the module docstring)."""
    paths = [ids_path.with_suffix(".sa"), ids_path.with_suffix(".sak")]
    meta_path = ids_path.with_suffix(".sa.json")
    n = len(ids)
    dtype = np.dtype(np.int32 if n < 2**31 else np.int64)
    meta = read_meta(meta_path) or {}
    expect = {"version": INDEX_VERSION, "digest": digest, "chars": n, "dtype": dtype.name,
              "step": KEY_STEP}
    if all(meta.get(k) == v for k, v in expect.items()) and _stats(paths) == meta.get("stat"):
        sa = np.memmap(paths[0], dtype, mode="r", shape=(n,))
        keys = np.memmap(paths[1], np.uint64, mode="r")
        if len(keys) == -(-n // KEY_STEP) and _in_order(np.asarray(ids), np.asarray(sa),
                                                        np.random.default_rng()):
            return sa, keys
    if log:
        log(f"indexing {source} for copy checks ({n:,} characters)")
    try:
        # A copy-on-write map: writable, as pydivsufsort wants; the file never changes.
        built = suffix_array(np.memmap(ids_path, ids.dtype, mode="c", shape=ids.shape))
        _write(paths[0], built.astype(dtype, copy=False))
        _write(paths[1], sample_keys(ids, built, vocab_size))
        del built
        atomic_write_bytes(meta_path, json.dumps({**expect, "stat": _stats(paths)}).encode())
    except OSError as e:
        raise CharRNNError(f"cannot write the copy index in {meta_path.parent}: "
                           f"{e.strerror or e}") from None
    return (np.memmap(paths[0], dtype, mode="r", shape=(n,)),
            np.memmap(paths[1], np.uint64, mode="r"))
