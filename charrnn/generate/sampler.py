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

import operator
import os
import random
import threading
from collections.abc import Iterable, Iterator, Sequence
from pathlib import Path

import numpy as np

from charrnn.config import GATES, gigabytes, memory_bytes
from charrnn.data.text import Vocab, normalize
from charrnn.errors import CharRNNError, ConfigError
from charrnn.generate.decoding import Decoding, SampleConfig
from charrnn.generate.pick import pick
from charrnn.generate.scores import Scored, openai, score_rows
from charrnn.generate.steer import Rules, Steer
from charrnn.model.infer import NumpyRNN, State
from charrnn.runs import checkpoint as ckpt
from charrnn.runs import folder as runfolder
from charrnn.safetext import check_text

_ROW_RNG_BYTES = 2_900  # a random.Random, measured with tracemalloc
END = ""
"""The character ``Sampler.stream`` yields for a sample that has ended."""
_RULES_CACHE = 64  # compiled rules (a regex's automaton) kept per model
_PAIR = operator.itemgetter(0, 1)


def fresh_seed() -> int:
    """A random seed to use (and report) when none is given."""
    return int.from_bytes(os.urandom(4), "little")


class Sampler:
    """A loaded checkpoint ready to generate."""

    def __init__(self, checkpoint: ckpt.Checkpoint) -> None:
        self.checkpoint = checkpoint
        self.vocab: Vocab = checkpoint.vocab
        self.engine = NumpyRNN.from_checkpoint(checkpoint)
        self._rules: dict[tuple[Decoding, tuple[str, ...]], Rules | None] = {}
        self._lock = threading.Lock()

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

    def rules(self, decoding: Decoding, stops: tuple[str, ...] = ()) -> Rules | None:
        """The decoding's controls that act before ``pick`` (None if there are none),
        made for this vocabulary once and kept: a regex's automaton takes a while."""
        key = (decoding, stops if decoding.regex is not None else ())
        with self._lock:  # the server asks from several threads
            if key in self._rules:
                return self._rules[key]
        rules = Rules(decoding, self.vocab.chars, key[1])  # raises on a bad decoding
        with self._lock:
            while len(self._rules) >= _RULES_CACHE:
                self._rules.pop(next(iter(self._rules)))
            self._rules[key] = rules if rules.active else None
            return self._rules[key]

    def generate(self, prime: str = "", config: SampleConfig | None = None) -> Iterator[str]:
        """Yield one sample's characters (the prime itself is not yielded).

        With ``num_samples`` > 1 in the config this is the first sample only.
        """
        for i, ch in self.stream(prime, config):
            if i == 0:
                if ch == END:
                    return
                yield ch

    def stream(self, prime: str | Sequence[str] = "", config: SampleConfig | None = None
               ) -> Iterator[tuple[int, str]]:
        """Yield (sample index, character) as the batch produces them, and (index, END)
        once per sample when it ends (by length, a stop string or a complete regex).

        ``prime`` may be a list of primes: ``num_samples`` samples of each, in one batch;
        sample i continues prime i // num_samples and uses seed + i. The primes, and the
        decoding (a regex), are checked here, before the first character is produced.
        """
        return map(_PAIR, self.stream_scored(prime, config))  # (C-level: a batch-1 step is ~150 us)

    def stream_scored(self, prime: str | Sequence[str] = "",
                      config: SampleConfig | None = None, top: int | None = None
                      ) -> Iterator[tuple[int, str, Scored | None]]:
        """``stream`` with each character's log-probability under the model and its
        ``top`` likeliest alternatives (``scores.Scored``; None with ``top`` None, and
        for END)."""
        config = config or SampleConfig()
        primes = [prime] if isinstance(prime, str) else list(prime)
        if not primes:
            raise ConfigError("no primes given")
        starts = [self.start_ids(p) for p in primes]  # raises now on a bad prime
        have, need = memory_bytes(), self.batch_bytes(config.num_samples * len(primes))
        if have is not None and need > have:  # refused before a row is allocated
            raise ConfigError(f"{config.num_samples * len(primes):,} samples at once need "
                              f"about {gigabytes(need)} of memory; this machine has "
                              f"{gigabytes(have)}: ask for fewer (--num-samples) or run "
                              "several commands")
        rules = self.rules(config.decoding, tuple(config.stop))
        if rules is not None and rules.least() > config.length:
            raise ConfigError(f"regex needs at least {rules.least()} characters; length is "
                              f"{config.length}", field="regex")
        steer = None
        if rules is not None:
            k = config.num_samples
            steer = Steer.join([rules.start(ids if p else []).take([0] * k)
                                for p, ids in zip(primes, starts, strict=True)])
        return self._run(starts, config, steer, top)

    def batch_bytes(self, k: int) -> int:
        """About the memory ``k`` samples generated at once need: per row its own random
        generator (~2.9 kB), the states of every layer, the gates and the logits with
        the arrays picking from them."""
        c = self.checkpoint.config
        return k * (_ROW_RNG_BYTES + 8 * (2 * c.num_layers * c.hidden_size
                                          + GATES[c.cell] * c.hidden_size + 4 * c.vocab_size))

    def _warm(self, starts: list[np.ndarray]) -> tuple[np.ndarray, State]:
        """Logits and state after each start (rows in order), warmed as one batch:
        the longer primes keep stepping while the shorter ones wait."""
        engine = self.engine
        if len(starts) == 1:
            return engine.warm(starts[0][None, :], engine.init_state(1))
        order = sorted(range(len(starts)), key=lambda p: -len(starts[p]))
        lengths = [len(starts[p]) for p in order]
        logits = np.zeros((len(starts), engine.config.vocab_size), np.float32)
        state = engine.init_state(len(starts))
        for t in range(lengths[0]):
            m = sum(n > t for n in lengths)  # rows still reading: a prefix of ``order``
            ids = np.array([starts[p][t] for p in order[:m]], np.int64)
            out, part = engine.step(ids, [s[:m] for s in state])
            for s, new in zip(state, part, strict=True):
                s[:m] = new
            logits[:m] = out
        back = np.argsort(order)
        return logits[back], [s[back] for s in state]

    def _run(self, starts: list[np.ndarray], config: SampleConfig, steer: Steer | None,
             top: int | None) -> Iterator[tuple[int, str, Scored | None]]:
        k, stops, engine, chars = config.num_samples, config.stop, self.engine, self.vocab.chars
        n = k * len(starts)
        seed = fresh_seed() if config.seed is None else config.seed
        rngs = [random.Random(seed + i) for i in range(n)]
        # Warm once per prime; every sample of a prime starts from that same state.
        logits, state = self._warm(starts)
        if k > 1:
            logits, state = np.repeat(logits, k, 0), [np.repeat(s, k, 0) for s in state]
        rows = list(range(n))  # the sample index of each batch row still running
        longest = max(map(len, stops), default=0)
        tails = [""] * n  # the last characters of each sample, to spot a stop string
        by_regex = steer is not None and steer.rules.automaton is not None
        if by_regex and (done := steer.ended() != 0).any():  # type: ignore[union-attr]
            for i in np.flatnonzero(done).tolist():  # the regex matches the empty text
                yield i, END, None
            keep = np.flatnonzero(~done)
            rows, logits = [rows[r] for r in keep], logits[keep]
            state, steer = [s[keep] for s in state], steer.take(keep)  # type: ignore[union-attr]
        for t in range(config.length if rows else 0):
            z = logits if steer is None else steer.adjust(logits, config.length - t)
            if steer is not None and steer.stuck is not None and steer.stuck.any():
                # matched, and no longer match fits in what is left: these samples end here
                for r in np.flatnonzero(steer.stuck).tolist():
                    yield rows[r], END, None
                keep = np.flatnonzero(~steer.stuck)
                rows = [rows[r] for r in keep]
                if not rows:
                    return
                logits, z, state = logits[keep], z[keep], [s[keep] for s in state]
                steer = steer.take(keep)
            ids = pick(z, [rngs[i].random() for i in rows], config.decoding)
            scored = score_rows(logits, ids, top, chars) if top is not None else None
            ends = steer.feed(ids).tolist() if steer is not None else None
            ended = []
            for r, (i, c) in enumerate(zip(rows, ids.tolist(), strict=True)):
                ch = chars[c]
                yield i, ch, None if scored is None else scored[r]
                if by_regex:
                    if ends[r]:  # type: ignore[index]
                        yield i, END, None
                        ended.append(r)
                elif stops:
                    tails[i] = tail = (tails[i] + ch)[-longest:]
                    if any(tail.endswith(s) for s in stops):
                        yield i, END, None
                        ended.append(r)
            if ended:  # drop finished rows so the batch only computes live samples
                keep = np.setdiff1d(np.arange(len(rows)), ended)
                rows = [rows[r] for r in keep]
                if not rows:
                    return
                ids, state = ids[keep], [s[keep] for s in state]
                steer = steer.take(keep) if steer is not None else None
            if t + 1 < config.length:
                logits, state = engine.step(ids, state)
        for i in rows:
            yield i, END, None


def render(events: Iterable[tuple], num_samples: int, head: str | Sequence[str] = "",
           separator: str = "\n") -> Iterator[str]:
    """Samples as plain text in index order: ``head`` (the echoed prime; one per sample
    when a list) before each, ``separator`` between them. The sample being printed
    streams; later ones wait."""
    heads = [head] * num_samples if isinstance(head, str) else list(head)
    waiting: list[list[str]] = [[] for _ in range(num_samples)]
    ended = [False] * num_samples
    current = 0
    yield heads[0]
    for i, ch, *_ in events:
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
            yield separator + heads[current] + "".join(waiting[current])
            waiting[current] = []


def render_jsonl(events: Iterable[tuple], num_samples: int, fields: dict, seed: int,
                 primes: Sequence[str] | None = None) -> Iterator[str]:
    """One JSON line per sample, in index order, as soon as it and those before it end:
    index, seed, text (without the prime), whether a stop string ended it, and ``fields``
    (the settings); ``prime`` per sample from ``primes`` if given; ``logprobs`` (OpenAI's
    object, ``scores.openai``) when the events carry scores."""
    from charrnn.safetext import dumps

    texts: list[list[str]] = [[] for _ in range(num_samples)]
    scores: list[list[Scored | None]] = [[] for _ in range(num_samples)]
    ended = [False] * num_samples
    current = 0
    stops = tuple(fields.get("stop", ()))
    for i, ch, *scored in events:
        if ch != END:
            texts[i].append(ch)
            scores[i].append(scored[0] if scored else None)
            continue
        ended[i] = True
        while current < num_samples and ended[current]:
            text = "".join(texts[current])
            record = {"index": current, "seed": seed + current, "text": text,
                      "stopped": bool(stops) and text.endswith(stops), **fields}
            if primes is not None:
                record["prime"] = primes[current]
            if any(s is not None for s in scores[current]):
                record["logprobs"] = openai(text, scores[current])
            yield dumps(record) + "\n"
            texts[current], scores[current] = [], []
            current += 1
