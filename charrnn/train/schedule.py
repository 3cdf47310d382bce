"""When to validate and when to stop: a run's budgets (time, steps, epochs) as a schedule,
and the learning rate along it (``lr_at``).

- ``fraction``: how far through its budget the run is, which drives the learning rate.
  With a time budget the clock counts the command's set-up too (corpus, probe), and
  training stops early enough to leave room for the last validation and its checkpoints
  (``reserve``), so that the run ends by its deadline.
- ``due``: a validation every ``--eval-every`` steps, or with a time budget every tenth of
  it, at least ``MIN_EVAL_GAP`` apart and spaced so that validating takes at most a tenth
  of the time; with a step or epoch budget every tenth of it.
- ``deadline``: when a validation must give up so that the run still ends within its
  budget's grace, max(5 s, 5%), with its checkpoint written.
"""

from __future__ import annotations

import math
import time

from charrnn.config import TrainConfig

MIN_EVAL_GAP = 30.0  # seconds between time-based validations, at the least


def lr_at(cfg: TrainConfig, step: int, fraction: float) -> float:
    """Linear warm-up over the first steps, then cosine decay to the floor at fraction 1."""
    warm = min(1.0, (step + 1) / cfg.warmup_steps) if cfg.warmup_steps else 1.0
    decay = 0.5 * (1.0 + math.cos(math.pi * min(max(fraction, 0.0), 1.0)))
    return cfg.lr * warm * (cfg.min_lr_ratio + (1.0 - cfg.min_lr_ratio) * decay)


class Schedule:
    """One training session's clock and milestones."""

    def __init__(self, cfg: TrainConfig, steps_per_epoch: int, elapsed_before: float) -> None:
        self.cfg = cfg
        self.total_steps = min(cfg.max_steps or math.inf,
                               (cfg.epochs or math.inf) * steps_per_epoch)
        self.eval_steps = cfg.eval_every or (
            0 if cfg.max_time else max(1, int(min(self.total_steps, 10**9) // 10)))
        self.eval_seconds = (min(max(cfg.max_time / 10, MIN_EVAL_GAP), 600.0)
                             if cfg.max_time else 0.0)
        self.gap = self.eval_seconds  # widened so validating takes at most a tenth
        self.start = self.last_eval = time.perf_counter()
        self.elapsed_before = elapsed_before  # earlier sessions and this one's set-up
        self.end = (self.start + cfg.max_time - elapsed_before if cfg.max_time
                    else math.inf)  # perf_counter when the time budget runs out
        self.reserve = 0.0  # seconds kept back for the last validation and its save

    def elapsed(self) -> float:
        """The run's wall time over all its sessions."""
        return self.elapsed_before + time.perf_counter() - self.start

    def fraction(self, step: int) -> float:
        """How far through its budget the run is: 1 or more means stop."""
        cfg, by_steps = self.cfg, 0.0
        if self.total_steps < math.inf:
            by_steps = step / self.total_steps
        if not cfg.max_time:
            return by_steps
        return max(by_steps, self.elapsed() / max(cfg.max_time - self.reserve, 1e-9))

    def due(self, step: int) -> bool:
        if self.eval_steps and step % self.eval_steps == 0:
            return True
        return bool(self.eval_seconds) and time.perf_counter() - self.last_eval >= self.gap

    def validated(self, seconds: float) -> None:
        """A validation (with its checkpoints) took ``seconds``: keep that much back for
        the last one, and space validations so that they take at most a tenth of the
        time (a big held-out sample, a slow disk)."""
        self.reserve = seconds
        self.gap = max(self.eval_seconds, 9 * seconds)
        self.last_eval = time.perf_counter()

    def deadline(self, save_seconds: float) -> float:
        """When a validation must give up (inf without a time budget)."""
        grace = 0.5 * max(5.0, 0.05 * (self.cfg.max_time or 0.0))
        return self.end + grace - save_seconds
