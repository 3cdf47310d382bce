"""``train --tensorboard DIR``: the run's metrics log mirrored as TensorBoard events.

Every line the loop writes to ``metrics.jsonl`` (train.record) reaches ``on_record``:
train and validation lines become scalars (``train/loss``, ``train/grad_norm``,
``train/clipped``, ``train/lr``, ``val/loss``, ...) at their step, previews become text.
``metrics.jsonl`` stays the source of truth; this writer only copies it. PyTorch's own
``SummaryWriter`` writes the events (it needs the ``tensorboard`` package: pip extra
``tensorboard``); this module is imported only when the option is given.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from charrnn.errors import CharRNNError
from charrnn.files import os_reason
from charrnn.train.events import Callbacks

SCALARS = {"train": ("loss", "grad_norm", "grad_norm_max", "clipped", "lr", "chars_per_s"),
           "val": ("loss",)}
INSTALL = "pip install 'charrnn[tensorboard]'"


def preview_markdown(text: str) -> str:
    """A preview as TensorBoard's text plugin shows it verbatim: an indented code block."""
    return "    " + text.replace("\n", "\n    ")


class TensorBoardWriter(Callbacks):
    """Writes event files into ``logdir`` as the run trains."""

    def __init__(self, logdir: str | Path) -> None:
        try:
            from torch.utils.tensorboard import SummaryWriter
        except ImportError:
            raise CharRNNError(f"--tensorboard needs the tensorboard package: {INSTALL}"
                               ) from None
        try:
            Path(logdir).mkdir(parents=True, exist_ok=True)
        except OSError as e:
            raise CharRNNError(f"--tensorboard: cannot write to {logdir}/: {os_reason(e)}"
                               ) from None
        self.writer = SummaryWriter(log_dir=str(logdir))

    def on_record(self, record: dict[str, Any]) -> None:
        kind, step = record.get("kind"), record.get("step")
        if kind in SCALARS:
            for key in SCALARS[kind]:
                value = record.get(key)
                if isinstance(value, (int, float)):
                    self.writer.add_scalar(f"{kind}/{key}", value, step)
        elif kind == "preview":
            self.writer.add_text("preview", preview_markdown(record["text"]), step)
        if kind != "train":  # a validation: TensorBoard shows it without waiting
            self.writer.flush()

    def close(self) -> None:
        self.writer.close()
