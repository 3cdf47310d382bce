"""Suffix arrays of corpora, built once and kept memory-mapped beside the id cache.

A suffix array lists every position of a text, sorted by the text that follows it; it
is built by libdivsufsort (``pydivsufsort``, the ``novelty`` extra). For a cached corpus
(``charrnn.data.cache``) it is stored beside the id file as ``<name>.sa`` (int32 while the
corpus has < 2**31 characters, else int64) with ``<name>.sak``, every ``KEY_STEP``-th
suffix's first characters packed into a sorted uint64 (``pack``: a first search step for
all positions at once), and a JSON sidecar ``<name>.sa.json`` recording the format
version, the corpus digest, the length, the dtype and the SHA-256 of every 64 MB block
of the three files the answers come from (the corpus ids, the array, the keys). Every
opening checks those digests (all blocks, in parallel threads): an index whose sidecar is
missing or unreadable, whose record differs or whose bytes differ in any way, even in
place with size and times kept, is rebuilt, never trusted (a wrong array can pass a
verbatim copy as novel). Files are written to a temporary name and renamed, the sidecar
last. What the check costs: docs/novelty.md.

Vocabularies over 256 characters (uint16/uint32 ids) go through pydivsufsort's integer
support: the ids as big-endian bytes, sorted, every position that is not a character
boundary dropped. That is exact (aligned big-endian bytes compare like the ids) and
costs about 4x the memory and time of a uint8 corpus; indexing UTF-8 bytes instead would
need a byte -> character map for every answer.
"""

from __future__ import annotations

import hashlib
import os
import stat
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np

from charrnn.data.cachedir import index_paths, read_meta
from charrnn.errors import CharRNNError
from charrnn.files import atomic_write_bytes, open_regular, replacing
from charrnn.safetext import dumps

INDEX_VERSION = 2  # 2: block digests of the ids, array and keys replace a spot check
KEY_STEP = 64  # every KEY_STEP-th suffix's first characters are kept as a sorted key
_MAX_KEY_CHARS = 8  # characters per key at most (the query is padded by as many)
DIGEST_BLOCK = 64 << 20  # bytes per digest: blocks are hashed in parallel threads


class IdsChanged(CharRNNError):
    """The corpus ids an index was built on are not the ones in the cache now (damaged in
    place): the cache entry must be encoded again from its source, then the index is
    checked again."""


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


def _block(path: Path, start: int) -> str:
    h = hashlib.sha256()
    with open_regular(path) as f:
        f.seek(start)
        left = DIGEST_BLOCK
        while left and (chunk := f.read(min(left, 1 << 20))):
            h.update(chunk)  # releases the GIL: the threads hash in parallel
            left -= len(chunk)
    return h.hexdigest()[:32]


def digests(paths: list[Path]) -> list[list[str]] | None:
    """The SHA-256 of every ``DIGEST_BLOCK`` of each file (None if one cannot be read)."""
    try:
        jobs = [(p, start) for p in paths
                for start in range(0, max(p.stat().st_size, 1), DIGEST_BLOCK)]
        with ThreadPoolExecutor(min(len(jobs), os.cpu_count() or 1)) as pool:
            found = list(pool.map(lambda job: _block(*job), jobs))
    except OSError:
        return None
    out: list[list[str]] = [[] for _ in paths]
    for (p, _), d in zip(jobs, found, strict=True):
        out[paths.index(p)].append(d)
    return out


def _write(path: Path, array: np.ndarray, mode: int) -> None:
    """Write through a temporary file and rename, so a reader never sees half a file.

    No fsync (about 0.3 s per 100 MB, a few percent of the build): a file the disk lost
    in a crash fails the digests at opening, and is rebuilt."""
    with replacing(path, mode) as f:
        array.tofile(f)


def stored(ids: np.ndarray, ids_path: Path, vocab_size: int, digest: str, source: str,
           log=None) -> tuple[np.ndarray, np.ndarray]:
    """The suffix array and keys of a cached corpus (memory-mapped), (re)built beside
    its id file when the stored ones are not trustworthy (see the module docstring)."""
    sa_path, keys_path, meta_path = index_paths(ids_path)
    paths = [ids_path, sa_path, keys_path]  # what every answer is read from
    n = len(ids)
    dtype = np.dtype(np.int32 if n < 2**31 else np.int64)
    meta = read_meta(meta_path) or {}
    expect = {"version": INDEX_VERSION, "digest": digest, "chars": n, "dtype": dtype.name,
              "step": KEY_STEP}
    if all(meta.get(k) == v for k, v in expect.items()) and meta.get("blocks"):
        found = digests(paths)
        if found == meta["blocks"]:
            return (np.memmap(sa_path, dtype, mode="r", shape=(n,)),
                    np.memmap(keys_path, np.uint64, mode="r"))
        if found is not None and found[1:] == meta["blocks"][1:]:
            raise IdsChanged(f"the cached ids of {source} changed since it was indexed")
    if log:
        log(f"indexing {source} for copy checks ({n:,} characters)")
    try:
        mode = stat.S_IMODE(ids_path.stat().st_mode)  # no more readable than the ids
        # A copy-on-write map: writable, as pydivsufsort wants; the file never changes.
        built = suffix_array(np.memmap(ids_path, ids.dtype, mode="c", shape=ids.shape))
        _write(sa_path, built.astype(dtype, copy=False), mode)
        _write(keys_path, sample_keys(ids, built, vocab_size), mode)
        del built
        record = {**expect, "blocks": digests(paths)}
        atomic_write_bytes(meta_path, dumps(record).encode(), mode)
    except OSError as e:
        raise CharRNNError(f"cannot write the copy index in {meta_path.parent}: "
                           f"{e.strerror or e}") from None
    return (np.memmap(sa_path, dtype, mode="r", shape=(n,)),
            np.memmap(keys_path, np.uint64, mode="r"))
