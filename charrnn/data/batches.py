"""Ids -> batches: truncated-BPTT chunking for training, parallel streams for scoring.

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

from dataclasses import dataclass

import numpy as np

from charrnn.errors import CharRNNError


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
