"""What an exported model is, in the words every export shows: the page's header line,
model.json's ``about``, the model card.

Everything comes from the checkpoint's metadata as training recorded it; nothing is
measured again. The corpus is named by its file name only (a page or a card is made to be
published; the path training recorded stays in the checkpoint's metadata).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from charrnn.inspect.runinfo import lineage
from charrnn.runs.checkpoint import Checkpoint
from charrnn.runs.folder import BEST, LATEST
from charrnn.score.measures import bits


def model_name(path: Path) -> str:
    """A checkpoint's name: its run folder for best/latest (and an exported folder's
    weights), else the file's stem."""
    return path.parent.name if path.stem in (BEST, LATEST, "model") else path.stem


@dataclass
class About:
    name: str
    cell: str
    layers: int
    hidden_size: int
    embed_size: int
    parameters: int
    vocab_size: int
    corpus: str  # the corpus's file or folder name, or builtin:pydoc
    digest: str  # of the corpus's text
    train_chars: int | None
    val_chars: int | None
    step: int | None
    val_loss: float | None  # nats/char on the held-out sample, at this checkpoint
    lineage: list[tuple[str, str]] = field(default_factory=list)  # fine-tuned from...

    @classmethod
    def of(cls, c: Checkpoint) -> About:
        m, meta = c.config, c.meta
        corpus, prog = meta.get("corpus", {}), meta.get("progress", {})
        return cls(model_name(c.path), m.cell, m.num_layers, m.hidden_size, m.embed_size,
                   m.num_params(), m.vocab_size,
                   Path(str(corpus.get("source", "unknown"))).name or "unknown",
                   str(corpus.get("digest", "unknown")), corpus.get("train_chars"),
                   corpus.get("val_chars"), prog.get("step"), prog.get("val_loss"),
                   lineage(meta.get("init_from")))

    @property
    def size(self) -> str:
        return f"{self.layers}x{self.hidden_size}"

    @property
    def bits_per_char(self) -> float | None:
        return None if self.val_loss is None else float(bits(self.val_loss))

    def line(self) -> str:
        """One line: 'LSTM 2x256 (880,193 parameters, 65 characters), trained on x.txt
        for 4,373 steps; held-out 1.523 bits/char'."""
        out = (f"{self.cell.upper()} {self.size} ({self.parameters:,} parameters, "
               f"{self.vocab_size} characters), trained on {self.corpus}")
        if self.step is not None:
            out += f" for {self.step:,} steps"
        if self.bits_per_char is not None:
            out += f"; held-out {self.bits_per_char:.3f} bits/char"
        return out

    def as_dict(self) -> dict[str, Any]:
        """For model.json: the facts, without the lineage's recorded paths."""
        out = {**asdict(self), "bits_per_char": self.bits_per_char}
        del out["lineage"]
        return out
