"""Per-character traces of a model over a (bounded) text: surprisal, top-k and hidden
units.

Runs the numpy twin of the model (``charrnn.model.infer``), so it needs no torch. Stepping one
character at a time at batch 1 is bound by reading the weights from memory, so the text
is cut into parallel streams with a burn-in, exactly as ``evaluate.score_ids`` does
(``data.EvalStreams``): a step over many streams costs little more than one. Every
result is scattered back to its position in the text.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from charrnn.data.batches import EvalStreams
from charrnn.errors import CharRNNError, ConfigError
from charrnn.model.infer import NumpyRNN
from charrnn.score.measures import bits as to_bits


@dataclass
class Surprisal:
    """What the model predicted at each position p >= 1 of ``ids`` (position 0 has no context).

    Arrays are indexed by position; entry 0 is NaN / -1 (nothing was predicted there).
    """

    ids: np.ndarray  # (N,) the text's ids
    bits: np.ndarray  # (N,) -log2 P(ids[p] | ids[:p])
    top_ids: np.ndarray  # (N, K) the K likeliest characters predicted for position p
    top_probs: np.ndarray  # (N, K) their probabilities

    @property
    def mean_bits(self) -> float:
        return float(np.nanmean(self.bits[1:])) if len(self.bits) > 1 else float("nan")

    def hardest(self, width: int = 40, count: int = 5) -> list[tuple[int, int, float]]:
        """The ``count`` non-overlapping windows of ``width`` characters with the highest
        mean surprisal, as (start, end, mean bits), most surprising first."""
        b = np.nan_to_num(self.bits, nan=0.0)
        width = max(1, min(width, len(b)))
        sums = np.convolve(b, np.ones(width), mode="valid") / width  # mean of b[i:i+width]
        taken = np.zeros(len(b), bool)
        out: list[tuple[int, int, float]] = []
        for i in np.argsort(-sums, kind="stable"):
            if len(out) == count:
                break
            if not taken[i : i + width].any():
                taken[i : i + width] = True
                out.append((int(i), int(i + width), float(sums[i])))
        return out


@dataclass
class Activations:
    """Hidden units after reading each character: ``values[p, u]`` for unit ``names[u]``."""

    values: np.ndarray  # (N, U) float32
    names: list[str]  # "h1.17": layer 1 (from 1), unit 17 of h; "c2.3": LSTM cell state


def excerpt(ids: np.ndarray, start: int, max_chars: int) -> np.ndarray:
    """ids[start : start + max_chars], refusing a start past the end."""
    if start < 0 or start >= len(ids) - 1:
        raise CharRNNError(f"--start {start} is past the end of the text "
                           f"({len(ids):,} known characters)")
    if max_chars < 2:
        raise CharRNNError(f"--max-chars must be at least 2, got {max_chars}")
    return ids[start : start + max_chars]


def _run(engine: NumpyRNN, ids: np.ndarray, streams: int, burn_in: int, top_k: int,
         keep_states: bool):
    """Feed ``ids`` through the engine in parallel streams; collect per-position results."""
    n = len(ids)
    es = EvalStreams.build(ids, streams, burn_in)
    s_count, cols = es.x.shape
    # Stream s starts (cols - burn) characters after stream s-1 and scores from column
    # `burn` on (stream 0 from column 0): input x[s, j] is ids[pos[s, j]].
    burn = int(es.mask[1].argmax()) if s_count > 1 else 0
    pos = np.arange(s_count)[:, None] * (cols - burn) + np.arange(cols)[None, :]
    v = engine.config.vocab_size
    k = min(top_k, v)
    bits = np.full(n, np.nan, np.float64)
    top_ids = np.full((n, k), -1, np.int32)
    top_probs = np.zeros((n, k), np.float32)
    state = engine.init_state(s_count)
    states = None
    if keep_states:
        states = np.zeros((n, sum(s.shape[1] for s in state)), np.float32)
    for j in range(cols):
        logits, state = engine.step(es.x[:, j], state)
        m = es.mask[:, j]
        if not m.any():
            continue
        p_in = pos[m, j]
        z = logits[m].astype(np.float64)
        z -= z.max(axis=1, keepdims=True)
        logp = z - np.log(np.exp(z).sum(axis=1, keepdims=True))
        bits[p_in + 1] = to_bits(-logp[np.arange(len(p_in)), es.y[m, j]])
        best = np.argpartition(-logp, k - 1, axis=1)[:, :k] if k < v else np.tile(
            np.arange(v), (len(p_in), 1))
        order = np.argsort(-np.take_along_axis(logp, best, 1), axis=1, kind="stable")
        best = np.take_along_axis(best, order, 1)
        top_ids[p_in + 1] = best
        top_probs[p_in + 1] = np.exp(np.take_along_axis(logp, best, 1))
        if states is not None:
            states[p_in] = np.concatenate([s[m] for s in state], axis=1)
    return bits, top_ids, top_probs, states


def surprisal(engine: NumpyRNN, ids: np.ndarray, top_k: int = 5, streams: int = 32,
              burn_in: int = 128) -> Surprisal:
    """Surprisal in bits and the top-k predictions at every position of ``ids``."""
    if not isinstance(top_k, int) or top_k < 1:
        raise ConfigError(f"top-k must be a positive integer, got {top_k!r}")
    ids = np.asarray(ids).astype(np.int64)
    bits, top_ids, top_probs, _ = _run(engine, ids, streams, burn_in, top_k, False)
    return Surprisal(ids, bits, top_ids, top_probs)


def activations(engine: NumpyRNN, ids: np.ndarray, streams: int = 32,
                burn_in: int = 128) -> Activations:
    """Every hidden unit (h of each layer, and c for an LSTM) after each character."""
    ids = np.asarray(ids).astype(np.int64)
    # One extra input so that the last character's state is computed too.
    padded = np.append(ids, ids[-1:])
    _, _, _, states = _run(engine, padded, streams, burn_in, 1, True)
    cfg = engine.config
    names = [f"h{i + 1}.{u}" for i in range(cfg.num_layers) for u in range(cfg.hidden_size)]
    if cfg.cell == "lstm":
        names += [f"c{i + 1}.{u}" for i in range(cfg.num_layers) for u in range(cfg.hidden_size)]
    return Activations(states[: len(ids)], names)
