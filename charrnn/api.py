"""The Python API: load a checkpoint, generate text, score a text, look inside.

    >>> from charrnn import api
    >>> model = api.load("checkpoints/shakespeare")      # a run folder or a .safetensors
    >>> print(model.generate("ROMEO:", length=200, temperature=0.8, seed=1))
    >>> model.samples(4, "ROMEO:", length=100, top_p=0.9, stop="\\n\\n", seed=1)
    >>> model.generate("", 40, regex="[A-Z][a-z]+", dry_multiplier=0.8)  # any control
    >>> model.score("To be, or not to be").bits_per_char  # needs torch
    >>> s = model.score(play_text, adapt=True); s.static.loss, s.loss  # dynamic evaluation
    >>> model.surprisal("To be, or not to be").bits         # per character, numpy only
    >>> model.copies(text, prime="ROMEO:").longest          # verbatim from the training text?
    >>> model.is_novel("\\nAlice\\n")                        # never in the training text

Generation and traces run on the numpy twin of the model; only ``score`` imports torch
(it uses the same fused kernels as ``charrnn eval``).
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from charrnn.config import AdaptConfig
from charrnn.data.text import Vocab
from charrnn.errors import CharRNNError
from charrnn.generate.decoding import Decoding, SampleConfig
from charrnn.generate.sampler import END, Sampler, fresh_seed
from charrnn.inspect.trace import Activations, Surprisal, activations, surprisal
from charrnn.model.infer import NumpyRNN
from charrnn.runs import checkpoint as ckpt
from charrnn.runs import folder as runfolder

if TYPE_CHECKING:  # torch is imported only when scoring
    from charrnn.model.network import CharRNN
    from charrnn.novelty.index import CopyReport, Index
    from charrnn.score.measures import Score

__all__ = ["Model", "load", "Surprisal", "Activations", "AdaptConfig", "Decoding"]

_D, _LENGTH = Decoding, SampleConfig.length  # the defaults of charrnn sample, shared


class Model:
    """A loaded checkpoint: ``generate``, ``stream``, ``score``, ``surprisal``, ``activations``."""

    def __init__(self, checkpoint: ckpt.Checkpoint) -> None:
        self.checkpoint = checkpoint
        self.path: Path = checkpoint.path
        self.vocab: Vocab = checkpoint.vocab
        self.config = checkpoint.config
        self.meta: dict[str, Any] = checkpoint.meta
        self._sampler: Sampler | None = None
        self._engine: NumpyRNN | None = None
        self._torch_model: CharRNN | None = None
        self._copy_index: dict[str | None, Index] = {}

    def __repr__(self) -> str:
        c = self.config
        return (f"<charrnn.api.Model {self.path}: {c.num_layers}x{c.hidden_size} {c.cell}, "
                f"{len(self.vocab)} characters>")

    # ------------------------------------------------------------------ generation
    def _sample(self, prime: str | list[str], config: SampleConfig
                ) -> Iterator[tuple[int, str]]:
        if self._sampler is None:
            self._sampler = Sampler(self.checkpoint)
        return self._sampler.stream(prime, config)

    def stream(self, prime: str = "", length: int = _LENGTH,
               temperature: float = _D.temperature, top_k: int = _D.top_k,
               seed: int | None = None, *, stop: str | tuple[str, ...] = (),
               **controls: Any) -> Iterator[str]:
        """Yield generated characters one at a time (not the prime); a stop string ends
        the text right after it is produced. ``controls``: the other sampling controls
        by name (``top_p=0.9``; every field of ``Decoding``)."""
        config = SampleConfig(length, seed, stop, decoding=Decoding(
            temperature=temperature, top_k=top_k, **controls))
        return (ch for _, ch in self._sample(prime, config) if ch != END)

    def generate(self, prime: str = "", length: int = _LENGTH,
                 temperature: float = _D.temperature, top_k: int = _D.top_k,
                 seed: int | None = None, *, stop: str | tuple[str, ...] = (),
                 **controls: Any) -> str:
        """The prime followed by up to ``length`` generated characters."""
        return prime + "".join(self.stream(prime, length, temperature, top_k, seed,
                                           stop=stop, **controls))

    def samples(self, num_samples: int, prime: str | list[str] = "", length: int = _LENGTH,
                temperature: float = _D.temperature, top_k: int = _D.top_k,
                seed: int | None = None, *, stop: str | tuple[str, ...] = (),
                **controls: Any) -> list[str]:
        """``num_samples`` independent texts (without the prime), generated as one batch;
        text i is what ``generate`` gives with seed ``seed + i``. With a list of primes,
        ``num_samples`` of each, in one batch: text i continues prime i // num_samples."""
        config = SampleConfig(length, fresh_seed() if seed is None else seed, stop,
                              num_samples, Decoding(temperature=temperature, top_k=top_k,
                                                    **controls))
        count = num_samples * (1 if isinstance(prime, str) else len(prime))
        texts: list[list[str]] = [[] for _ in range(count)]
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
        from charrnn.model.network import load_model
        from charrnn.score.loss import score_ids

        ids = self._ids(text)
        model = self._torch_model
        if model is None or str(model.head.weight.device) != device:
            model = self._torch_model = load_model(self.checkpoint, device)
        if adapt is not False:
            from charrnn.score.adapt import score_adaptive

            adapted = score_adaptive(model, [ids],
                                     adapt if isinstance(adapt, AdaptConfig) else None)
            if adapted.static is not None:
                adapted.static.unknown = self.vocab.unknown(text)
            result: Score = adapted
        else:
            result = score_ids(model, ids)
        result.unknown = self.vocab.unknown(text)
        return result

    @property
    def engine(self) -> NumpyRNN:
        if self._engine is None:
            self._engine = NumpyRNN.from_checkpoint(self.checkpoint)
        return self._engine

    def surprisal(self, text: str, top_k: int = 5) -> Surprisal:
        """Per-character surprisal in bits and the model's top-k predictions (numpy only).

        Unknown characters are dropped first; ``Surprisal.ids`` holds what was scored."""
        return surprisal(self.engine, self._ids(text), top_k)

    def activations(self, text: str) -> Activations:
        """Every hidden unit after each character of ``text`` (numpy only)."""
        return activations(self.engine, self._ids(text))

    # ------------------------------------------------------------------ copies
    def _index(self, corpus: str | Path | None) -> Index:
        key = None if corpus is None else str(corpus)
        if key not in self._copy_index:
            from charrnn.novelty.sieve import index_for

            self._copy_index[key] = index_for(self.checkpoint, key)
        return self._copy_index[key]

    def copies(self, text: str, prime: str = "", *, min_copy: int = 20,
               corpus: str | Path | None = None) -> CopyReport:
        """Verbatim copies of the training text in ``prime + text`` that reach into
        ``text``: the longest (length, corpus offset) and the share of ``text`` inside
        copies of at least ``min_copy`` characters. ``corpus``: a copy of the training
        text when the recorded path is gone (the content must match)."""
        return self._index(corpus).report(prime + text, len(prime), min_copy)

    def is_novel(self, text: str, *, corpus: str | Path | None = None) -> bool:
        """Whether ``text`` never occurs verbatim in the training text (whose start and
        end count as line breaks)."""
        return not self._index(corpus).occurs(text)


def load(checkpoint: str | Path | None = None) -> Model:
    """A checkpoint file, a run folder (its best checkpoint) or None (the newest run)."""
    return Model(runfolder.open_checkpoint(checkpoint))
