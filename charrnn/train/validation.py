"""What a validation scores and how long it may take.

The sample is fixed for the run, a few windows spread over the held-out text
(``val_windows``), so that successive losses compare. With a time budget it is also sized
to it, once, at the first validation: one validation may take at most ``SHARE`` of the
budget at the speed this machine scores (guessed from the training speed until it has
been measured), so a huge held-out text or a slow, busy machine cannot eat the budget.
Every validation is scored against the run's deadline: one that would end past it stops
and is skipped, and the run says so, rather than overrun.
"""

from __future__ import annotations

import time

import numpy as np

from charrnn.data.batches import val_windows
from charrnn.model.network import CharRNN
from charrnn.score.loss import score_ids

SHARE = 0.05  # of a time budget: one validation at most
MIN_SECONDS = 1.0  # a validation may always take this long
MIN_CHARS = 2_000  # the smallest sample worth a loss
GUESS = 2.0  # scoring chars/s per training char/s before it is measured (forward only:
# measured 3-6x on 2x256-2x512 LSTMs on 2 cores; 2 is on the safe side)


class Validation:
    """The held-out sample of a run and how fast this machine scores it."""

    def __init__(self, held_out: np.ndarray, max_chars: int, max_time: float | None) -> None:
        self.held_out, self.max_time = held_out, max_time
        self.windows = val_windows(held_out, max_chars)
        self.rate: float | None = None  # scoring chars/s, measured at each validation
        self.sized = max_time is None  # a budget's sample is sized at the first validation

    @property
    def chars(self) -> int:
        return sum(len(w) for w in self.windows)

    def _rate(self, train_rate: float) -> float:
        """Scoring chars/s: measured, else guessed from the training speed."""
        return self.rate or GUESS * max(train_rate, 1.0)

    def _allowed(self) -> float:
        """Seconds one validation may take under the time budget."""
        assert self.max_time is not None
        return max(SHARE * self.max_time, MIN_SECONDS)

    def seconds(self, train_rate: float) -> float:
        """How long scoring the sample should take: measured speed, else the guess."""
        return self.chars / self._rate(train_rate)

    def expected_seconds(self, train_rate: float) -> float:
        """How long a validation should take, before the sample is sized: at most the
        share of the budget sizing will allow."""
        seconds = self.seconds(train_rate)
        if self.sized or self.max_time is None:
            return seconds
        return min(seconds, self._allowed())

    def size(self, train_rate: float) -> str | None:
        """Under a time budget, at the first validation: shrink the sample so that scoring
        it takes at most ``SHARE`` of the budget; a note for the user when it shrank."""
        if self.sized or self.max_time is None or not (self.rate or train_rate):
            return None  # no budget, sized already, or no speed known yet
        self.sized = True
        allowed, rate = self._allowed(), self._rate(train_rate)
        if self.chars / rate <= allowed:
            return None
        before = self.chars
        self.windows = val_windows(self.held_out, max(MIN_CHARS, int(allowed * rate)))
        if self.chars >= before:
            return None
        return (f"validation scores {self.chars:,} of the {before:,} held-out characters it "
                f"would sample, so that it takes about {allowed:.0f}s ({SHARE:.0%} of the "
                f"time budget) at {rate:,.0f} chars/s")

    def score(self, model: CharRNN, until: float | None = None) -> float:
        """Mean loss (nats/char) over the sample; ``score.loss.OutOfTime`` if ``until``
        (a ``time.perf_counter()`` deadline) comes first."""
        t0 = time.perf_counter()
        scores = [score_ids(model, w, until=until) for w in self.windows]
        chars = sum(s.chars for s in scores)
        self.rate = self.chars / max(time.perf_counter() - t0, 1e-9)
        return sum(s.nats for s in scores) / max(chars, 1)
