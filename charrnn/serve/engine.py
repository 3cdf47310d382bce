"""Continuous batching: every live stream of a model advances in one numpy step per character.

A char-RNN's whole context is its recurrent state, a few KB per stream, so concurrent
requests need no paging or padding: each is one row of the batch. A step reads the
weights once for all rows, which is what makes it cheap (at batch 1 a step is bound by
reading the weights, so 64 rows cost far less than 64 steps).

- A request joins at the next step as one *warming* row per prompt that feeds its prime
  one character per step (a long prime never stalls the others; with ``echo`` and
  ``logprobs`` each step also scores the prompt's next character); when the prime is in,
  the row forks into its choices, each with its own ``random.Random(seed + i)``, its own
  decoding controls and its own ``Steer`` (DRY's history, the regex's state).
- A choice that ends (length or a stop string) or whose client went away leaves the
  batch at once; the others carry on with their state untouched.
- Each step, each choice's steer adjusts its logits, it draws one uniform number and
  ``charrnn.generate.pick`` turns it into a character, exactly as ``Sampler`` does, so a
  seed gives the text that ``charrnn sample --seed`` gives (the rare last-bit caveat of
  batching in sampler.py applies).

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
from charrnn.generate.scores import Scored, score_rows
from charrnn.generate.steer import Rules, Steer

log = logging.getLogger("charrnn.serve")


@dataclass(frozen=True)
class Settings:
    """How one request samples (the OpenAI fields, in characters)."""

    max_chars: int = 16
    decoding: Decoding = Decoding()
    stop: tuple[str, ...] = ()
    rules: Rules | None = None  # the decoding's pre-pick controls (``Sampler.rules``)
    logprobs: int | None = None  # alternatives to report per character; None: none
    scored: bool = False  # keep each character's log-probability (logprobs, best_of)


Piece = tuple[str, list[Scored | None] | None]
"""Released text, and its characters' scores when the request wants them."""


class Choice:
    """One generated text: its random numbers, its steer, and its output until the reader
    takes it.

    With stop strings, characters that could be the start of one are held back, so that
    a stop string is never sent (as the OpenAI API does) even when streamed. With a
    regex, its automaton says when the text ended, and whether with a stop string.
    """

    def __init__(self, index: int, seed: int, settings: Settings) -> None:
        self.index = index
        self.rng = random.Random(seed)
        self.settings = settings
        self.steer: Steer | None = None
        self.out: deque[Piece] = deque()
        self.produced = 0  # characters sampled, stop string included
        self.logprob = 0.0  # their summed log-probability (with ``settings.scored``)
        self.held = ""
        self.held_scores: list[Scored | None] = []
        self.finish_reason: str | None = None

    def begin(self, steer: Steer | None, echo: str = "",
              echo_scores: list[Scored | None] | None = None) -> bool:
        """The prime is read: release the echoed prompt and take the row's steer; True
        if the choice is already over (max_tokens 0, or a regex the empty text
        completes)."""
        self.steer = steer
        if echo:
            self._release(echo, echo_scores if self.settings.logprobs is not None else None)
        if self.settings.max_chars == 0:
            self.finish_reason = "length"
        elif steer is not None and steer.ended()[0]:
            self.finish_reason = "stop"
        return self.finish_reason is not None

    def add(self, ch: str, scored: Scored | None = None, end: int = 0) -> bool:
        """Take one sampled character (its score, and the steer's verdict ``end``: -1 a
        complete regex, k > 0 a stop string of k characters); True when it has ended."""
        self.produced += 1
        if scored is not None:
            self.logprob += scored[0]
        settings = self.settings
        if not settings.stop:  # nothing held back: the common case, kept short
            self._release(ch, [scored])
            if end or self.produced >= settings.max_chars:
                self.finish_reason = "stop" if end else "length"
                return True
            return False
        held, scores = self.held + ch, [*self.held_scores, scored]
        if settings.rules is not None and settings.rules.automaton is not None:
            stopped, cut = end != 0, max(end, 0)  # the automaton knows (stop strings too)
        else:
            cut = next((len(s) for s in settings.stop if held.endswith(s)), 0)
            stopped = cut > 0
        if stopped:
            self._release(held[:len(held) - cut], scores[:len(scores) - cut])
            self.held, self.held_scores = "", []
            self.finish_reason = "stop"
            return True
        # Keep the longest ending that may still grow into a stop string.
        k = next((k for k in range(len(held) + 1)
                  if any(s.startswith(held[k:]) for s in settings.stop)), len(held))
        self._release(held[:k], scores[:k])
        self.held, self.held_scores = held[k:], scores[k:]
        if self.produced >= settings.max_chars:
            self._release(self.held, self.held_scores)
            self.held, self.held_scores = "", []
            self.finish_reason = "length"
            return True
        return False

    def finish(self, reason: str) -> None:
        """End without another character (what is held back is released)."""
        self._release(self.held, self.held_scores)
        self.held, self.held_scores = "", []
        self.finish_reason = reason

    def _release(self, text: str, scores: list[Scored | None] | None) -> None:
        if text:
            self.out.append((text, None if self.settings.logprobs is None else scores))

    def take(self) -> Piece:
        """Everything released since the last call (safe against the engine thread)."""
        parts: list[str] = []
        scores: list[Scored | None] = []
        while True:
            try:
                text, s = self.out.popleft()
            except IndexError:
                return "".join(parts), (scores if self.settings.logprobs is not None
                                        else None)
            parts.append(text)
            scores += s or ()

    @property
    def mean_logprob(self) -> float:
        return self.logprob / self.produced if self.produced else 0.0


class Job:
    """One prompt: its ids and its choices, how to wake its reader, and (``steer``) its
    prime read by the decoding's rules.

    ``wake`` is called from the engine thread when output is ready (or the job failed),
    at most once until the reader calls ``woken``; it must be cheap and thread-safe.
    With ``echo`` the choices' text starts with the prompt, scored while the prime is
    read when the choices want logprobs (its first character has no context: None).
    """

    def __init__(self, ids: np.ndarray, choices: list[Choice], wake: Callable[[], None],
                 steer: Steer | None = None, echo: str = "") -> None:
        self.ids = ids
        self.choices = choices
        self._wake = wake
        self.steer = steer
        self.echo = echo
        top = choices[0].settings.logprobs if choices else None
        self.prompt_top = top if echo else None  # score the prompt with this many alternatives
        self.prompt_scores: list[Scored | None] = [None]
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
        scoring: list[tuple[int, Job]] = []  # warming rows whose prompt is being scored
        touched: dict[int, Job] = {}
        for i, row in enumerate(self.rows):
            if row.choice is not None:
                draws.append((i, row, row.choice))
                continue
            row.pos += 1
            job = row.job
            if job.prompt_top is not None and row.pos < len(job.ids):
                scoring.append((i, job))
            if row.pos < len(job.ids):  # still reading the prime
                keep.append(i)
                rows.append(row)
                ids.append(int(job.ids[row.pos]))
                continue
            # prime read: one row per choice, all from this state
            steers = ([None] * len(job.choices) if job.steer is None
                      else job.steer.take([0] * len(job.choices)).split())
            touched[id(job)] = job
            for c, st in zip(job.choices, steers, strict=True):
                if not c.begin(st, job.echo, job.prompt_scores):
                    draws.append((i, _Row(job, c, row.pos), c))
        if scoring:
            idx = [i for i, _ in scoring]
            nxt = np.array([int(job.ids[self.rows[i].pos]) for i, job in scoring])
            widest = max(j.prompt_top or 0 for _, j in scoring)
            for (_, job), (lp, alts) in zip(scoring, score_rows(logits[idx], nxt, widest,
                                                                self.chars), strict=True):
                job.prompt_scores.append((lp, alts[:job.prompt_top or 0]))
        for i, row, choice, char, scored, end in self._sample(logits, draws):
            touched[id(row.job)] = row.job
            if not choice.add(self.chars[char], scored, end):
                keep.append(i)
                rows.append(row)
                ids.append(char)
        self._keep(keep, rows, np.array(ids, np.int64))
        for job in touched.values():
            job.signal()

    def _sample(self, logits: np.ndarray, draws: list[tuple[int, _Row, Choice]]
                ) -> list[tuple[int, _Row, Choice, int, Scored | None, int]]:
        """One character per drawing row, grouped by decoding (one ``pick`` per group);
        each row's steer adjusts its logits first and reads the character after."""
        groups: dict[Decoding, list[tuple[int, _Row, Choice]]] = {}
        for draw in draws:
            groups.setdefault(draw[2].settings.decoding, []).append(draw)
        out = []
        for decoding, members in groups.items():
            idx = [i for i, _, _ in members]
            part = logits if idx == list(range(len(logits))) else logits[idx]
            if any(choice.steer is not None for _, _, choice in members):
                part = part.astype(np.float64)
                stuck = []
                for r, (_, _, choice) in enumerate(members):
                    if choice.steer is not None:
                        left = choice.settings.max_chars - choice.produced
                        part[r] = choice.steer.adjust(part[r:r + 1], left)[0]
                        if choice.steer.stuck is not None and choice.steer.stuck[0]:
                            stuck.append(r)  # matched; no longer match fits: it ends
                if stuck:
                    for r in stuck:
                        members[r][2].finish("length")
                        members[r][1].job.signal()
                    live = [r for r in range(len(members)) if r not in set(stuck)]
                    members, idx, part = [members[r] for r in live], [idx[r] for r in live], \
                        part[live]
                    if not members:
                        continue
            picked = pick(part, [choice.rng.random() for _, _, choice in members], decoding)
            tops = [choice.settings.logprobs for _, _, choice in members
                    if choice.settings.scored]
            scores: list[Scored | None] = [None] * len(members)
            if tops:
                wanted = [r for r, (_, _, c) in enumerate(members) if c.settings.scored]
                for r, s in zip(wanted, score_rows(logits[[idx[r] for r in wanted]],
                                                   picked[wanted], max(t or 0 for t in tops),
                                                   self.chars), strict=True):
                    top = members[r][2].settings.logprobs or 0
                    scores[r] = (s[0], s[1][:top])
            for r, ((i, row, choice), c) in enumerate(zip(members, picked.tolist(),
                                                           strict=True)):
                end = 0
                if choice.steer is not None:
                    end = int(choice.steer.feed(np.array([c]))[0])
                out.append((i, row, choice, c, scores[r], end))
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
