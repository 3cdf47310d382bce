"""Finding the index of a checkpoint's training text: one file, several files and folders,
or the built-in corpus, from the paths the checkpoint records or a copy the user names.

The paths a checkpoint records are hints, never a reason to read or keep a file: without
a recorded digest they are not read at all, and text whose content does not match the
digest is refused before it is cached or indexed (an edited header naming
``/etc/passwd`` gets one line, and nothing of that file lands in the cache).
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np

from charrnn.data.corpus import separator_of, source_of
from charrnn.data.text import BUILTIN_CORPUS, Vocab, read_text, text_digest
from charrnn.errors import CharRNNError
from charrnn.novelty.index import Index
from charrnn.novelty.suffixarray import IdsChanged, sample_keys, stored, suffix_array
from charrnn.safetext import shown


def open_cached(ids: np.ndarray, ids_path: Path, vocab: Vocab, source: str, digest: str,
                log=None) -> Index:
    """The index of a cached corpus, (re)built beside its id file when not trustworthy."""
    sa, keys = stored(ids, ids_path, len(vocab), digest, source, log)
    return Index(ids, sa, keys, vocab, source, digest)


def open_source(source: str, digest: str | None = None, name: str = "the checkpoint",
                log=None) -> Index:
    """The index of a training text by path (or the built-in corpus), checked against
    ``digest`` (the checkpoint's record of its corpus) when one is given: text that does
    not match is refused before it is cached or indexed."""
    if source == BUILTIN_CORPUS:  # no cache file: indexed in memory (~0.1 s)
        text = read_text(source)
        vocab = Vocab.from_text(text)
        ids, found = vocab.encode(text), text_digest(text)
        if digest and found != digest:
            raise _not_the_text(source, name)
        sa = suffix_array(ids)
        return Index(ids, sa, sample_keys(ids, sa, len(vocab)), vocab, source, found)
    from charrnn.data import cache, cachedir

    if not Path(source).is_file():
        raise CharRNNError(f"the training text of {name} is missing: {source} "
                           "(--corpus PATH points at a copy of it)")
    for refresh in (False, True):
        try:
            encoded = cache.load(source, expect=digest or None, refresh=refresh)
        except cachedir.NotTheText:
            raise _not_the_text(source, name) from None
        try:
            return open_cached(encoded.ids, encoded.ids_path, encoded.vocab, source,
                               encoded.digest, log)
        except IdsChanged:  # damaged in place: encoded again from the text, then checked
            continue
    raise CharRNNError(f"the corpus cache of {source} keeps changing; try again")


def open_joined(inputs: list[str], separator: str, digest: str | None,
                name: str = "the checkpoint", log=None) -> Index:
    """The index of a corpus of several files or folders (``data.corpora``), joined as
    training joined them, checked against ``digest`` before anything is cached."""
    from charrnn.data import cachedir, corpora

    for refresh in (False, True):
        try:
            joined = corpora.load(inputs, separator, expect=digest or None, refresh=refresh)
        except cachedir.NotTheText:
            raise _not_the_text(" + ".join(inputs), name) from None
        except CharRNNError as e:
            raise CharRNNError(f"the training text of {name} is not readable ({e}); "
                               "--corpus PATH points at a copy of it") from None
        try:
            return open_cached(joined.ids, joined.ids_path, joined.vocab, " + ".join(inputs),
                               joined.digest, log)
        except IdsChanged:  # damaged in place: encoded again from the texts, then checked
            continue
    raise CharRNNError(f"the corpus cache of {' + '.join(inputs)} keeps changing; try again")


def _not_the_text(source: str, name: str) -> CharRNNError:
    # The digest found is not shown: the file may be one the user never chose to expose.
    return CharRNNError(f"{source} is not the text {name} was trained on (its content "
                        "does not match the recorded digest); --corpus PATH points at a "
                        "copy of it")


def for_checkpoint(meta: dict, path: str | Path, corpus: list[str] | str | None = None,
                   log=None) -> Index:
    """The index of the text a checkpoint was trained on: its recorded source or inputs
    (a file, or several files and folders), or ``corpus`` (a copy: one path, or as many
    as training was given), which must match the recorded digest.

    The paths a checkpoint records are hints: without a recorded digest they are not
    read at all, and text that does not match it is never cached or indexed."""
    info = meta.get("corpus") or {}
    digest = info.get("digest") if isinstance(info.get("digest"), str) else None
    given = [corpus] if isinstance(corpus, str) else list(corpus or [])
    for p in given:
        if p != BUILTIN_CORPUS and not Path(p).exists():
            raise CharRNNError(f"no such file or folder: {p} (--corpus)")
    sources = given or (source_of(info) if info.get("source") or info.get("inputs") else None)
    if not sources:
        raise CharRNNError(f"{path} does not record its training text; --corpus PATH names it")
    if not given and not digest:
        raise CharRNNError(f"{path} does not record its training text's digest, so the path "
                           "it names cannot be trusted; --corpus PATH names the text")
    if isinstance(sources, list) and (len(sources) > 1 or Path(sources[0]).is_dir()):
        return open_joined(sources, separator_of(info), digest, str(path), log)
    return open_source(sources[0] if isinstance(sources, list) else sources, digest,
                       str(path), log)


def stderr_log(message: str) -> None:
    print(f"charrnn: {shown(message)}", file=sys.stderr, flush=True)
