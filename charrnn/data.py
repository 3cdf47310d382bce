"""Ids -> batches: the train/validation split and truncated-BPTT chunking (numpy only).

The training ids are cut into B contiguous streams laid side by side; step c of an epoch
reads columns [c*T, (c+1)*T) of every stream, so chunk c+1 of stream b continues exactly
where chunk c ended and the recurrent state can be carried across::

    ids:     a b c d e f g h i j k l m n o p q r s t u v w x   (B=3, T=4, offset 0)
    stream0: a b c d | e f g h       x: inputs, y: the same streams shifted by one
    stream1: i j k l | m n o p
    stream2: q r s t | u v w (x)     chunk 0 = first column block, chunk 1 = second

Ids stay in their compact dtype (uint8/uint16/uint32); only the chunk being trained on
is widened to int64.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from charrnn.errors import CharRNNError
from charrnn.text import BUILTIN_CORPUS, Vocab, read_text, text_digest


def split_ids(ids: np.ndarray, val_fraction: float) -> tuple[np.ndarray, np.ndarray]:
    """Hold out the tail of the text for validation (views, no copy)."""
    n_val = int(len(ids) * val_fraction)
    if val_fraction > 0 and n_val < 2:
        raise CharRNNError(
            f"text too short to hold out {val_fraction:.0%} for validation "
            f"({len(ids)} characters); use a longer text or --val-fraction 0"
        )
    return ids[: len(ids) - n_val], ids[len(ids) - n_val :]


@dataclass
class Batches:
    """B contiguous streams over ``ids``, read T steps at a time, starting at ``offset``."""

    ids: np.ndarray
    batch_size: int
    seq_len: int
    offset: int = 0  # shifts chunk boundaries between epochs

    def __post_init__(self) -> None:
        usable = len(self.ids) - 1 - self.offset
        self.stream_len = usable // self.batch_size
        if self.stream_len < 1:
            raise CharRNNError(
                f"training text too short: {len(self.ids)} characters cannot fill "
                f"{self.batch_size} streams; use a longer text or a smaller --batch-size"
            )
        end = self.offset + self.batch_size * self.stream_len
        self._x = self.ids[self.offset : end].reshape(self.batch_size, self.stream_len)
        self._y = self.ids[self.offset + 1 : end + 1].reshape(self.batch_size, self.stream_len)

    def __len__(self) -> int:
        return -(-self.stream_len // self.seq_len)

    def chunk(self, i: int, rows: slice = slice(None)) -> tuple[np.ndarray, np.ndarray]:
        """Inputs and targets (B, T) of chunk i as int64; the last chunk may be shorter.

        ``rows`` picks some of the streams (a data-parallel rank's share).
        """
        cols = slice(i * self.seq_len, (i + 1) * self.seq_len)
        return self._x[rows, cols].astype(np.int64), self._y[rows, cols].astype(np.int64)


def min_train_chars(batch_size: int, seq_len: int) -> int:
    """The shortest training text that fills one full chunk of every stream."""
    return batch_size * seq_len + 1


def val_windows(ids: np.ndarray, max_chars: int, pieces: int = 8) -> list[np.ndarray]:
    """A fixed sample of at most ``max_chars`` held-out ids: ``pieces`` evenly spread views.

    Validation then costs the same on a 10 MB and a 10 GB corpus, and as the windows never
    move, successive validation losses stay comparable. 0 means all of ``ids``.
    """
    if max_chars == 0 or len(ids) <= max_chars:
        return [ids]
    pieces = max(1, min(pieces, max_chars // 64))
    width = max(2, max_chars // pieces)
    starts = np.linspace(0, len(ids) - width, pieces).astype(np.int64)
    return [ids[s : s + width] for s in starts]


@dataclass
class EvalStreams:
    """Every target of ``ids`` scored exactly once, in S parallel streams with burn-in.

    Stream s > 0 starts ``burn_in`` characters before the first target it scores, so it
    scores with context already built up instead of from a cold zero state; stream 0
    starts at the true beginning of the text. Padding (mask 0) fills the ragged end.
    """

    x: np.ndarray  # (S, C) int64 inputs
    y: np.ndarray  # (S, C) int64 targets
    mask: np.ndarray  # (S, C) bool: which targets count

    @classmethod
    def build(cls, ids: np.ndarray, streams: int = 32, burn_in: int = 128) -> EvalStreams:
        n = len(ids) - 1  # number of targets
        if n < 1:
            raise CharRNNError("text too short to evaluate: need at least 2 characters")
        streams = max(1, min(streams, n // max(4 * burn_in, 64)))
        if streams == 1:
            burn_in = 0
        length = -(-(n - burn_in) // streams)  # targets scored by each stream (ceil)
        streams = -(-(n - burn_in) // length)  # rounding can leave trailing streams empty
        cols = burn_in + length
        x = np.zeros((streams, cols), np.int64)
        y = np.zeros((streams, cols), np.int64)
        mask = np.zeros((streams, cols), bool)
        for s in range(streams):
            start = s * length
            seg = ids[start : min(start + cols + 1, n + 1)].astype(np.int64)
            k = len(seg) - 1
            x[s, :k], y[s, :k] = seg[:-1], seg[1:]
            mask[s, (burn_in if s else 0) : k] = True
        return cls(x, y, mask)


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
    inputs: list[str] | None = None  # several files / folders (charrnn.corpora)
    separator: str = "\n"
    files: int = 1
    skipped: list[tuple[str, str]] = field(default_factory=list)
    stamps: list[list] = field(default_factory=list)  # (path, size, mtime) of every file

    @classmethod
    def load(cls, source: str | list[str], val_fraction: float, vocab: Vocab | None = None,
             separator: str = "\n") -> Corpus:
        """Read and encode a text; with ``vocab`` (resuming), its characters must fit it.

        A file is encoded once into a memory-mapped id cache (``charrnn.cache``), so
        ``train`` and ``val`` are views of a file on disk, however big the text. Several
        inputs, or a folder, are joined (``charrnn.corpora``) and every file gives its
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
            from charrnn import cache

            encoded = cache.load(source)
            ids, digest = encoded.ids, encoded.digest
            if vocab is not None and vocab != encoded.vocab:
                ids = remap_ids(ids, encoded.vocab, vocab)
            vocab = vocab or encoded.vocab
            st = Path(source).stat()
            stamps = [[source, st.st_size, st.st_mtime_ns]]
        if len(ids) < 2:
            raise CharRNNError(f"{source} is too short to train on ({len(ids)} character)")
        train, val = split_ids(ids, val_fraction)
        return cls(source, digest, vocab, train, val, stamps=stamps)

    @classmethod
    def _load_many(cls, inputs: list[str], val_fraction: float, vocab: Vocab | None,
                   separator: str) -> Corpus:
        from charrnn import corpora

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
    characters ``vocab`` lacks (the files changed since) are skipped and counted."""
    from charrnn import corpora

    source = source_of(corpus_meta)
    joined = corpora.load([source] if isinstance(source, str) else source,
                          separator_of(corpus_meta))
    if joined.digest != corpus_meta.get("digest"):
        import sys

        print(f"warning: {corpus_meta['source']} changed since training; scoring the held-out "
              "parts of its current files", file=sys.stderr)
    _, val = corpora.split(joined, val_fraction)
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
