"""What the training loop reports: progress after each step or validation, the result,
and the callbacks a front end implements (the loop itself draws nothing)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any


@dataclass
class Progress:
    """What the loop reports to callbacks after each step or evaluation."""

    step: int
    epoch: int
    chars_seen: int
    elapsed: float  # seconds of this run's wall time, over all resumed sessions
    fraction: float  # of the budget, 0..1
    lr: float
    train_loss: float
    chars_per_s: float
    val_loss: float | None = None
    best_val_loss: float | None = None


class Callbacks:
    """Hooks for a front end; the defaults do nothing."""

    def on_start(self, info: dict[str, Any]) -> None: ...
    def on_step(self, p: Progress) -> None: ...
    def on_eval(self, p: Progress, improved: bool) -> None: ...
    def on_message(self, text: str) -> None: ...
    def on_preview(self, step: int, text: str) -> None: ...
    def on_record(self, record: dict[str, Any]) -> None:
        """A line just written to the run's metrics log (train.record), on rank 0."""
    def close(self) -> None: ...


class Fanout(Callbacks):
    """Several front ends at once (the console and a TensorBoard writer)."""

    def __init__(self, *callbacks: Callbacks) -> None:
        self.callbacks = callbacks

    def on_start(self, info: dict[str, Any]) -> None:
        for c in self.callbacks:
            c.on_start(info)

    def on_step(self, p: Progress) -> None:
        for c in self.callbacks:
            c.on_step(p)

    def on_eval(self, p: Progress, improved: bool) -> None:
        for c in self.callbacks:
            c.on_eval(p, improved)

    def on_message(self, text: str) -> None:
        for c in self.callbacks:
            c.on_message(text)

    def on_preview(self, step: int, text: str) -> None:
        for c in self.callbacks:
            c.on_preview(step, text)

    def on_record(self, record: dict[str, Any]) -> None:
        for c in self.callbacks:
            c.on_record(record)

    def close(self) -> None:
        for c in self.callbacks:
            c.close()


@dataclass
class Result:
    reason: str  # budget | early-stop | interrupted | diverged
    progress: Progress
    run_dir: Path
    best_val_loss: float | None
    eval_seconds: float  # spent validating and checkpointing, included in elapsed
    saved: bool = False  # whether latest holds this session's final position
    stop_signal: int = 0  # SIGINT, SIGTERM or SIGHUP when one stopped the run
