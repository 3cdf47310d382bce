"""Loss of a text under the torch model: every next character scored once, in parallel
streams with burn-in (``data.batches.EvalStreams``), the state carried between chunks.
Training validates with it; eval and dynamic evaluation score with it.
"""

from __future__ import annotations

import time
from collections.abc import Callable

import numpy as np
import torch
import torch.nn.functional as F

from charrnn.data.batches import EvalStreams
from charrnn.model.network import CharRNN
from charrnn.score.measures import Score

EVAL_CHUNK = 256  # columns per forward pass; the state is carried between them


class OutOfTime(Exception):
    """Scoring passed the deadline it was given (``score_ids(until=...)``)."""


def score_ids(model: CharRNN, ids: np.ndarray, streams: int = 32, burn_in: int = 128,
              until: float | None = None, tick: Callable[[], object] | None = None) -> Score:
    """Negative log-likelihood of every next character of ``ids`` (each scored once).

    ``until``: a ``time.perf_counter()`` deadline, checked between chunks (OutOfTime);
    ``tick``: called between chunks (the thread governor's re-check)."""
    es = EvalStreams.build(ids, streams, burn_in)
    nats = None
    for nll, m, _ in _chunks(model, es, until, tick):
        total = (nll * m).sum(dtype=torch.float64)
        nats = total if nats is None else nats + total
    return Score(float(nats) if nats is not None else 0.0, int(es.mask.sum()))


def position_nll(model: CharRNN, ids: np.ndarray, streams: int = 32,
                 burn_in: int = 128) -> np.ndarray:
    """The loss of every next character of ``ids`` by position, as ``score_ids`` scores
    them: ``out[j]`` is -log p(ids[j + 1] | what the stream read up to ids[j])."""
    es = EvalStreams.build(ids, streams, burn_in)
    length = es.x.shape[1] - (burn_in if len(es.x) > 1 else 0)  # targets per stream
    out = np.full(len(ids) - 1, np.nan)
    for nll, m, cols in _chunks(model, es, None, None):
        nll2, m2 = nll.view(len(es.x), -1).cpu().numpy(), m.view(len(es.x), -1).cpu().numpy()
        for s in range(len(es.x)):
            at = s * length + np.arange(cols.start, cols.start + nll2.shape[1])
            keep = m2[s]
            out[at[keep]] = nll2[s][keep]
    return out


def _chunks(model: CharRNN, es: EvalStreams, until: float | None,
            tick: Callable[[], object] | None):
    """Run the streams chunk by chunk with the state carried: per chunk the loss of each
    (stream, column) flattened, its mask, and the columns."""
    was_training = model.training
    model.eval()
    device = model.head.weight.device
    state = None
    try:
        with torch.no_grad():
            for c in range(0, es.x.shape[1], EVAL_CHUNK):
                if until is not None and time.perf_counter() > until:
                    raise OutOfTime
                if tick is not None:
                    tick()
                cols = slice(c, min(c + EVAL_CHUNK, es.x.shape[1]))
                x = torch.from_numpy(es.x[:, cols]).to(device)
                y = torch.from_numpy(es.y[:, cols]).to(device)
                m = torch.from_numpy(es.mask[:, cols]).to(device)
                logits, state = model(x, state)
                yield (F.cross_entropy(logits.float().flatten(0, 1), y.flatten(),
                                       reduction="none"), m.flatten(), cols)
    finally:
        model.train(was_training)
