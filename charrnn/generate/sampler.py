"""Generation: one character at a time, fed back in, the recurrent state carried along.

Runs on the numpy twin of the model (``charrnn.model.infer``), so sampling never imports
torch.
The prime is fed once to warm the state; K samples then run as one batch of K rows.

Reproducibility: sample ``i`` of a run with seed ``s`` draws its random numbers from
its own ``random.Random(s + i)``, one number per character, so it is the sample that
``--seed s+i`` gives alone. (Batched and unbatched float32 products may round differently
in the last bit; a draw that lands exactly on such a boundary could differ, which is
vanishingly rare.) Python's Mersenne Twister is used because its sequence for a given
integer seed is stable across Python versions and it costs nothing to import.
"""

from __future__ import annotations

import os
import random
from collections.abc import Iterable, Iterator
from pathlib import Path

import numpy as np

from charrnn.config import GATES, gigabytes, memory_bytes
from charrnn.data.text import Vocab, normalize
from charrnn.errors import CharRNNError, ConfigError
from charrnn.generate.decoding import SampleConfig
from charrnn.generate.pick import pick
from charrnn.model.infer import NumpyRNN
from charrnn.runs import checkpoint as ckpt
from charrnn.runs import folder as runfolder
from charrnn.safetext import check_text

_ROW_RNG_BYTES = 2_900  # a random.Random, measured with tracemalloc
END = ""
"""The character ``Sampler.stream`` yields for a sample that has ended."""


def fresh_seed() -> int:
    """A random seed to use (and report) when none is given."""
    return int.from_bytes(os.urandom(4), "little")


class Sampler:
    """A loaded checkpoint ready to generate."""

    def __init__(self, checkpoint: ckpt.Checkpoint) -> None:
        self.checkpoint = checkpoint
        self.vocab: Vocab = checkpoint.vocab
        self.engine = NumpyRNN.from_checkpoint(checkpoint)

    @classmethod
    def load(cls, target: str | Path | None = None) -> Sampler:
        return cls(runfolder.open_checkpoint(target))

    def clean_prime(self, prime: str, drop_unknown: bool = False) -> tuple[str, str]:
        """(prime as the model will read it, the distinct characters dropped from it).

        Line endings are normalised as in training. Characters the model never saw are
        an error naming them, or with ``drop_unknown`` are removed.
        """
        prime = normalize(check_text(prime, "the prime", "prompt"))
        if not prime:
            return "", ""
        unknown = "".join(sorted(self.vocab.unknown(prime)))
        if unknown and not drop_unknown:
            raise CharRNNError(f"prime has characters the model never saw: {unknown!r} "
                               "(--drop-unknown removes them)")
        if unknown:
            prime = "".join(c for c in prime if c not in unknown)
        return prime, unknown

    def start_ids(self, prime: str) -> np.ndarray:
        """Ids that warm the state: the prime, or a silent newline (a fresh line)."""
        if prime:
            prime, _ = self.clean_prime(prime)
            return self.vocab.encode(prime).astype(np.int64)
        return np.array([self.vocab.chars.index("\n") if "\n" in self.vocab else 0])

    def generate(self, prime: str = "", config: SampleConfig | None = None) -> Iterator[str]:
        """Yield one sample's characters (the prime itself is not yielded).

        With ``num_samples`` > 1 in the config this is the first sample only.
        """
        for i, ch in self.stream(prime, config):
            if i == 0:
                if ch == END:
                    return
                yield ch

    def stream(self, prime: str = "", config: SampleConfig | None = None
               ) -> Iterator[tuple[int, str]]:
        """Yield (sample index, character) as the batch produces them, and (index, END)
        once per sample when it ends (by length or a stop string).

        The prime is checked here, before the first character is produced.
        """
        config = config or SampleConfig()
        start = self.start_ids(prime)  # raises now on a bad prime, not at the first next()
        have, need = memory_bytes(), self.batch_bytes(config.num_samples)
        if have is not None and need > have:  # refused before a row is allocated
            raise ConfigError(f"{config.num_samples:,} samples at once need about "
                              f"{gigabytes(need)} of memory; this machine has "
                              f"{gigabytes(have)}: ask for fewer (--num-samples) or run "
                              "several commands")
        return self._run(start, config)

    def batch_bytes(self, k: int) -> int:
        """About the memory ``k`` samples generated at once need: per row its own random
        generator (~2.9 kB), the states of every layer, the gates and the logits with
        the arrays picking from them."""
        c = self.checkpoint.config
        return k * (_ROW_RNG_BYTES + 8 * (2 * c.num_layers * c.hidden_size
                                          + GATES[c.cell] * c.hidden_size + 4 * c.vocab_size))

    def _run(self, start: np.ndarray, config: SampleConfig) -> Iterator[tuple[int, str]]:
        k, stops, engine, chars = config.num_samples, config.stop, self.engine, self.vocab.chars
        seed = fresh_seed() if config.seed is None else config.seed
        rngs = [random.Random(seed + i) for i in range(k)]
        # Warm once at batch 1; every sample starts from that same state.
        logits, state = engine.warm(start[None, :], engine.init_state(1))
        if k > 1:
            logits, state = np.repeat(logits, k, 0), [np.repeat(s, k, 0) for s in state]
        rows = list(range(k))  # the sample index of each batch row still running
        longest = max(map(len, stops), default=0)
        tails = [""] * k  # the last characters of each sample, to spot a stop string
        for t in range(config.length):
            ids = pick(logits, [rngs[i].random() for i in rows], config.decoding)
            ended = []
            for r, (i, c) in enumerate(zip(rows, ids.tolist(), strict=True)):
                ch = chars[c]
                yield i, ch
                if stops:
                    tails[i] = tail = (tails[i] + ch)[-longest:]
                    if any(tail.endswith(s) for s in stops):
                        yield i, END
                        ended.append(r)
            if ended:  # drop finished rows so the batch only computes live samples
                keep = np.setdiff1d(np.arange(len(rows)), ended)
                rows = [rows[r] for r in keep]
                if not rows:
                    return
                ids, state = ids[keep], [s[keep] for s in state]
            if t + 1 < config.length:
                logits, state = engine.step(ids, state)
        for i in rows:
            yield i, END


def render(events: Iterable[tuple[int, str]], num_samples: int, head: str = "",
           separator: str = "\n") -> Iterator[str]:
    """Samples as plain text in index order: ``head`` (the echoed prime) before each,
    ``separator`` between them. The sample being printed streams; later ones wait."""
    waiting: list[list[str]] = [[] for _ in range(num_samples)]
    ended = [False] * num_samples
    current = 0
    yield head
    for i, ch in events:
        if i != current:
            if ch == END:
                ended[i] = True
            else:
                waiting[i].append(ch)
            continue
        if ch != END:
            yield ch
            continue
        ended[i] = True
        while ended[current] and current + 1 < num_samples:
            current += 1
            yield separator + head + "".join(waiting[current])
            waiting[current] = []


def render_jsonl(events: Iterable[tuple[int, str]], num_samples: int, fields: dict,
                 seed: int) -> Iterator[str]:
    """One JSON line per sample, in index order, as soon as it and those before it end:
    index, seed, text (without the prime), whether a stop string ended it, and ``fields``
    (the settings)."""
    from charrnn.safetext import dumps

    texts: list[list[str]] = [[] for _ in range(num_samples)]
    ended = [False] * num_samples
    current = 0
    stops = tuple(fields.get("stop", ()))
    for i, ch in events:
        if ch != END:
            texts[i].append(ch)
            continue
        ended[i] = True
        while current < num_samples and ended[current]:
            text = "".join(texts[current])
            record = {"index": current, "seed": seed + current, "text": text,
                      "stopped": bool(stops) and text.endswith(stops), **fields}
            yield dumps(record) + "\n"
            texts[current] = []
            current += 1
