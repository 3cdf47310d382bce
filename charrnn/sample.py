"""Generation: softmax sampling with temperature, one character fed back at a time.

Runs on the numpy twin of the model (``charrnn.infer``), so sampling never imports torch.
The recurrent state is carried from step to step; the prime is fed once to warm it.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from charrnn import checkpoint as ckpt
from charrnn.errors import CharRNNError, ConfigError
from charrnn.infer import NumpyRNN
from charrnn.text import Vocab


@dataclass
class SampleConfig:
    length: int = 1000  # characters to generate after the prime
    temperature: float = 1.0  # 0: greedy (always the most likely character)
    top_k: int = 0  # keep only the k most likely characters; 0: all
    seed: int | None = None  # None: a fresh random seed

    def __post_init__(self) -> None:
        if not isinstance(self.length, int) or self.length < 0:
            raise ConfigError(f"length must be >= 0, got {self.length!r}")
        if not math.isfinite(self.temperature) or self.temperature < 0:
            raise ConfigError(f"temperature must be a finite number >= 0, got {self.temperature}")
        if not isinstance(self.top_k, int) or self.top_k < 0:
            raise ConfigError(f"top-k must be >= 1 (or 0 for all), got {self.top_k!r}")
        if self.seed is not None and not (isinstance(self.seed, int) and self.seed >= 0):
            raise ConfigError(f"seed must be an integer >= 0, got {self.seed!r}")


def pick(logits: np.ndarray, temperature: float, top_k: int, rng: np.random.Generator
         ) -> np.ndarray:
    """Next ids (B,) from logits (B, V): argmax at temperature 0, else a softmax draw."""
    if temperature == 0:
        return logits.argmax(axis=1)
    # shift before dividing: a tiny temperature must not overflow the top logit to inf
    z = logits.astype(np.float64)
    z = (z - z.max(axis=1, keepdims=True)) / temperature
    if 0 < top_k < z.shape[1]:
        kth = np.partition(z, -top_k, axis=1)[:, -top_k, None]
        z = np.where(z < kth, -np.inf, z)
    p = np.exp(z - z.max(axis=1, keepdims=True))
    cdf = np.cumsum(p, axis=1)
    u = rng.random((z.shape[0], 1)) * cdf[:, -1:]
    return np.minimum((cdf <= u).sum(axis=1), z.shape[1] - 1)


class Sampler:
    """A loaded checkpoint ready to generate."""

    def __init__(self, checkpoint: ckpt.Checkpoint) -> None:
        self.checkpoint = checkpoint
        self.vocab: Vocab = checkpoint.vocab
        self.engine = NumpyRNN(checkpoint.config, checkpoint.numpy_weights())

    @classmethod
    def load(cls, target: str | Path | None = None) -> Sampler:
        return cls(ckpt.inspect(ckpt.resolve(target)))

    def start_ids(self, prime: str) -> np.ndarray:
        """Ids that warm the state: the prime, or a silent newline (a fresh line)."""
        if prime:
            unknown = self.vocab.unknown(prime)
            if unknown:
                chars = "".join(sorted(unknown))
                raise CharRNNError(f"prime has characters the model never saw: {chars!r}")
            return self.vocab.encode(prime).astype(np.int64)
        return np.array([self.vocab.chars.index("\n") if "\n" in self.vocab else 0])

    def generate(self, prime: str = "", config: SampleConfig | None = None) -> Iterator[str]:
        """Yield generated characters one at a time (the prime itself is not yielded)."""
        config = config or SampleConfig()
        rng = np.random.default_rng(config.seed)
        logits, state = self.engine.warm(self.start_ids(prime)[None, :],
                                         self.engine.init_state(1))
        chars = self.vocab.chars
        for _ in range(config.length):
            nxt = pick(logits, config.temperature, config.top_k, rng)
            yield chars[int(nxt[0])]
            logits, state = self.engine.step(nxt, state)
