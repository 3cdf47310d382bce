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
    was_training = model.training
    model.eval()
    device = model.head.weight.device
    es = EvalStreams.build(ids, streams, burn_in)
    state, nats = None, torch.zeros((), dtype=torch.float64, device=device)
    with torch.no_grad():
        for c in range(0, es.x.shape[1], EVAL_CHUNK):
            if until is not None and time.perf_counter() > until:
                model.train(was_training)
                raise OutOfTime
            if tick is not None:
                tick()
            cols = slice(c, c + EVAL_CHUNK)
            x = torch.from_numpy(es.x[:, cols]).to(device)
            y = torch.from_numpy(es.y[:, cols]).to(device)
            m = torch.from_numpy(es.mask[:, cols]).to(device)
            logits, state = model(x, state)
            nll = F.cross_entropy(logits.float().flatten(0, 1), y.flatten(), reduction="none")
            nats += (nll * m.flatten()).sum(dtype=torch.float64)
    model.train(was_training)
    return Score(float(nats), int(es.mask.sum()))
