"""Pure measures of how well a model predicts text: nats, bits per character, perplexity.

A leaf: every report (eval, info, list, the pages) converts here, and nothing here
imports torch or numpy.
"""

from __future__ import annotations

import math
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

USED_WITHIN = 0.01  # nats/char: a model "uses k characters" when more add less than this


def bits(nats: Any) -> Any:
    """Nats to bits (a number or an array): the one conversion every report uses."""
    return nats / math.log(2)


@dataclass
class Score:
    nats: float  # summed negative log-likelihood
    chars: int  # characters predicted
    unknown: Counter[str] = field(default_factory=Counter)  # skipped characters

    @property
    def loss(self) -> float:
        return self.nats / max(self.chars, 1)

    @property
    def bits_per_char(self) -> float:
        return bits(self.loss)

    @property
    def perplexity(self) -> float:
        return math.exp(min(self.loss, 700.0))

    def as_dict(self) -> dict:
        return {"loss": self.loss, "bits_per_char": self.bits_per_char,
                "perplexity": self.perplexity, "chars": self.chars,
                "unknown_chars": sum(self.unknown.values()),
                "unknown_distinct": "".join(sorted(self.unknown))}
