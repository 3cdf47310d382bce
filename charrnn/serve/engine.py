"""Continuous batching: every live stream of a model advances in one numpy step per character.

A char-RNN's whole context is its recurrent state, a few KB per stream, so concurrent
requests need no paging or padding: each is one row of the batch. A step reads the
weights once for all rows, which is what makes it cheap (at batch 1 a step is bound by
reading the weights, so 64 rows cost far less than 64 steps).

- A request joins at the next step as one *warming* row that feeds its prime one
  character per step (a long prime never stalls the others); when the prime is in, the
  row forks into its ``n`` choices, each with its own ``random.Random(seed + i)`` and its
  own decoding controls.
- A choice that ends (length or a stop string) or whose client went away leaves the
  batch at once; the others carry on with their state untouched.
- Each step, each choice draws one uniform number and ``charrnn.generate.pick`` turns it
  into a character, exactly as ``Sampler`` does, so a seed gives the text that
  ``charrnn sample --seed`` gives (the rare last-bit caveat of batching in sample.py
  applies).

The engine runs in one thread of its own; output goes to a per-choice deque that the
HTTP side drains, and the HTTP side is woken at most once per read, not once per
character, so a slow reader never holds up the batch.
"""

from __future__ import annotations

import logging
import random
import threading
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from charrnn.generate.decoding import Decoding
from charrnn.generate.pick import pick
from charrnn.generate.sampler import Sampler

log = logging.getLogger("charrnn.serve")


@dataclass(frozen=True)
class Settings:
    """How one request samples (the OpenAI fields, in characters)."""

    max_chars: int = 16
    decoding: Decoding = Decoding()
    stop: tuple[str, ...] = ()


class Choice:
    """One generated text: its random numbers, and its output until the reader takes it.

    With stop strings, characters that could be the start of one are held back, so that
    a stop string is never sent (as the OpenAI API does) even when streamed.
    """

    def __init__(self, index: int, seed: int, settings: Settings) -> None:
        self.index = index
        self.rng = random.Random(seed)
        self.settings = settings
        self.out: deque[str] = deque()
        self.produced = 0  # characters sampled, stop string included
        self.held = ""
        self.finish_reason: str | None = None

    def add(self, ch: str) -> bool:
        """Take one sampled character; True when this choice has ended."""
        self.produced += 1
        stops = self.settings.stop
        if stops:
            held = self.held + ch
            for s in stops:
                if held.endswith(s):
                    self._release(held[:-len(s)])
                    self.held = ""
                    self.finish_reason = "stop"
                    return True
            # Keep the longest ending that may still grow into a stop string.
            k = next(k for k in range(len(held) + 1)
                     if any(s.startswith(held[k:]) for s in stops))
            self._release(held[:k])
            self.held = held[k:]
        else:
            self.out.append(ch)
        if self.produced >= self.settings.max_chars:
            self._release(self.held)
            self.held = ""
            self.finish_reason = "length"
            return True
        return False

    def _release(self, text: str) -> None:
        if text:
            self.out.append(text)

    def take(self) -> str:
        """Everything released since the last call (safe against the engine thread)."""
        parts = []
        while True:
            try:
                parts.append(self.out.popleft())
            except IndexError:
                return "".join(parts)


class Job:
    """One request: the prime's ids and its choices, and how to wake its reader.

    ``wake`` is called from the engine thread when output is ready (or the job failed),
    at most once until the reader calls ``woken``; it must be cheap and thread-safe.
    """

    def __init__(self, ids: np.ndarray, choices: list[Choice],
                 wake: Callable[[], None]) -> None:
        self.ids = ids
        self.choices = choices
        self._wake = wake
        self._signalled = False
        self.cancelled = False  # set by the reader; the engine drops the rows next step
        self.error: str | None = None

    @property
    def done(self) -> bool:
        return self.error is not None or all(c.finish_reason for c in self.choices)

    def signal(self) -> None:
        if not self._signalled:
            self._signalled = True
            self._wake()

    def woken(self) -> None:
        """The reader is about to drain the output: the next output wakes it again."""
        self._signalled = False


class _Row:
    __slots__ = ("job", "choice", "pos")

    def __init__(self, job: Job, choice: Choice | None, pos: int) -> None:
        self.job, self.choice, self.pos = job, choice, pos  # choice None: still warming


class Batch:
    """The live rows of one model: their next input ids and their stacked states."""

    def __init__(self, model: Sampler) -> None:
        self.model = model
        self.engine = model.engine
        self.chars = model.vocab.chars
        self.rows: list[_Row] = []
        self.ids = np.zeros(0, np.int64)
        self.state = self.engine.init_state(0)
        self.joining: list[Job] = []

    @property
    def busy(self) -> bool:
        return bool(self.rows or self.joining)

    def _admit(self, jobs: list[Job]) -> None:
        """New requests become warming rows, starting from the zero state."""
        self.rows += [_Row(job, None, 0) for job in jobs]
        self.ids = np.concatenate([self.ids, [int(job.ids[0]) for job in jobs]]).astype(np.int64)
        fresh = self.engine.init_state(len(jobs))
        self.state = [np.concatenate([s, f]) for s, f in zip(self.state, fresh, strict=True)]

    def step(self, jobs: list[Job]) -> None:
        """Admit ``jobs``, drop cancelled rows, advance every row by one character."""
        if any(r.job.cancelled for r in self.rows):
            live = [i for i, r in enumerate(self.rows) if not r.job.cancelled]
            self._keep(live, [self.rows[i] for i in live], self.ids[live])
        if jobs:
            self._admit(jobs)
        if not self.rows:
            return
        logits, self.state = self.engine.step(self.ids, self.state)
        keep: list[int] = []  # batch row of each next row (a fork repeats it)
        rows: list[_Row] = []
        ids: list[int] = []
        draws: list[tuple[int, _Row, Choice]] = []  # rows that sample a character now
        for i, row in enumerate(self.rows):
            if row.choice is not None:
                draws.append((i, row, row.choice))
                continue
            row.pos += 1
            if row.pos < len(row.job.ids):  # still reading the prime
                keep.append(i)
                rows.append(row)
                ids.append(int(row.job.ids[row.pos]))
            else:  # prime read: one row per choice, all from this state
                draws += [(i, _Row(row.job, c, row.pos), c) for c in row.job.choices]
        touched: dict[int, Job] = {}
        for i, row, choice, c in self._sample(logits, draws):
            touched[id(row.job)] = row.job
            if not choice.add(self.chars[c]):
                keep.append(i)
                rows.append(row)
                ids.append(c)
        self._keep(keep, rows, np.array(ids, np.int64))
        for job in touched.values():
            job.signal()

    def _sample(self, logits: np.ndarray, draws: list[tuple[int, _Row, Choice]]
                ) -> list[tuple[int, _Row, Choice, int]]:
        """One character per drawing row, grouped by decoding (one ``pick`` per group)."""
        groups: dict[Decoding, list[tuple[int, _Row, Choice]]] = {}
        for draw in draws:
            groups.setdefault(draw[2].settings.decoding, []).append(draw)
        out = []
        for decoding, members in groups.items():
            idx = [i for i, _, _ in members]
            part = logits if idx == list(range(len(logits))) else logits[idx]
            picked = pick(part, [choice.rng.random() for _, _, choice in members], decoding)
            out += [(i, row, choice, c)
                    for (i, row, choice), c in zip(members, picked.tolist(), strict=True)]
        return out

    def _keep(self, keep: list[int], rows: list[_Row], ids: np.ndarray) -> None:
        """Rows ``keep`` of the state, in that order, become the batch."""
        if keep != list(range(len(self.rows))):
            self.state = [s[keep] for s in self.state]
        self.rows, self.ids = rows, ids

    def fail(self, message: str) -> None:
        for job in {id(r.job): r.job for r in self.rows}.values():
            job.error = message
            job.signal()
        self.rows, self.ids, self.state = [], np.zeros(0, np.int64), self.engine.init_state(0)


class Engine:
    """One thread stepping every model that has live streams, round robin."""

    def __init__(self) -> None:
        self._batches: dict[int, Batch] = {}  # by id(model)
        self._cond = threading.Condition()
        self._stopping = False
        self._thread = threading.Thread(target=self._loop, name="charrnn-engine", daemon=True)
        self._thread.start()

    def submit(self, model: Sampler, job: Job) -> None:
        """Queue a job; it joins its model's batch at the next step."""
        with self._cond:
            batch = self._batches.get(id(model))
            if batch is None:
                batch = self._batches[id(model)] = Batch(model)
            batch.joining.append(job)
            self._cond.notify()

    def rows(self) -> int:
        """Rows being stepped now, all models together (warming rows count once)."""
        with self._cond:
            return sum(len(b.rows) for b in self._batches.values())

    def stop(self) -> None:
        with self._cond:
            self._stopping = True
            self._cond.notify()
        self._thread.join(timeout=5)

    def _loop(self) -> None:
        while True:
            with self._cond:
                while not self._stopping and not any(b.busy for b in self._batches.values()):
                    self._cond.wait()
                if self._stopping:
                    return
                work = []
                for key, b in list(self._batches.items()):
                    if not b.busy:  # an idle batch (perhaps of a replaced checkpoint) goes
                        del self._batches[key]
                        continue
                    work.append((b, b.joining))
                    b.joining = []
            for batch, jobs in work:
                try:
                    batch.step(jobs)
                except Exception as e:  # a bug must not take the server down
                    log.exception("engine step failed")
                    for job in jobs:
                        job.error = f"{type(e).__name__}: {e}"
                        job.signal()
                    batch.fail(f"{type(e).__name__}: {e}")
