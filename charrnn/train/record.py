"""What the loop writes down: one line per log interval, validation and preview in the
run's metrics log (``runs.metrics``, rank 0 only), each also handed to the callbacks'
``on_record`` (the TensorBoard writer mirrors them). The metrics log is the source of
truth; a callback only ever sees what was written there.

A train line holds the interval's mean loss, the mean and largest gradient norm before
clipping, and the share of its steps that were clipped: explosions and clipping show in
the log (``charrnn report`` draws them). The norm is the one the loop already reads back
each step for its divergence check, so logging it adds no sync point.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from charrnn.runs.metrics import MetricsLog
from charrnn.train.events import Callbacks, Progress


@dataclass
class Interval:
    """The train steps since the last train line."""

    clip: float  # the clipping threshold; 0: no clipping, so nothing is ever clipped
    loss: float = 0.0  # sums over the interval's steps
    norm: float = 0.0
    top: float = 0.0  # the largest norm
    clipped: int = 0
    steps: int = 0

    def add(self, loss: float, norm: float) -> None:
        """One step: its loss and its gradient norm before clipping (Python floats)."""
        self.loss, self.norm, self.steps = self.loss + loss, self.norm + norm, self.steps + 1
        self.top = max(self.top, norm)
        # clip_grad_norm_ scales by clip / (norm + 1e-6) when that is below 1
        self.clipped += bool(self.clip) and norm + 1e-6 > self.clip

    def take(self) -> dict[str, float]:
        """The interval's fields of a train line; starts the next interval."""
        n = max(self.steps, 1)
        out = {"loss": self.loss / n, "grad_norm": self.norm / n, "grad_norm_max": self.top,
               "clipped": self.clipped / n}
        self.loss, self.norm, self.top, self.clipped, self.steps = 0.0, 0.0, 0.0, 0, 0
        return out


class Recorder:
    """The run's metrics log (on rank 0; other ranks record nothing) and the callbacks."""

    def __init__(self, run_dir: Path, callbacks: Callbacks, main: bool) -> None:
        self.log = MetricsLog(run_dir) if main else None
        self.cb = callbacks

    def progress(self, kind: str, p: Progress, **fields: Any) -> None:
        """A train or val line: where in the run, the lr and speed, and ``fields``."""
        self.write({"kind": kind, "step": p.step, "epoch": p.epoch, "chars": p.chars_seen,
                    "time": round(p.elapsed, 3), "lr": p.lr, **fields,
                    "chars_per_s": round(p.chars_per_s)})

    def write(self, record: dict[str, Any]) -> None:
        if self.log is not None:
            self.log.write(record)
            self.cb.on_record(record)

    def close(self) -> None:
        if self.log is not None:
            self.log.close()
