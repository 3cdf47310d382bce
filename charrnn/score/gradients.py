"""Gradient flow through time: how strongly the loss at position t depends on the hidden
state at t-k, per layer (and for an LSTM through its cell state), for k = 0..K.

For each window of held-out text the model first reads ``burn_in`` characters without
gradients (so the state is a real carried state, not zeros), then K+1 characters with
autograd, and the loss of the last character's prediction is differentiated with
respect to the state after each of those K+1 steps: ``norms[k]`` is the mean, over the
windows, of the L2 norm of dL_t / dh_{t-k} (one backward pass per batch of windows).

The fused kernels (``nn.LSTM``/``GRU``/``RNN``) hide the states between time steps, so
the cells are written out here with the same equations and weights, one step at a time
(``unroll``; tests check it against the fused model and its autograd). The derivative is
the total one: h_{t-k} of a lower layer reaches the loss both through its own recurrence
and through the layers above at step t-k. At k = 0 the top layer's is W_head^T (p - y).
This is the gradient truncated BPTT would carry back if its window were longer than k;
in training it stops at the window edge (``--seq-len``).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F

from charrnn.errors import CharRNNError
from charrnn.model.network import CharRNN


@dataclass
class GradientFlow:
    """Mean gradient norms by distance: ``norms[k, s]`` for series ``names[s]``."""

    names: list[str]  # "h1", "h2", ... then (LSTM) "c1", "c2", ...; layers count from 1
    norms: np.ndarray  # (K+1, S) float64
    windows: int  # windows averaged over


def _layer_weights(model: CharRNN, i: int) -> tuple[torch.Tensor, ...]:
    r = model.rnn
    return (getattr(r, f"weight_ih_l{i}"), getattr(r, f"weight_hh_l{i}"),
            getattr(r, f"bias_ih_l{i}"), getattr(r, f"bias_hh_l{i}"))


def cell_step(cell: str, weights: tuple[torch.Tensor, ...], x: torch.Tensor,
              h: torch.Tensor, c: torch.Tensor | None
              ) -> tuple[torch.Tensor, torch.Tensor | None]:
    """One step of one layer, as torch's fused kernels compute it: x (B, in), h (B, H)."""
    w_ih, w_hh, b_ih, b_hh = weights
    gi, gh = F.linear(x, w_ih, b_ih), F.linear(h, w_hh, b_hh)
    if cell == "lstm":
        i, f, g, o = (gi + gh).chunk(4, dim=1)  # torch's gate order
        assert c is not None
        c = torch.sigmoid(f) * c + torch.sigmoid(i) * torch.tanh(g)
        return torch.sigmoid(o) * torch.tanh(c), c
    if cell == "gru":
        ir, iz, inn = gi.chunk(3, dim=1)
        hr, hz, hn = gh.chunk(3, dim=1)
        r, z = torch.sigmoid(ir + hr), torch.sigmoid(iz + hz)
        n = torch.tanh(inn + r * hn)  # b_hn stays inside the reset gate's product
        return (1 - z) * n + z * h, None
    return torch.tanh(gi + gh), None


def unroll(model: CharRNN, ids: torch.Tensor, state: tuple[torch.Tensor, ...] | torch.Tensor
           | None = None) -> tuple[torch.Tensor, list[list[torch.Tensor]]]:
    """Read ids (B, T) one step at a time from ``state`` (the fused model's layout, or
    None for zeros): the logits after the last step (B, V) and, per step, the states
    [h_1..h_L, (c_1..c_L)] each (B, H). Eval mode only (no dropout)."""
    cfg = model.config
    n, (b, t) = cfg.num_layers, ids.shape
    if state is None:
        zero = ids.new_zeros((n, b, cfg.hidden_size), dtype=model.head.weight.dtype)
        state = (zero, zero.clone()) if cfg.cell == "lstm" else zero
    hs = list(state[0] if isinstance(state, tuple) else state)
    cs: list[torch.Tensor | None] = (list(state[1]) if isinstance(state, tuple)
                                     else [None] * n)
    weights = [_layer_weights(model, i) for i in range(n)]
    x_all = model.embed(ids)  # (B, T, E)
    steps: list[list[torch.Tensor]] = []
    for s in range(t):
        x = x_all[:, s]
        for i in range(n):
            hs[i], cs[i] = cell_step(cfg.cell, weights[i], x, hs[i], cs[i])
            x = hs[i]
        steps.append([*hs, *(c for c in cs if c is not None)])
    return model.head(x), steps


def series_names(cell: str, layers: int) -> list[str]:
    """The state series ``unroll`` returns per step: h per layer, then c for an LSTM."""
    kinds = ("h", "c") if cell == "lstm" else ("h",)
    return [f"{k}{i + 1}" for k in kinds for i in range(layers)]


def window_starts(length: int, window: int, count: int) -> np.ndarray:
    """``count`` starts of windows of ``window`` ids spread evenly over ``length`` ids
    (fewer, never overlapping more than needed, when the text is short)."""
    room = length - window
    if room < 0:
        raise CharRNNError(f"text too short: {length:,} characters, a window needs "
                           f"{window:,}; give a longer text or lower --max-distance")
    count = max(1, min(count, room + 1))
    return np.linspace(0, room, count).round().astype(np.int64)


def gradient_flow(model: CharRNN, ids: np.ndarray, max_distance: int = 200,
                  windows: int = 64, burn_in: int = 128, batch: int = 32) -> GradientFlow:
    """Mean ||dL_t / d state_{t-k}|| for k = 0..max_distance over ``windows`` windows
    of ``ids`` (module docstring)."""
    was_training = model.training
    model.eval()
    device = model.head.weight.device
    k1 = max_distance + 1
    span = burn_in + k1 + 1  # inputs, then the scored target
    starts = window_starts(len(ids), span, windows)
    names = series_names(model.config.cell, model.config.num_layers)
    sums = torch.zeros((k1, len(names)), dtype=torch.float64, device=device)
    for b in range(0, len(starts), batch):
        rows = np.stack([np.asarray(ids[s:s + span], dtype=np.int64)
                         for s in starts[b:b + batch]])
        x = torch.from_numpy(rows).to(device)
        state = None
        if burn_in:
            with torch.no_grad():
                _, state = model(x[:, :burn_in])
        logits, steps = unroll(model, x[:, burn_in:burn_in + k1], state)
        # summed over windows: each window's gradient reaches only its own states
        loss = F.cross_entropy(logits, x[:, -1], reduction="sum")
        flat = [s for step in steps for s in step]
        grads = torch.autograd.grad(loss, flat, allow_unused=True)
        for j, g in enumerate(grads):
            if g is not None:
                step, series = divmod(j, len(names))
                sums[k1 - 1 - step, series] += g.double().norm(dim=1).sum()
    model.train(was_training)
    return GradientFlow(names, (sums / len(starts)).cpu().numpy(), len(starts))
