"""The recurrent cells written out in numpy, for sampling one character at a time.

Stepping torch's fused kernels at batch 1 pays a large per-call overhead and importing
torch alone takes over a second, so generation runs here instead: a few matrix-vector
products per layer per character, the same equations and weights as ``nn.LSTM``/``GRU``/
``RNN`` (gate order i, f, g, o for the LSTM and r, z, n for the GRU, as torch stores them).
"""

from __future__ import annotations

import numpy as np

from charrnn.config import ModelConfig


def _sigmoid(x: np.ndarray) -> np.ndarray:
    return 0.5 * (np.tanh(0.5 * x) + 1.0)  # overflow-free logistic


class NumpyRNN:
    """Inference-only twin of ``CharRNN`` over a dict of float32 weight arrays."""

    def __init__(self, config: ModelConfig, weights: dict[str, np.ndarray]) -> None:
        self.config = config
        w = {k: np.ascontiguousarray(v, dtype=np.float32) for k, v in weights.items()}
        self.embed = w["embed.weight"]
        self.layers = []
        for i in range(config.num_layers):
            w_ih, w_hh = w[f"rnn.weight_ih_l{i}"], w[f"rnn.weight_hh_l{i}"]
            b_ih, b_hh = w[f"rnn.bias_ih_l{i}"], w[f"rnn.bias_hh_l{i}"]
            if i == 0:
                # Fold the embedding into the first layer's input projection: one row
                # lookup replaces a matrix product per step.
                self.in_table = self.embed @ w_ih.T + b_ih  # (V, G*H)
            self.layers.append((w_ih.T.copy(), w_hh.T.copy(), b_ih, b_hh))
        self.head_w, self.head_b = w["head.weight"].T.copy(), w["head.bias"]

    def init_state(self, batch_size: int) -> list[np.ndarray]:
        """Zeros: h per layer, plus c per layer for an LSTM, each (B, H)."""
        n = 2 if self.config.cell == "lstm" else 1
        shape = (batch_size, self.config.hidden_size)
        return [np.zeros(shape, np.float32) for _ in range(n * self.config.num_layers)]

    def step(self, ids: np.ndarray, state: list[np.ndarray]) -> tuple[np.ndarray, list]:
        """One time step: ids (B,) -> logits (B, V) and the next state."""
        cell, n_layers = self.config.cell, self.config.num_layers
        new_state = list(state)
        x = None
        for i, (w_ih, w_hh, b_ih, b_hh) in enumerate(self.layers):
            gi = self.in_table[ids] if i == 0 else x @ w_ih + b_ih  # input part, (B, G*H)
            h = state[i]
            gh = h @ w_hh + b_hh  # recurrent part, (B, G*H)
            if cell == "lstm":
                c = state[n_layers + i]
                i_g, f_g, g_g, o_g = np.split(gi + gh, 4, axis=1)
                c = _sigmoid(f_g) * c + _sigmoid(i_g) * np.tanh(g_g)  # forget, then write
                h = _sigmoid(o_g) * np.tanh(c)  # output gate exposes the cell
                new_state[n_layers + i] = c
            elif cell == "gru":
                i_r, i_z, i_n = np.split(gi, 3, axis=1)
                h_r, h_z, h_n = np.split(gh, 3, axis=1)
                r = _sigmoid(i_r + h_r)  # reset: how much of h feeds the candidate
                z = _sigmoid(i_z + h_z)  # update: keep old h vs take the candidate
                n = np.tanh(i_n + r * h_n)
                h = (1.0 - z) * n + z * h
            else:
                h = np.tanh(gi + gh)  # h = tanh(W_xh x + W_hh h + b)
            new_state[i] = h
            x = h
        return x @ self.head_w + self.head_b, new_state

    def warm(self, ids: np.ndarray, state: list[np.ndarray]) -> tuple[np.ndarray, list]:
        """Feed a (B, T) prefix one step at a time; logits after the last step."""
        logits = None
        for t in range(ids.shape[1]):
            logits, state = self.step(ids[:, t], state)
        return logits, state
