"""Scoring text: loss in nats, bits per character and perplexity, with fused kernels."""

from __future__ import annotations

import math
from collections import Counter
from dataclasses import dataclass, field

import numpy as np
import torch
import torch.nn.functional as F

from charrnn.data import EvalStreams
from charrnn.model import CharRNN

EVAL_CHUNK = 256  # columns per forward pass; the state is carried between them


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
        return self.loss / math.log(2)

    @property
    def perplexity(self) -> float:
        return math.exp(min(self.loss, 700.0))

    def as_dict(self) -> dict:
        return {"loss": self.loss, "bits_per_char": self.bits_per_char,
                "perplexity": self.perplexity, "chars": self.chars,
                "unknown_chars": sum(self.unknown.values()),
                "unknown_distinct": "".join(sorted(self.unknown))}


@torch.no_grad()
def score_ids(model: CharRNN, ids: np.ndarray, streams: int = 32, burn_in: int = 128) -> Score:
    """Negative log-likelihood of every next character of ``ids`` (each scored once)."""
    was_training = model.training
    model.eval()
    device = model.head.weight.device
    es = EvalStreams.build(ids, streams, burn_in)
    state, nats = None, torch.zeros((), dtype=torch.float64, device=device)
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
