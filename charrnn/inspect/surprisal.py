"""The surprisal page (``eval --html``): a text coloured by how surprised the model was at
each character, with its top-5 predictions on hover."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from charrnn.files import write_page
from charrnn.inspect import pages
from charrnn.inspect.trace import excerpt, surprisal
from charrnn.model.infer import NumpyRNN
from charrnn.runs import checkpoint as ckpt


def write(c: ckpt.Checkpoint, ids: np.ndarray, label: str, out: str | Path,
          whole: dict[str, Any] | None = None, start: int = 0,
          max_chars: int = 10_000) -> Path:
    """Write the surprisal page for an excerpt of ``ids``; ``whole`` is eval's report on all
    of the text, shown beside the excerpt's own figures."""
    part = excerpt(ids, start, max_chars)
    s = surprisal(NumpyRNN.from_checkpoint(c), part)
    summary = []
    if whole:
        summary = [("bits/char (whole text)", f"{whole['bits_per_char']:.3f}"),
                   ("perplexity (whole text)", f"{whole['perplexity']:.2f}"),
                   ("characters scored", f"{whole['chars']:,}")]
        if whole.get("unknown_chars"):
            summary.append(("unknown characters skipped", f"{whole['unknown_chars']:,}"))
    title = f"{label} \u2014 {c.path}"
    page = pages.surprisal_page(s, c.vocab.chars, title, summary, offset=start)
    return write_page(out, page)
