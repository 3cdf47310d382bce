"""The neurons command's work: rank a model's hidden units by how they follow the text's
structure (``units``), and draw the page that colours the text by any of them."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from charrnn.files import write_page
from charrnn.inspect import pages
from charrnn.inspect.trace import activations, excerpt
from charrnn.inspect.units import UnitScore, correlation_table, features, rank_units
from charrnn.model.infer import NumpyRNN
from charrnn.runs import checkpoint as ckpt


@dataclass
class NeuronsResult:
    ranked: list[UnitScore]
    chars: int
    units: int


def neurons(c: ckpt.Checkpoint, ids: np.ndarray, label: str, out: str | Path | None,
            start: int = 0, max_chars: int = 4000, top: int = 24) -> NeuronsResult:
    """Rank hidden units by correlation with the text's structure; write the page if asked."""
    part = excerpt(ids, start, max_chars)
    text = c.vocab.decode(part)
    acts = activations(NumpyRNN.from_checkpoint(c), part)
    feats = features(text)
    table = correlation_table(acts.values, feats)
    ranked = rank_units(table, acts.names, total=top)
    if out is not None:
        summary = [("characters shown", f"{len(text):,}"), ("units", f"{len(acts.names):,}"),
                   ("cell", f"{c.config.num_layers} x {c.config.hidden_size} {c.config.cell}")]
        page = pages.neurons_page(text, acts, table, ranked, feats,
                                  f"{label} \u2014 {c.path}", summary)
        write_page(out, page)
    return NeuronsResult(ranked, len(text), len(acts.names))
