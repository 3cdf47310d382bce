"""A training text ready to batch: one file, several files or the built-in text, encoded
(through the id cache) and split into training and held-out ids.

``Corpus.load`` is the one way in for training; ``held_out_many`` gives eval the held-out
parts of a multi-file corpus as training split them.
"""

from __future__ import annotations

import sys
import tempfile
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from charrnn.data import cache, cachedir, corpora
from charrnn.data.text import BUILTIN_CORPUS, Vocab, read_text, text_digest
from charrnn.errors import CharRNNError
from charrnn.safetext import shown


def split_ids(ids: np.ndarray, val_fraction: float) -> tuple[np.ndarray, np.ndarray]:
    """Hold out the tail of the text for validation (views, no copy)."""
    n_val = int(len(ids) * val_fraction)
    if val_fraction > 0 and n_val < 2:
        raise CharRNNError(
            f"text too short to hold out {val_fraction:.0%} for validation "
            f"({len(ids)} characters); use a longer text or --val-fraction 0"
        )
    return ids[: len(ids) - n_val], ids[len(ids) - n_val :]


def remap_ids(ids: np.ndarray, own: Vocab, target: Vocab) -> np.ndarray:
    """Ids in ``own`` re-expressed in ``target`` (a resumed model's vocabulary), in memory."""
    missing = [c for c in own.chars if c not in target]
    if missing:
        raise CharRNNError(f"characters not in the model's vocabulary: {''.join(missing)!r}")
    index = {c: i for i, c in enumerate(target.chars)}
    lut = np.array([index[c] for c in own.chars], dtype=target.dtype)
    return lut[ids]


@dataclass
class Corpus:
    """A training text, ready to batch: its vocabulary, compact ids and the split."""

    source: str  # a path, text.BUILTIN_CORPUS, or (several inputs) their names joined
    digest: str
    vocab: Vocab
    train: np.ndarray
    val: np.ndarray
    inputs: list[str] | None = None  # several files / folders (charrnn.data.corpora)
    separator: str = "\n"
    files: int = 1
    skipped: list[tuple[str, str]] = field(default_factory=list)
    stamps: list[list] = field(default_factory=list)  # corpora.stamps of every file

    @classmethod
    def load(cls, source: str | list[str], val_fraction: float, vocab: Vocab | None = None,
             separator: str = "\n") -> Corpus:
        """Read and encode a text; with ``vocab`` (resuming), its characters must fit it.

        A file is encoded once into a memory-mapped id cache (``charrnn.data.cache``), so
        ``train`` and ``val`` are views of a file on disk, however big the text. Several
        inputs, or a folder, are joined (``charrnn.data.corpora``) and every file gives its
        tail to validation; one file keeps its tail.
        """
        if isinstance(source, list):
            if len(source) != 1 or Path(source[0]).is_dir():
                return cls._load_many(source, val_fraction, vocab, separator)
            source = source[0]
        stamps: list[list] = []
        if source == BUILTIN_CORPUS:  # a str in memory already: nothing to cache
            text = read_text(source)
            vocab = vocab or Vocab.from_text(text)
            ids, digest = vocab.encode(text), text_digest(text)
        else:
            encoded = cache.load(source)
            ids, digest = encoded.ids, encoded.digest
            if vocab is not None and vocab != encoded.vocab:
                ids = remap_ids(ids, encoded.vocab, vocab)
            vocab = vocab or encoded.vocab
            stamps = corpora.stamps([Path(source)])
        if len(ids) < 2:
            raise CharRNNError(f"{source} is too short to train on ({len(ids)} character)")
        train, val = split_ids(ids, val_fraction)
        return cls(source, digest, vocab, train, val, stamps=stamps)

    @classmethod
    def _load_many(cls, inputs: list[str], val_fraction: float, vocab: Vocab | None,
                   separator: str) -> Corpus:
        joined = corpora.load(inputs, separator)
        train, val = corpora.split(joined, val_fraction)
        if vocab is not None and vocab != joined.vocab:
            train = remap_ids(train, joined.vocab, vocab)
            val = remap_ids(val, joined.vocab, vocab)
        return cls(" + ".join(inputs), joined.digest, vocab or joined.vocab, train, val,
                   list(inputs), separator, len(joined.files), joined.skipped, joined.stamps)

    def describe(self) -> dict:
        out = {"source": self.source, "digest": self.digest,
               "train_chars": len(self.train), "val_chars": len(self.val)}
        if self.inputs is not None:
            out.update(inputs=self.inputs, separator=self.separator, files=self.files,
                       skipped=len(self.skipped), split="last fraction of every file")
        return out


def source_of(corpus_meta: dict) -> str | list[str]:
    """What to load again for a checkpoint's corpus section: its inputs, or its source."""
    inputs = corpus_meta.get("inputs")
    if isinstance(inputs, list) and inputs and all(isinstance(i, str) for i in inputs):
        return inputs
    return corpus_meta["source"]


def separator_of(corpus_meta: dict) -> str:
    """The separator a multi-input corpus was joined with (a damaged value: the default)."""
    separator = corpus_meta.get("separator", "\n")
    return separator if isinstance(separator, str) else "\n"


def held_out_many(corpus_meta: dict, vocab: Vocab, val_fraction: float
                  ) -> tuple[np.ndarray, Counter[str], str]:
    """The held-out ids of a multi-input corpus, as training split it, in ``vocab``'s ids;
    characters ``vocab`` lacks (the files changed since) are skipped and counted.

    The inputs a checkpoint records are hints: files whose joined content is not the
    recorded one are scored from a temporary folder, never kept in the cache."""
    source = source_of(corpus_meta)
    inputs, separator = [source] if isinstance(source, str) else source, \
        separator_of(corpus_meta)
    digest = corpus_meta.get("digest")
    if not digest:  # the paths are only hints: without the digest they are not read
        raise CharRNNError("the checkpoint does not record its corpus's digest, so the "
                           "paths it names cannot be trusted; give a file to score")
    try:
        joined = corpora.load(inputs, separator, expect=digest or None)
        _, val = corpora.split(joined, val_fraction)
    except cachedir.NotTheText:
        print(f"warning: {shown(corpus_meta['source'])} changed since training; scoring the "
              "held-out parts of its current files (not cached)", file=sys.stderr)
        with tempfile.TemporaryDirectory(prefix="charrnn-") as tmp:
            joined = corpora.load(inputs, separator, root=Path(tmp), progress=False)
            _, val = corpora.split(joined, val_fraction, root=Path(tmp))
            val = np.array(val)  # in memory before the folder goes
    index = {c: i for i, c in enumerate(vocab.chars)}
    lut = np.array([index.get(c, -1) for c in joined.vocab.chars], dtype=np.int64)
    mapped = lut[val]
    unknown: Counter[str] = Counter()
    if (mapped < 0).any():
        codes, counts = np.unique(val[mapped < 0], return_counts=True)
        unknown = Counter({joined.vocab.chars[c]: int(n) for c, n in zip(codes, counts,
                                                                          strict=True)})
        mapped = mapped[mapped >= 0]
    return mapped.astype(vocab.dtype), unknown, f"{corpus_meta['source']}, held-out split"
