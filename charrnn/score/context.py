"""How far back the model looks: held-out loss when the state is reset k characters
before each scored character, and the loss under nanoGPT's evaluation protocol.

Context use. For a fixed sample of positions j, the model starts from a zero state,
reads exactly the k characters ids[j-k+1..j] and predicts ids[j+1]; k = 1, 2, 4, ...
The last point is the full carried state: every position scored as ``charrnn eval``
scores it (the state carried through the text, ``loss.position_nll``), with at least
``2 * max(k)`` characters read before it. The same positions are used for every k, so
the curve's steps are differences on one sample, not noise between samples. Where the
curve meets the full state's loss is the context the model actually uses: truncated
BPTT trains on windows of ``--seq-len``, yet the carried state lets it use more.

nanoGPT's protocol (``windowed_score``): the text cut into windows of N characters, each
read from a fresh zero state, every position's loss averaged, so the first characters
of a window are predicted from little context. nanoGPT's shakespeare_char figure
(1.4697, block size 256) is measured this way; ``eval --window 256`` measures charrnn
the same way.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F

from charrnn.errors import CharRNNError
from charrnn.model.network import CharRNN
from charrnn.score.gradients import window_starts
from charrnn.score.loss import position_nll
from charrnn.score.measures import USED_WITHIN, Score


@dataclass
class ContextUse:
    """Mean loss (nats/char) over the same positions with k characters of context."""

    contexts: list[int]  # k = 1, 2, 4, ...
    losses: list[float]  # by k
    errors: list[float]  # by k: standard error of the mean of (loss with k - full)
    full: float  # with the full carried state
    full_context: int  # characters read before the earliest position, at least
    positions: int

    def used(self, tolerance: float = USED_WITHIN) -> int | None:
        """The context the model uses: the smallest k from which the loss stays within
        ``tolerance`` nats/char of the full state's (None: not within the k measured)."""
        for i, k in enumerate(self.contexts):
            if all(loss - self.full <= tolerance for loss in self.losses[i:]):
                return k
        return None


def contexts_up_to(limit: int) -> list[int]:
    """1, 2, 4, ... up to ``limit``."""
    return [1 << i for i in range(max(limit, 1).bit_length())]


def _last_logits(model: CharRNN, x: torch.Tensor) -> torch.Tensor:
    """The logits after reading x (B, T) from a zero state: (B, V)."""
    out, _ = model.rnn(model.embed(x))
    return model.head(out[:, -1]).float()


def context_use(model: CharRNN, ids: np.ndarray, max_context: int = 256,
                positions: int = 2048, batch: int = 256) -> ContextUse:
    """Loss by context length k (module docstring) over ``positions`` positions spread
    evenly over ``ids``, each with at least ``2 * max_context`` characters before it.

    Which positions are drawn matters more than it seems (a few need long context):
    with 512 positions, a model's extra loss at one k moved by 0.04 nats/char between two
    samples. So the standard error of each k's difference from the full state comes
    with it."""
    ks = contexts_up_to(max_context)
    lead = 2 * ks[-1]  # characters before the first position: its full state read them
    if len(ids) < lead + 2:
        raise CharRNNError(f"text too short to measure context up to {ks[-1]} characters: "
                           f"{len(ids):,} characters, {lead + 2:,} needed; lower "
                           "--max-context")
    # positions j: predict ids[j + 1] having read ids[..j]; j >= lead
    at = lead + window_starts(len(ids) - 1 - lead, 1, positions)
    full = position_nll(model, ids, burn_in=lead)[at]
    was_training = model.training
    model.eval()
    device = model.head.weight.device
    ids_t = torch.from_numpy(np.asarray(ids, dtype=np.int64)).to(device)
    targets = ids_t[at + 1]
    losses, errors = [], []
    with torch.no_grad():
        for k in ks:
            nll = np.empty(len(at))
            for b in range(0, len(at), batch):
                js = torch.from_numpy(at[b:b + batch]).to(device)
                x = ids_t[js[:, None] + torch.arange(1 - k, 1, device=device)]  # (B, k)
                nll[b:b + batch] = F.cross_entropy(
                    _last_logits(model, x), targets[b:b + batch], reduction="none").cpu()
            losses.append(float(nll.mean()))
            errors.append(float((nll - full).std(ddof=1) / np.sqrt(len(at)))
                          if len(at) > 1 else 0.0)
    model.train(was_training)
    return ContextUse(ks, losses, errors, float(full.mean()), lead, len(at))


def windowed_score(model: CharRNN, ids: np.ndarray, window: int, batch: int = 64) -> Score:
    """nanoGPT's protocol: consecutive windows of ``window`` inputs, each read from a zero
    state, every target's loss counted once (the last window may be shorter)."""
    was_training = model.training
    model.eval()
    device = model.head.weight.device
    ids64 = np.asarray(ids, dtype=np.int64)
    n = len(ids64) - 1  # targets
    full = n // window
    nats = torch.zeros((), dtype=torch.float64, device=device)
    pieces = [(s, window) for s in range(0, full * window, window * batch)]
    if n % window:
        pieces.append((full * window, n % window))  # the ragged end, alone
    with torch.no_grad():
        for start, width in pieces:
            count = min(batch, (full * window - start) // window) if width == window else 1
            rows = ids64[start:start + count * width + 1]
            x = torch.from_numpy(rows[:-1].reshape(count, width)).to(device)
            y = torch.from_numpy(rows[1:].reshape(count, width)).to(device)
            logits, _ = model(x)
            nats += F.cross_entropy(logits.float().flatten(0, 1), y.flatten(),
                                    reduction="sum").double()
    model.train(was_training)
    return Score(float(nats), n)
