"""Big corpora in bounded memory: a text file encoded once into a memory-mapped id file.

``load(path)`` returns the corpus's vocabulary and its ids as a read-only ``np.memmap``,
so training reads batches straight from disk and a 2 GB text never sits in memory. The
file is encoded in two streaming passes (``encoding.encode_file``) and the result is
cached (``cachedir``): ``<name>-<path hash>.ids`` plus a ``.json`` that records the
source's stamp (size, modification time, inode, change time: ``cachedir.stamp``); the
cache is reused until any of them changes.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from charrnn.data import cachedir
from charrnn.data.encoding import BLOCK_SIZE, encode_file
from charrnn.data.text import Vocab, check_file
from charrnn.errors import CharRNNError

CACHE_VERSION = 2  # 2: the stamp holds the inode and change time too


@dataclass
class Encoded:
    """A corpus as ids: its own vocabulary, the ids (memory-mapped) and a content hash."""

    vocab: Vocab
    ids: np.ndarray  # read-only np.memmap of vocab.dtype
    digest: str  # text.text_digest of the normalised text
    ids_path: Path


def load(path: str | Path, cache: Path | None = None, block_size: int = BLOCK_SIZE,
         progress: bool = True, checked: bool = False, expect: str | None = None,
         refresh: bool = False) -> Encoded:
    """The cached ids of a text file, (re-)encoding it first when it is new or changed.

    ``checked``: the file was just written as valid UTF-8 (a spooled pipe), so the first
    pass skips the UTF-8 check. ``expect``: the content digest a checkpoint recorded for
    this path, which is then only a hint: other text raises cachedir.NotTheText, and is
    never cached (its digest is known after the first pass, before any write).
    ``refresh``: encode again even if the entry looks valid (its ids were damaged)."""
    src = check_file(path)
    root = cachedir.cache_root()  # checks the cache's settings first, every time
    cache = Path(cache) if cache is not None else root
    key = hashlib.sha256(str(src.resolve()).encode("utf-8", "surrogatepass")).hexdigest()[:16]
    base = cachedir.entry_base(cache, src.stem, key)
    meta_path, ids_path = base.with_name(base.name + ".json"), base.with_name(base.name + ".ids")
    stamp = _stamp(src)
    meta = cachedir.read_meta(meta_path)
    if refresh or not (meta and meta.get("version") == CACHE_VERSION
                       and meta.get("stamp") == stamp and ids_path.is_file()):
        try:
            cachedir.make_root(cache)
            mode = cachedir.entry_mode([src])
            made = encode_file(src, ids_path, block_size, progress, not checked, mode, expect)
            if isinstance(made, str):
                raise cachedir.NotTheText(made)
            if _stamp(src) != stamp:
                raise CharRNNError(f"{src} changed while it was being read; try again")
            meta = {"version": CACHE_VERSION, "source": str(src.resolve()), "stamp": stamp,
                    **made}
            cachedir.publish(meta_path, meta, mode)
        except OSError as e:
            raise cachedir.write_error(cache, e) from None
    if expect is not None and meta["digest"] != expect:
        raise cachedir.NotTheText(meta["digest"])
    vocab, ids = cachedir.open_ids(meta_path, ids_path, meta)
    return Encoded(vocab, ids, meta["digest"], ids_path)


def _stamp(src: Path) -> list[int]:
    return cachedir.stamp(src.stat())
