"""Dynamic evaluation (Krause et al. 2018): score a text while the model keeps learning
from the part it has already scored.

The text is cut into parallel streams as plain eval cuts it (``data.EvalStreams``: a
later stream first reads ``burn_in`` characters without scoring them), and all streams
advance together by ``segment`` characters, the hidden state carried. Each segment is
scored first; only then does its loss drive one gradient step, shared by all streams
(the "RMS" variant of the paper, with the mean square of the gradients gathered on the
fly rather than on training data, which eval may not have). One stream (the paper's
setting) adapts best; more streams are faster, since the per-step cost is reading the
weights, not the batch (figures in docs/benchmarks.md).

    ms    <- beta * ms + (1 - beta) * g^2                  (per parameter, bias-corrected)
    theta <- theta - lr * g / (sqrt(ms) + eps) + decay * (theta0 - theta)

The decay pulls the weights back towards the trained ones (theta0), so what the model
picks up about one passage fades when the text moves on. A segment is never scored by
weights that have seen it (burn-in characters are not learned from: another stream
scores them later). The static figure is plain eval's over the same streams, so the two
are directly comparable.
"""

from __future__ import annotations

import copy
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass

import numpy as np
import torch
import torch.nn.functional as F

from charrnn.config import AdaptConfig
from charrnn.data.batches import EvalStreams
from charrnn.model.network import CharRNN, detach_state
from charrnn.score.loss import score_ids
from charrnn.score.measures import Score


@dataclass
class AdaptedScore(Score):
    """The adapted loss, with plain eval's over the same streams in ``static``."""

    static: Score | None = None
    config: AdaptConfig | None = None
    seconds: float = 0.0  # both passes, static and adapted

    def as_dict(self) -> dict:
        """Static figures at the top (as plain eval prints them), adapted ones beside."""
        static = self.static.as_dict() if self.static else {}
        adapted = {k: v for k, v in super().as_dict().items() if not k.startswith("unknown")}
        return {**static, "adapted": adapted,
                "adapt": asdict(self.config) if self.config else {},
                "adapt_seconds": round(self.seconds, 3)}


def _tensors(es: EvalStreams, device: torch.device) -> tuple[torch.Tensor, ...]:
    return tuple(torch.from_numpy(a).to(device) for a in (es.x, es.y, es.mask))


def _nll(logits: torch.Tensor, y: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """(S, T, V) logits -> (S, T) float64 loss of the masked-in targets."""
    nll = F.cross_entropy(logits.float().transpose(1, 2), y, reduction="none")
    return nll.double() * mask


class Adapter:
    """A private copy of the model that learns from each segment after scoring it."""

    def __init__(self, model: CharRNN, config: AdaptConfig) -> None:
        self.config = config
        self.model = copy.deepcopy(model)
        # Training mode (cuDNN has no backward in eval mode) without dropout.
        self.model.rnn.dropout, self.model.drop.p = 0.0, 0.0
        self.model.train()
        self.params: list[torch.Tensor] = [p for p in self.model.parameters() if p.requires_grad]
        self.theta0 = [p.detach().clone() for p in self.params]
        self.ms = [torch.zeros_like(p) for p in self.params]
        self.updates = 0

    def score_and_learn(self, es: EvalStreams,
                        tick: Callable[[], object] | None = None) -> np.ndarray:
        """Loss of every target of ``es`` as ``static_nll`` lays it out; all streams step
        through their next ``segment`` columns together, are scored, then drive one
        update. Burn-in columns (mask 0) are read, never scored nor learned from: another
        stream scores those characters later."""
        cfg = self.config
        x, y, mask = _tensors(es, self.params[0].device)
        out, state = [], None
        for c in range(0, x.shape[1], cfg.segment):
            if tick is not None:
                tick()
            cols = slice(c, c + cfg.segment)
            logits, state = self.model(x[:, cols], state)
            nll = _nll(logits, y[:, cols], mask[:, cols])
            out.append(nll.detach())  # scored: from here on it may teach
            state = detach_state(state)
            counted = int(es.mask[:, cols].sum())
            if cfg.lr > 0 and counted:
                self._step(nll.sum().float() / counted)
        return torch.cat(out, 1).cpu().numpy()

    def _step(self, loss: torch.Tensor) -> None:
        cfg = self.config
        grads = torch.autograd.grad(loss, self.params)
        self.updates += 1
        torch._foreach_mul_(self.ms, cfg.beta)
        torch._foreach_addcmul_(self.ms, grads, grads, value=1 - cfg.beta)
        correction = 1 - cfg.beta ** self.updates  # the running mean starts at zero
        with torch.no_grad():
            denom = torch._foreach_div(self.ms, correction)
            torch._foreach_sqrt_(denom)
            torch._foreach_add_(denom, cfg.eps)
            torch._foreach_addcdiv_(self.params, grads, denom, value=-cfg.lr)
            if cfg.decay:
                torch._foreach_lerp_(self.params, self.theta0, cfg.decay)


def adapted_nll(model: CharRNN, pieces: list[np.ndarray], config: AdaptConfig,
                tick: Callable[[], object] | None = None) -> np.ndarray:
    """Per-character adapted loss over ``pieces`` (flat, in stream order): separate
    texts, say the spread windows of a held-out split, scored in order, each from a
    fresh state, the adapted weights carried on from one to the next."""
    adapter = Adapter(model, config)
    out = []
    for ids in pieces:
        es = EvalStreams.build(ids, config.streams, config.burn_in)
        out.append(adapter.score_and_learn(es, tick)[es.mask])
    return np.concatenate(out)


def score_adaptive(model: CharRNN, pieces: list[np.ndarray],
                   config: AdaptConfig | None = None,
                   tick: Callable[[], object] | None = None) -> AdaptedScore:
    """Dynamically evaluated loss of ``pieces``, with plain eval's over the same streams;
    ``tick`` is called between segments (the thread governor's re-check)."""
    config = config or AdaptConfig()
    t0 = time.perf_counter()
    adapted = adapted_nll(model, pieces, config, tick)
    static = [score_ids(model, ids, config.streams, config.burn_in, tick=tick)
              for ids in pieces]
    return AdaptedScore(float(adapted.sum()), len(adapted),
                        static=Score(sum(s.nats for s in static), sum(s.chars for s in static)),
                        config=config, seconds=time.perf_counter() - t0)
