"""The next character from the model's logits, as the decoding controls say.

The draw inverts the cumulative distribution at one uniform number per row, so the same
number always gives the same character: a seed fixes the text, batched or not.
"""

from __future__ import annotations

from collections.abc import Iterable

import numpy as np

from charrnn.generate.decoding import Decoding


def pick(logits: np.ndarray, u: Iterable[float], decoding: Decoding = Decoding()) -> np.ndarray:
    """Next ids (B,) from logits (B, V) and one uniform number in [0, 1) per row.

    Temperature 0 is the argmax. Otherwise the softmax of logits / temperature, cut to
    the top-k characters (ties at the k-th value kept), then to the nucleus: the fewest
    likeliest characters whose probability reaches top-p, then to those whose probability
    is at least min-p times the likeliest one's. Logits of -inf (a banned character, one
    a regex forbids) are never drawn, as long as a row has one finite logit.
    """
    temperature, top_k, top_p = decoding.temperature, decoding.top_k, decoding.top_p
    min_p = decoding.min_p
    if temperature == 0:
        return logits.argmax(axis=1)
    # Below 1e-300 every draw is already the argmax; the floor keeps z / temperature
    # finite (a subnormal temperature would overflow to -inf, with a warning).
    temperature = max(temperature, 1e-300)
    if len(logits) == 1 and top_k == 0 and top_p == 1 and min_p == 0:
        # One row, plain softmax: the same arithmetic in half the numpy calls, which
        # shows at batch 1, where this runs thousands of times a second.
        z = logits[0].astype(np.float64)
        z -= z.max()  # shift, then divide: a tiny temperature must not overflow to inf
        z /= temperature
        cdf = np.cumsum(np.exp(z, out=z))
        i = int(cdf.searchsorted(next(iter(u)) * cdf[-1], side="right"))
        return np.array([i if i < len(cdf) else int(z.argmax())])
    z = logits.astype(np.float64)
    z -= z.max(axis=1, keepdims=True)  # as above: the top logit stays 0, never inf
    z /= temperature
    v = z.shape[1]
    if 0 < top_k < v:
        kth = np.partition(z, -top_k, axis=1)[:, -top_k, None]
        z[z < kth] = -np.inf
    p = np.exp(z, out=z)
    if top_p < 1:
        order = np.argsort(-p, axis=1, kind="stable")
        desc = np.take_along_axis(p, order, axis=1)
        before = np.cumsum(desc, axis=1) - desc  # mass of the likelier characters
        cut = before >= top_p * desc.sum(axis=1, keepdims=True)
        np.put_along_axis(p, order, np.where(cut, 0.0, desc), axis=1)
    if min_p > 0:  # the likeliest character survives top-k and top-p: its p is the max
        p[p < min_p * p.max(axis=1, keepdims=True)] = 0.0
    cdf = np.cumsum(p, axis=1)
    target = np.fromiter(u, np.float64, count=len(cdf))[:, None] * cdf[:, -1:]
    ids = (cdf <= target).sum(axis=1)
    # u * total can round up to total itself: take the likeliest character then.
    return np.where(ids < v, ids, p.argmax(axis=1))
