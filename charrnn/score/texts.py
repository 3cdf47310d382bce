"""Which text eval scores: a file's known characters, or the training corpus's held-out
split as training validated it. One answer for eval, eval --adapt, neurons and the pages.
"""

from __future__ import annotations

import sys
from collections import Counter
from dataclasses import dataclass

import numpy as np

from charrnn.config import TrainConfig
from charrnn.data import cache, cachedir
from charrnn.data.batches import val_windows
from charrnn.data.corpus import held_out_many, remap_ids, split_ids
from charrnn.data.text import BUILTIN_CORPUS, read_text, text_digest
from charrnn.errors import CharRNNError
from charrnn.runs import checkpoint as ckpt
from charrnn.safetext import shown


@dataclass
class EvalText:
    """The ids to score and what they are."""

    ids: np.ndarray  # every known character, in the checkpoint's ids
    unknown: Counter[str]  # characters the model never saw, skipped
    label: str  # what the text is: a path, or "<corpus>, held-out split"
    windows: list[np.ndarray]  # what a score covers: all of ``ids``, or for the held-out
    # split the fixed sample training validates on (``val_windows``)

    @property
    def described(self) -> str:
        """The label, saying when only a sample of the text is scored."""
        scored = sum(len(w) for w in self.windows)
        if scored < len(self.ids):
            return (f"{self.label}, scored on a fixed sample of {scored:,} as in training "
                    "validation")
        return self.label


def eval_text(c: ckpt.Checkpoint, file: str | None) -> EvalText:
    """FILE's known characters, or (None) the held-out split of the checkpoint's corpus,
    scored in the windows training validation used, so a huge corpus stays cheap and the
    loss matches the checkpoint's validation loss.

    The held-out split comes from the corpus's id cache (a memory map), so a huge
    corpus is never read into memory."""
    ids, unknown, label = _ids(c, file)
    windows = [ids]
    if file is None:
        windows = val_windows(ids, TrainConfig.from_dict(c.meta["train"]).val_max_chars)
    return EvalText(ids, unknown, label, windows)


def _ids(c: ckpt.Checkpoint, file: str | None) -> tuple[np.ndarray, Counter[str], str]:
    """(ids, Counter of skipped unknown characters, label) of ``eval_text``."""
    vocab = c.vocab
    if file is None and "inputs" in c.meta.get("corpus", {}):  # several files: every tail
        ids, unknown, label = held_out_many(
            c.meta["corpus"], vocab,
            TrainConfig.from_dict(c.meta["train"]).val_fraction or 0.1)
    elif file is None:
        corpus = c.meta.get("corpus", {})
        source = corpus.get("source")
        if not source:
            raise CharRNNError(f"{c.path} does not record its corpus; give a file to score")
        if source != BUILTIN_CORPUS and not corpus.get("digest"):  # a path is only a hint
            raise CharRNNError(f"{c.path} does not record its corpus's digest, so the path "
                               "it names cannot be trusted; give a file to score")
        cached = None
        if source != BUILTIN_CORPUS:
            try:  # a recorded path is a hint: other content is read, never cached
                cached = cache.load(source, expect=corpus.get("digest") or None)
            except cachedir.NotTheText:
                cached = None
            if cached is not None and not set(cached.vocab.chars) <= set(vocab.chars):
                cached = None  # new characters: the slow path below skips and counts them
        if cached is not None:
            digest, ids, unknown = cached.digest, cached.ids, Counter[str]()
        else:
            text = read_text(source)
            digest = text_digest(text)
            ids, unknown = vocab.encode_known(text)
        if digest != corpus.get("digest"):
            print(f"warning: {shown(source)} changed since training; scoring its current "
                  "tail", file=sys.stderr)
        _, ids = split_ids(ids, TrainConfig.from_dict(c.meta["train"]).val_fraction or 0.1)
        if cached is not None and cached.vocab != vocab:  # the checkpoint's ids
            ids = remap_ids(ids, cached.vocab, vocab)
        label = f"{source}, held-out split"
    else:
        ids, unknown = vocab.encode_known(read_text(file))
        label = file
    if len(ids) < 2:
        raise CharRNNError("nothing to score: fewer than 2 known characters")
    return ids, unknown, label
