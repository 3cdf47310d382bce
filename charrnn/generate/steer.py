"""The controls that act on the logits before ``pick``, and the per-row state some need.

``Rules`` is a ``Decoding`` made concrete for one vocabulary (and the sample's stop
strings): the bias vector of ``logit_bias`` and ``ban``, the regex's automaton
(``automaton.py``), the DRY settings. It is built once per model and decoding and shared.

``Steer`` is one batch's state under those rules: for each row, its automaton state and
its DRY history (the prime and everything generated). Whoever samples drives it the
same way: ``read`` the prime, then each step ``adjust`` the logits, ``pick``, ``feed``
the picked ids (which says which rows the regex has ended), and ``take`` the rows that
go on (a fork repeats a row; rows of several steers ``join``). So the controls compose
with temperature, top-k, top-p and min-p (applied after them by ``pick``), with a batch
of samples, and with a server's rows joining and leaving.

DRY (Don't Repeat Yourself, as llama.cpp and text-generation-webui define it, lengths in
characters): if the last L characters of the text, none of them a breaker, also occur
earlier followed by character c, then c's logit loses multiplier * base^(L - allowed)
whenever L >= allowed; the longest such L counts. Kept incrementally: each row indexes
the end positions of every breaker-free run of ``allowed`` characters, and carries the
earlier positions that match its current ending with their match lengths; a step looks
up the new ending and extends those matches by one (the cost is the number of earlier
occurrences of the last ``allowed`` characters, not the length of the text).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from charrnn.errors import ConfigError
from charrnn.generate.automaton import Automaton, build
from charrnn.generate.decoding import Decoding

_LOG_FLOAT_MAX = 88.7228391  # as llama.cpp: the exponent is capped so the penalty stays finite


@dataclass(frozen=True)
class Dry:
    multiplier: float
    base: float
    allowed: int
    breakers: frozenset[int]  # ids
    cap: int  # the largest exponent used

    def penalty(self, length: int) -> float:
        return self.multiplier * self.base ** min(length - self.allowed, self.cap)


class Rules:
    """The pre-``pick`` controls of a decoding over a vocabulary (immutable, shared)."""

    def __init__(self, decoding: Decoding, chars: tuple[str, ...],
                 stops: tuple[str, ...] = ()) -> None:
        index = {c: i for i, c in enumerate(chars)}
        bias = np.zeros(len(chars))
        for c, b in decoding.logit_bias:  # characters the model never saw: never produced
            if c in index:
                bias[index[c]] = b
        for c in decoding.ban:
            if c in index:
                bias[index[c]] = -np.inf
        if np.isinf(bias).all():
            raise ConfigError("ban leaves no character to generate", field="ban")
        self.bias: np.ndarray | None = bias if bias.any() else None
        self.automaton: Automaton | None = None
        if decoding.regex is not None:
            banned = frozenset(np.flatnonzero(np.isneginf(bias)).tolist())
            self.automaton = build(decoding.regex, chars, stops, banned)
        self.dry: Dry | None = None
        if decoding.dry_multiplier > 0:
            base = decoding.dry_base
            cap = int(_LOG_FLOAT_MAX / math.log(base)) if base > 1.000001 else 0
            self.dry = Dry(decoding.dry_multiplier, base, decoding.dry_allowed_length,
                           frozenset(index[c] for c in decoding.dry_breakers if c in index),
                           cap)

    @property
    def active(self) -> bool:
        """Whether there is anything to do before ``pick``."""
        return self.bias is not None or self.automaton is not None or self.dry is not None

    def least(self) -> int:
        """The fewest characters a sample needs (the regex's shortest match)."""
        return 0 if self.automaton is None else self.automaton.least

    def start(self, prime_ids: list[int] | np.ndarray | None = None) -> Steer:
        """A steer of one row that has read ``prime_ids`` (fork it with ``take``)."""
        steer = Steer(self, 1)
        steer.read([] if prime_ids is None else prime_ids)
        return steer


class _History:
    """One row's text for DRY, with the index of its breaker-free runs."""

    __slots__ = ("text", "shared", "own", "matches", "run")

    def __init__(self) -> None:
        self.text: list[int] = []
        self.shared: list[dict[tuple[int, ...], list[int]]] = []  # indexes of the prefix
        self.own: dict[tuple[int, ...], list[int]] = {}  # ... and of this row's own text
        self.matches: dict[int, int] = {}  # earlier end position -> match length >= allowed
        self.run = 0  # characters since the last breaker

    def fork(self) -> _History:
        """A copy that shares the (now frozen) index of the text so far."""
        h = _History()
        h.text, h.matches, h.run = list(self.text), dict(self.matches), self.run
        h.shared = self.shared + [self.own] if self.own else list(self.shared)
        self.shared, self.own = h.shared, {}  # this row, too, stops writing the old index
        return h

    def add(self, c: int, dry: Dry) -> None:
        text = self.text
        text.append(c)
        if c in dry.breakers:
            self.run, self.matches = 0, {}
            return
        self.run += 1
        if self.run < dry.allowed:
            self.matches = {}
            return
        key = tuple(text[-dry.allowed:])
        old, matches = self.matches, {}
        for index in (*self.shared, self.own):
            for i in index.get(key, ()):
                matches[i] = old.get(i - 1, dry.allowed - 1) + 1
        self.matches = matches
        self.own.setdefault(key, []).append(len(text) - 1)

    def penalties(self, dry: Dry) -> dict[int, float]:
        """Character id -> the penalty on its logit now."""
        longest: dict[int, int] = {}
        text = self.text
        for i, m in self.matches.items():
            c = text[i + 1]
            if m > longest.get(c, 0) and c not in dry.breakers:
                longest[c] = m
        return {c: dry.penalty(m) for c, m in longest.items()}


class Steer:
    """The state of a batch's rows under ``Rules`` (see the module docstring)."""

    def __init__(self, rules: Rules, rows: int) -> None:
        self.rules = rules
        self.rows = rows
        a = rules.automaton
        self.states = None if a is None else np.full(rows, a.start, np.int64)
        self.histories = None if rules.dry is None else [_History() for _ in range(rows)]
        self.stuck: np.ndarray | None = None  # after ``adjust``: rows with nothing allowed
        #  (their text has matched, and no longer match fits in what is left): they end

    def __len__(self) -> int:
        return self.rows

    def read(self, ids: list[int] | np.ndarray) -> None:
        """Text every row has read before sampling (the prime): DRY's history only."""
        if self.histories is not None and self.rules.dry is not None:
            for c in np.asarray(ids, np.int64).tolist():
                for h in self.histories:
                    h.add(c, self.rules.dry)

    def ended(self) -> np.ndarray:
        """Per row: 0 goes on; -1 the regex is complete; k > 0 it ended with a stop
        string of k characters (``Automaton.ends``)."""
        a = self.rules.automaton
        if a is None or self.states is None:
            return np.zeros(len(self), np.int32)
        return a.ends[self.states]

    def adjust(self, logits: np.ndarray, left: int | np.ndarray) -> np.ndarray:
        """The logits (B, V) with the rules applied: bias and bans, DRY penalties, and -inf
        where the regex forbids a character or could not end within ``left`` characters
        (this one included)."""
        rules = self.rules
        z = logits.astype(np.float64)
        if rules.bias is not None:
            z += rules.bias
        if self.histories is not None and rules.dry is not None:
            for r, h in enumerate(self.histories):
                if h.matches:
                    pen = h.penalties(rules.dry)
                    z[r, list(pen)] -= list(pen.values())
        a = rules.automaton
        if a is not None and self.states is not None:
            barred = a.ahead[self.states] > np.asarray(left, np.int64).reshape(-1, 1) - 1
            z[barred] = -np.inf
            self.stuck = np.asarray(barred.all(axis=1))
        return z

    def feed(self, ids: np.ndarray) -> np.ndarray:
        """Each row's picked character; returns ``ended()`` after it."""
        if self.histories is not None and self.rules.dry is not None:
            for h, c in zip(self.histories, ids.tolist(), strict=True):
                h.add(c, self.rules.dry)
        a = self.rules.automaton
        if a is not None and self.states is not None:
            self.states = a.step[self.states, ids].astype(np.int64)
        return self.ended()

    def take(self, rows: list[int] | np.ndarray) -> Steer:
        """A steer of these rows, in this order; a row named twice is forked. This steer
        is used up (its rows' histories move to the new one)."""
        rows = [int(r) for r in rows]
        out = Steer.__new__(Steer)
        out.rules, out.rows, out.stuck = self.rules, len(rows), None
        out.states = None if self.states is None else self.states[rows]
        out.histories = None
        if self.histories is not None:
            seen: set[int] = set()
            out.histories = []
            for r in rows:
                h = self.histories[r]
                out.histories.append(h.fork() if r in seen else h)
                seen.add(r)
        return out

    def split(self) -> list[Steer]:
        """One steer per row (this one is used up)."""
        return [self.take([r]) for r in range(len(self))]

    @staticmethod
    def join(parts: list[Steer]) -> Steer:
        """The rows of several steers of the same rules, one after the other (they are
        used up)."""
        out = parts[0].take([])
        out.rows = sum(p.rows for p in parts)
        if out.states is not None:
            out.states = np.concatenate([p.states for p in parts])  # type: ignore[misc]
        if out.histories is not None:
            out.histories = [h for p in parts for h in p.histories or ()]
        return out
