"""The Python API: load a checkpoint, generate text, score a text, look inside.

    >>> from charrnn import api
    >>> model = api.load("checkpoints/shakespeare")      # a run folder or a .safetensors
    >>> print(model.generate("ROMEO:", length=200, temperature=0.8, seed=1))
    >>> model.samples(4, "ROMEO:", length=100, top_p=0.9, stop="\\n\\n", seed=1)
    >>> model.score("To be, or not to be").bits_per_char  # needs torch
    >>> s = model.score(play_text, adapt=True); s.static.loss, s.loss  # dynamic evaluation
    >>> model.surprisal("To be, or not to be").bits         # per character, numpy only

Generation and traces run on the numpy twin of the model; only ``score`` imports torch
(it uses the same fused kernels as ``charrnn eval``).
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from charrnn import checkpoint as ckpt
from charrnn.config import AdaptConfig
from charrnn.errors import CharRNNError
from charrnn.infer import NumpyRNN
from charrnn.text import Vocab
from charrnn.trace import Activations, Surprisal, activations, surprisal

if TYPE_CHECKING:  # evaluate imports torch; the API loads it only when scoring
    from charrnn.evaluate import Score

__all__ = ["Model", "load", "Surprisal", "Activations", "AdaptConfig"]


class Model:
    """A loaded checkpoint: ``generate``, ``stream``, ``score``, ``surprisal``, ``activations``."""

    def __init__(self, checkpoint: ckpt.Checkpoint) -> None:
        self.checkpoint = checkpoint
        self.path: Path = checkpoint.path
        self.vocab: Vocab = checkpoint.vocab
        self.config = checkpoint.config
        self.meta: dict[str, Any] = checkpoint.meta
        self._sampler = None
        self._engine: NumpyRNN | None = None
        self._torch_model = None

    def __repr__(self) -> str:
        c = self.config
        return (f"<charrnn.api.Model {self.path}: {c.num_layers}x{c.hidden_size} {c.cell}, "
                f"{len(self.vocab)} characters>")

    # ------------------------------------------------------------------ generation
    def _sample(self, prime: str, config: Any) -> Iterator[tuple[int, str]]:
        from charrnn.sample import Sampler

        if self._sampler is None:
            self._sampler = Sampler.load(self.path)
        return self._sampler.stream(prime, config)

    def stream(self, prime: str = "", length: int = 200, temperature: float = 1.0,
               top_k: int = 0, seed: int | None = None, *, top_p: float = 1.0,
               stop: str | tuple[str, ...] = ()) -> Iterator[str]:
        """Yield generated characters one at a time (not the prime); a stop string ends
        the text right after it is produced."""
        from charrnn.sample import END, SampleConfig

        config = SampleConfig(length=length, temperature=temperature, top_k=top_k,
                              seed=seed, top_p=top_p, stop=stop)
        return (ch for _, ch in self._sample(prime, config) if ch != END)

    def generate(self, prime: str = "", length: int = 200, temperature: float = 1.0,
                 top_k: int = 0, seed: int | None = None, *, top_p: float = 1.0,
                 stop: str | tuple[str, ...] = ()) -> str:
        """The prime followed by up to ``length`` generated characters."""
        return prime + "".join(self.stream(prime, length, temperature, top_k, seed,
                                           top_p=top_p, stop=stop))

    def samples(self, num_samples: int, prime: str = "", length: int = 200,
                temperature: float = 1.0, top_k: int = 0, seed: int | None = None, *,
                top_p: float = 1.0, stop: str | tuple[str, ...] = ()) -> list[str]:
        """``num_samples`` independent texts (without the prime), generated as one batch;
        text i is what ``generate`` gives with seed ``seed + i``."""
        from charrnn.sample import END, SampleConfig, fresh_seed

        config = SampleConfig(length=length, temperature=temperature, top_k=top_k,
                              seed=fresh_seed() if seed is None else seed, top_p=top_p,
                              stop=stop, num_samples=num_samples)
        texts: list[list[str]] = [[] for _ in range(num_samples)]
        for i, ch in self._sample(prime, config):
            if ch != END:
                texts[i].append(ch)
        return ["".join(t) for t in texts]

    # ------------------------------------------------------------------ scoring
    def _ids(self, text: str) -> np.ndarray:
        ids, _ = self.vocab.encode_known(text)
        if len(ids) < 2:
            raise CharRNNError("nothing to score: fewer than 2 known characters")
        return ids

    def score(self, text: str, device: str = "cpu", adapt: bool | AdaptConfig = False
              ) -> Score:
        """Loss (nats), bits per character and perplexity of ``text`` (imports torch).

        Characters the model never saw are skipped and counted in ``Score.unknown``.
        ``adapt=True`` (or an ``AdaptConfig``) scores with dynamic evaluation, as
        ``charrnn eval --adapt``: the result is an ``adapt.AdaptedScore`` whose figures
        are the adapted ones and whose ``static`` holds the plain Score of the same pass.
        The loaded model itself is never changed."""
        from charrnn.evaluate import score_ids

        ids = self._ids(text)
        if self._torch_model is None or str(self._torch_model.head.weight.device) != device:
            self._torch_model = ckpt.load_model(self.checkpoint, device)
        if adapt is not False:
            from charrnn.adapt import score_adaptive

            result = score_adaptive(self._torch_model, [ids],
                                    adapt if isinstance(adapt, AdaptConfig) else None)
            result.static.unknown = self.vocab.unknown(text)
        else:
            result = score_ids(self._torch_model, ids)
        result.unknown = self.vocab.unknown(text)
        return result

    @property
    def engine(self) -> NumpyRNN:
        if self._engine is None:
            self._engine = NumpyRNN(self.config, self.checkpoint.numpy_weights())
        return self._engine

    def surprisal(self, text: str, top_k: int = 5) -> Surprisal:
        """Per-character surprisal in bits and the model's top-k predictions (numpy only).

        Unknown characters are dropped first; ``Surprisal.ids`` holds what was scored."""
        return surprisal(self.engine, self._ids(text), top_k)

    def activations(self, text: str) -> Activations:
        """Every hidden unit after each character of ``text`` (numpy only)."""
        return activations(self.engine, self._ids(text))


def load(checkpoint: str | Path | None = None) -> Model:
    """A checkpoint file, a run folder (its best checkpoint) or None (the newest run)."""
    return Model(ckpt.inspect(ckpt.resolve(checkpoint)))
