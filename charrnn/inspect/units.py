"""Finding interpretable hidden units: structural features of a text and correlations.

A unit that tracks "inside quotes" or "position in line" (Karpathy's famous pictures)
correlates strongly with a feature computed from the text alone, so ranking units by
|Pearson r| against a handful of such features finds them without scanning hundreds of
units by hand. Every feature is the value *after reading* the character at position p,
which is when the model's state has seen it.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

OPEN, CLOSE = "([{", ")]}"


def features(text: str) -> dict[str, np.ndarray]:
    """Feature name -> (N,) float array over the characters of ``text``."""
    n = len(text)
    quote, paren, col, word = (np.zeros(n, np.float32) for _ in range(4))
    inside_q, depth, column, run = False, 0, 0, 0
    for p, ch in enumerate(text):
        if ch == '"':
            inside_q = not inside_q
        elif ch == "\u201c":
            inside_q = True
        elif ch == "\u201d":
            inside_q = False
        if ch in OPEN:
            depth += 1
        elif ch in CLOSE:
            depth = max(depth - 1, 0)
        column = 0 if ch == "\n" else column + 1
        run = run + 1 if ch.isalnum() else 0
        quote[p], paren[p], col[p], word[p] = inside_q, depth > 0, column, run
    chars = np.array(list(text)) if n else np.array([], dtype="<U1")
    return {
        "inside quotes": quote,
        "inside brackets": paren,
        "position in line": col,
        "position in word": word,
        "inside a word": (word > 0).astype(np.float32),
        "upper-case letter": np.char.isupper(chars).astype(np.float32),
        "space": (chars == " ").astype(np.float32),
        "line end": (chars == "\n").astype(np.float32),
    }


def correlations(values: np.ndarray, feats: np.ndarray) -> np.ndarray:
    """Pearson r (F, U) of every column of ``values`` (N, U) with every column of ``feats``
    (N, F), in one matrix product; NaN where either side is constant."""
    x = values.astype(np.float64)
    x -= x.mean(axis=0)
    f = feats.astype(np.float64)
    f -= f.mean(axis=0)
    denom = np.sqrt(np.outer((f * f).sum(axis=0), (x * x).sum(axis=0)))
    with np.errstate(invalid="ignore", divide="ignore"):
        r = (f.T @ x) / denom
    return np.where(denom > 1e-12, r, np.nan)


@dataclass
class UnitScore:
    unit: int  # column in the activations
    name: str  # e.g. "h2.17"
    feature: str  # the feature it follows best
    r: float  # Pearson correlation with that feature


def correlation_table(values: np.ndarray, feats: dict[str, np.ndarray]
                      ) -> dict[str, np.ndarray]:
    """Feature -> (U,) Pearson r, for the features that vary over the text."""
    names = list(feats)
    r = correlations(values, np.stack([feats[k] for k in names], axis=1))
    return {k: r[i] for i, k in enumerate(names) if not np.isnan(r[i]).all()}


def rank_units(table: dict[str, np.ndarray], names: list[str], per_feature: int = 3,
               total: int = 24) -> list[UnitScore]:
    """The units that follow structure best: the ``per_feature`` strongest for each feature,
    topped up to ``total`` by overall strength; strongest first. Each unit appears once,
    with the feature it correlates with most."""
    if not table:
        return []
    keys = list(table)
    strength = np.nan_to_num(np.abs(np.stack([table[k] for k in keys])), nan=-1.0)  # (F, U)
    chosen: list[int] = []
    for row in strength:
        chosen += [int(u) for u in np.argsort(-row, kind="stable")[:per_feature]
                   if row[u] >= 0 and int(u) not in chosen]
    for u in np.argsort(-strength.max(axis=0), kind="stable"):
        if len(chosen) >= total or strength[:, u].max() < 0:
            break
        if int(u) not in chosen:
            chosen.append(int(u))
    out = []
    for u in chosen:
        f = keys[int(strength[:, u].argmax())]
        out.append(UnitScore(u, names[u], f, float(table[f][u])))
    out.sort(key=lambda s: -abs(s.r))
    return out
