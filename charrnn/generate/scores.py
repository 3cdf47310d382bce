"""Log-probabilities of characters under the model, and OpenAI's legacy ``logprobs`` shape.

A character's log-probability is the model's own: the log-softmax of its logits, before
temperature, bias, DRY, a regex or any truncation. So the numbers score a text exactly as
``charrnn eval`` does, whatever the sampling settings were, and the mean over a sample
ranks samples (``best_of``).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

Scored = tuple[float, tuple[tuple[str, float], ...]]
"""A character's log-probability, and the likeliest characters with theirs (best first)."""


def log_softmax(logits: np.ndarray) -> np.ndarray:
    """(B, V) log-probabilities, in float64."""
    z = logits.astype(np.float64)
    z -= z.max(axis=1, keepdims=True)
    z -= np.log(np.exp(z).sum(axis=1, keepdims=True))
    return z


def score_rows(logits: np.ndarray, ids: np.ndarray, top: int, chars: Sequence[str]
               ) -> list[Scored]:
    """For each row: the log-probability of character ``ids[row]`` after ``logits[row]``,
    and the ``top`` likeliest characters (at most the vocabulary) with theirs."""
    lp = log_softmax(logits)
    top = min(top, lp.shape[1])
    if top:
        best = np.argpartition(-lp, top - 1, axis=1)[:, :top]
        order = np.argsort(-np.take_along_axis(lp, best, axis=1), axis=1, kind="stable")
        best = np.take_along_axis(best, order, axis=1)
    out = []
    for r, c in enumerate(np.asarray(ids).tolist()):
        alts = tuple((chars[j], float(lp[r, j])) for j in best[r].tolist()) if top else ()
        out.append((float(lp[r, c]), alts))
    return out


def openai(text: str, scores: Sequence[Scored | None], offset: int = 0) -> dict:
    """OpenAI's legacy completions ``logprobs`` object for ``text``, one character per
    token: ``tokens``, ``token_logprobs`` and ``top_logprobs`` (the alternatives, and the
    chosen character if it is not among them; null where a score is None: an echoed
    prompt's first character), and ``text_offset`` (each character's offset, counted from
    ``offset``)."""
    tops: list[dict[str, float] | None] = []
    for ch, s in zip(text, scores, strict=True):
        if s is None:
            tops.append(None)
            continue
        top = dict(s[1])
        top.setdefault(ch, s[0])
        tops.append(top)
    return {"tokens": list(text),
            "token_logprobs": [None if s is None else s[0] for s in scores],
            "top_logprobs": tops,
            "text_offset": list(range(offset, offset + len(text)))}
