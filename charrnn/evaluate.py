"""Scoring text: loss in nats, bits per character and perplexity; the eval command's work.

Scoring runs torch's fused kernels (imported only when scoring); the surprisal page runs
the numpy twin of the model.
"""

from __future__ import annotations

import math
import sys
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from charrnn.config import TrainConfig
from charrnn.data.batches import EvalStreams
from charrnn.data.text import BUILTIN_CORPUS
from charrnn.errors import CharRNNError
from charrnn.files import write_page
from charrnn.model.infer import NumpyRNN
from charrnn.runs import checkpoint as ckpt
from charrnn.runs import folder as runfolder

if TYPE_CHECKING:
    from charrnn.model.network import CharRNN

EVAL_CHUNK = 256  # columns per forward pass; the state is carried between them


def bits(nats: Any) -> Any:
    """Nats to bits (a number or an array): the one conversion every report uses."""
    return nats / math.log(2)


@dataclass
class Score:
    nats: float  # summed negative log-likelihood
    chars: int  # characters predicted
    unknown: Counter[str] = field(default_factory=Counter)  # skipped characters

    @property
    def loss(self) -> float:
        return self.nats / max(self.chars, 1)

    @property
    def bits_per_char(self) -> float:
        return bits(self.loss)

    @property
    def perplexity(self) -> float:
        return math.exp(min(self.loss, 700.0))

    def as_dict(self) -> dict:
        return {"loss": self.loss, "bits_per_char": self.bits_per_char,
                "perplexity": self.perplexity, "chars": self.chars,
                "unknown_chars": sum(self.unknown.values()),
                "unknown_distinct": "".join(sorted(self.unknown))}


def score_ids(model: CharRNN, ids: np.ndarray, streams: int = 32, burn_in: int = 128) -> Score:
    """Negative log-likelihood of every next character of ``ids`` (each scored once)."""
    import torch
    import torch.nn.functional as F

    was_training = model.training
    model.eval()
    device = model.head.weight.device
    es = EvalStreams.build(ids, streams, burn_in)
    state, nats = None, torch.zeros((), dtype=torch.float64, device=device)
    with torch.no_grad():
        for c in range(0, es.x.shape[1], EVAL_CHUNK):
            cols = slice(c, c + EVAL_CHUNK)
            x = torch.from_numpy(es.x[:, cols]).to(device)
            y = torch.from_numpy(es.y[:, cols]).to(device)
            m = torch.from_numpy(es.mask[:, cols]).to(device)
            logits, state = model(x, state)
            nll = F.cross_entropy(logits.float().flatten(0, 1), y.flatten(), reduction="none")
            nats += (nll * m.flatten()).sum(dtype=torch.float64)
    model.train(was_training)
    return Score(float(nats), int(es.mask.sum()))


def eval_command(file: str | None, target: str | None, device: str) -> dict[str, Any]:
    """Score a text (or the training corpus's held-out split) with a checkpoint.

    The held-out split is scored as training validates it: at most the run's
    ``val_max_chars`` characters, in the same fixed windows, so a huge corpus stays cheap
    and the loss matches the checkpoint's validation loss.
    """
    from charrnn.data.batches import val_windows
    from charrnn.model.device import pick_device
    from charrnn.model.network import load_model

    c = runfolder.open_checkpoint(target)
    ids, unknown, label = eval_ids(c, file)
    windows = [ids]
    if file is None:
        windows = val_windows(ids, TrainConfig.from_dict(c.meta["train"]).val_max_chars)
        scored = sum(len(w) for w in windows)
        if scored < len(ids):
            label += f", scored on a fixed sample of {scored:,} as in training validation"
    model = load_model(c, str(pick_device(device)))
    scores = [score_ids(model, w) for w in windows]
    score = Score(sum(s.nats for s in scores), sum(s.chars for s in scores), unknown)
    return {"checkpoint": str(c.path), "text": label, **score.as_dict()}


def eval_ids(c: ckpt.Checkpoint, file: str | None) -> tuple[np.ndarray, Counter[str], str]:
    """The ids eval scores: FILE's known characters, or the corpus's held-out split.

    The held-out split comes from the corpus's id cache (a memory map), so a huge
    corpus is never read into memory. Returns (ids, Counter of skipped unknown
    characters, a label for reports)."""
    from charrnn.data.corpus import remap_ids, split_ids
    from charrnn.data.text import read_text, text_digest

    vocab = c.vocab
    if file is None and "inputs" in c.meta.get("corpus", {}):  # several files: every tail
        from charrnn.data.corpus import held_out_many

        ids, unknown, label = held_out_many(
            c.meta["corpus"], vocab,
            TrainConfig.from_dict(c.meta["train"]).val_fraction or 0.1)
    elif file is None:
        corpus = c.meta.get("corpus", {})
        source = corpus.get("source")
        if not source:
            raise CharRNNError(f"{c.path} does not record its corpus; give a file to score")
        cached = None
        if source != BUILTIN_CORPUS:
            from charrnn.data import cache

            cached = cache.load(source)
            if not set(cached.vocab.chars) <= set(vocab.chars):
                cached = None  # new characters: the slow path below skips and counts them
        if cached is not None:
            digest, ids, unknown = cached.digest, cached.ids, Counter[str]()
        else:
            text = read_text(source)
            digest = text_digest(text)
            ids, unknown = vocab.encode_known(text)
        if digest != corpus.get("digest"):
            print(f"warning: {source} changed since training; scoring its current tail",
                  file=sys.stderr)
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


def surprisal_html(c: ckpt.Checkpoint, ids: np.ndarray, label: str, out: str | Path,
                   whole: dict[str, Any] | None = None, start: int = 0,
                   max_chars: int = 10_000) -> Path:
    """Write the surprisal page for an excerpt of ``ids``; ``whole`` is eval's report on all
    of the text, shown beside the excerpt's own figures."""
    from charrnn import html_pages
    from charrnn.trace import excerpt, surprisal

    part = excerpt(ids, start, max_chars)
    s = surprisal(NumpyRNN.from_checkpoint(c), part)
    summary = []
    if whole:
        summary = [("bits/char (whole text)", f"{whole['bits_per_char']:.3f}"),
                   ("perplexity (whole text)", f"{whole['perplexity']:.2f}"),
                   ("characters scored", f"{whole['chars']:,}")]
        if whole.get("unknown_chars"):
            summary.append(("unknown characters skipped", f"{whole['unknown_chars']:,}"))
    title = f"{label} \u2014 {c.path}"
    page = html_pages.surprisal_page(s, c.vocab.chars, title, summary, offset=start)
    return write_page(out, page)
