"""The recurrent cells written out in numpy, for sampling one character at a time.

Stepping torch's fused kernels at batch 1 pays a large per-call overhead and importing
torch is slow, so generation runs here instead: a few matrix-vector products per layer
per character, the same equations and weights as ``nn.LSTM``/``GRU``/``RNN`` (gate
order i, f, g, o for the LSTM and r, z, n for the GRU, as torch stores them).

At batch 1 a step is bound by reading every weight from cache, so the work is arranged
to read each weight once and to add little on top:

- the first layer's input product is a table lookup (embedding folded into it);
- weights stay in torch's (out, in) layout and multiply from the left, ``(W @ h.T).T``:
  no copy, and for a batch of 2 to 64 OpenBLAS runs this form faster than ``h @ W.T``
  (which repacks the weights on every call; docs/sampling.md has the figures);
- the LSTM's rows are stored as i, f, o, g with the sigmoid rows halved, so one ``tanh``
  over all gates serves both nonlinearities: sigmoid(x) = (tanh(x/2) + 1) / 2. Halving
  is exact in floating point, so the logits are unchanged (the GRU's r and z likewise).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

from charrnn.config import ModelConfig

if TYPE_CHECKING:
    from charrnn.runs.checkpoint import Checkpoint

State = list[np.ndarray]
"""h for each layer, then (LSTM) c for each layer; each (B, H) float32."""


def _times(w: np.ndarray, x: np.ndarray) -> np.ndarray:
    """x @ w.T for weights w (out, in) and a batch x (B, in): (B, out), column-major."""
    return (w @ x.T).T


class NumpyRNN:
    """Inference-only twin of ``CharRNN`` over a dict of float32 weight arrays."""

    def __init__(self, config: ModelConfig, weights: dict[str, np.ndarray]) -> None:
        self.config = config
        cell, h = config.cell, config.hidden_size
        w = {k: np.asarray(v, dtype=np.float32) for k, v in weights.items()}
        # Per gate block: its rows in the stored order and whether it is a sigmoid gate.
        blocks = {"lstm": [(0, True), (1, True), (3, True), (2, False)],  # i, f, o, g
                  "gru": [(0, True), (1, True), (2, False)],  # r, z, n
                  "rnn": [(0, False)]}[cell]

        def rows(a: np.ndarray) -> np.ndarray:
            """Reorder gate blocks and halve the sigmoid ones (exact: a power of two)."""
            out = np.empty_like(a)
            for j, (src, half) in enumerate(blocks):
                np.multiply(a[src * h:(src + 1) * h], 0.5 if half else 1.0,
                            out=out[j * h:(j + 1) * h])
            return out

        # Per layer: W_ih (None for the first: a table lookup), W_hh, the bias added to the
        # input part, and (GRU only) the bias kept with the recurrent part.
        self.layers: list[tuple[np.ndarray | None, np.ndarray, np.ndarray | None,
                                np.ndarray | None]] = []
        for i in range(config.num_layers):
            w_ih, w_hh = rows(w[f"rnn.weight_ih_l{i}"]), rows(w[f"rnn.weight_hh_l{i}"])
            b_ih, b_hh = rows(w[f"rnn.bias_ih_l{i}"]), rows(w[f"rnn.bias_hh_l{i}"])
            if cell == "gru":  # n = tanh(W_in x + b_in + r * (W_hn h + b_hn)): b_hn stays with h
                b_x, b_h = b_ih, b_hh
            else:
                b_x, b_h = b_ih + b_hh, None
            if i == 0:
                # Fold the embedding into the first input product: one row lookup per
                # step replaces a matrix product.
                self.in_table = w["embed.weight"] @ w_ih.T + b_x  # (V, G*H)
                self.layers.append((None, w_hh, None, b_h))
            else:
                self.layers.append((w_ih, w_hh, b_x, b_h))
        self.head_w, self.head_b = w["head.weight"], w["head.bias"]
        self._flip = False

    @classmethod
    def from_checkpoint(cls, c: Checkpoint) -> NumpyRNN:
        """The engine for a checkpoint's weights (read without torch)."""
        return cls(c.config, c.numpy_weights())

    def init_state(self, batch_size: int) -> State:
        """Zeros: h per layer, plus c per layer for an LSTM, each (B, H)."""
        n = 2 if self.config.cell == "lstm" else 1
        shape = (batch_size, self.config.hidden_size)
        return [np.zeros(shape, np.float32) for _ in range(n * self.config.num_layers)]

    def step(self, ids: np.ndarray, state: State) -> tuple[np.ndarray, State]:
        """One time step: ids (B,) -> logits (B, V) and the next state (inputs untouched)."""
        cell, n_layers, hs = self.config.cell, self.config.num_layers, self.config.hidden_size
        new_state = list(state)
        # The recurrent products need only the previous state, so their order is free.
        # Every other step runs them first, last layer first: the step then starts on the
        # weights the previous one used last, while they are still in the core's cache
        # (faster for small models, same results; docs/sampling.md).
        self._flip = not self._flip
        recurrent: list[np.ndarray | None] = [None] * n_layers
        if self._flip:
            for i in reversed(range(n_layers)):
                recurrent[i] = _times(self.layers[i][1], state[i])
        x = np.empty(0, np.float32)  # the layer below's output, from layer 1 on
        for i, (w_ih, w_hh, b_x, b_h) in enumerate(self.layers):
            h = state[i]
            if w_ih is None:
                gi = self.in_table[ids]  # input part, (B, G*H)
            else:
                gi = _times(w_ih, x)
                gi += b_x  # type: ignore[operator]  # set for every layer but the first
            done = recurrent[i]
            gh = _times(w_hh, h) if done is None else done  # recurrent part
            if cell == "lstm":
                gi += gh
                np.tanh(gi, out=gi)
                sig = gi[:, :3 * hs]
                sig *= 0.5
                sig += 0.5  # i, f, o: sigmoid from tanh of the halved pre-activation
                i_g, f_g, o_g, g_g = (gi[:, k * hs:(k + 1) * hs] for k in range(4))
                c = f_g * state[n_layers + i]  # forget, then write
                c += i_g * g_g
                h = np.tanh(c)
                h *= o_g  # the output gate exposes the cell
                new_state[n_layers + i] = c
            elif cell == "gru":
                gh += b_h  # type: ignore[operator]  # the GRU keeps b_hn with h
                rz = gi[:, :2 * hs]
                rz += gh[:, :2 * hs]
                np.tanh(rz, out=rz)
                rz *= 0.5
                rz += 0.5
                r, z = rz[:, :hs], rz[:, hs:]
                n = gh[:, 2 * hs:] * r  # reset: how much of h feeds the candidate
                n += gi[:, 2 * hs:]
                np.tanh(n, out=n)
                h = h - n
                h *= z
                h += n  # h' = (1 - z) n + z h: keep old h vs take the candidate
            else:
                gi += gh
                h = np.tanh(gi)  # h = tanh(W_xh x + W_hh h + b)
            new_state[i] = h
            x = h
        logits = _times(self.head_w, x)
        logits += self.head_b
        return logits, new_state

    def warm(self, ids: np.ndarray, state: State) -> tuple[np.ndarray, State]:
        """Feed a (B, T) prefix one step at a time; logits after the last step."""
        logits = np.empty((ids.shape[0], self.config.vocab_size), np.float32)
        for t in range(ids.shape[1]):
            logits, state = self.step(ids[:, t], state)
        return logits, state
