"""The work behind the inspection commands: eval --html, neurons, report, info and list.

Loads checkpoints, runs traces over a bounded excerpt of the text (a page of megabytes
helps nobody), and writes pages atomically. No torch here: traces and samples run on
the numpy twin of the model.
"""

from __future__ import annotations

import math
import os
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from charrnn import catalog, report
from charrnn import checkpoint as ckpt
from charrnn.errors import CharRNNError
from charrnn.infer import NumpyRNN
from charrnn.trace import activations, surprisal
from charrnn.units import correlation_table, features, rank_units

REPORT_TEMPERATURES = (0.5, 0.8, 1.0)


def engine(c: ckpt.Checkpoint) -> NumpyRNN:
    return NumpyRNN(c.config, c.numpy_weights())


def excerpt(ids: np.ndarray, start: int, max_chars: int) -> np.ndarray:
    """ids[start : start + max_chars], refusing a start past the end."""
    if start < 0 or start >= len(ids) - 1:
        raise CharRNNError(f"--start {start} is past the end of the text "
                           f"({len(ids):,} known characters)")
    if max_chars < 2:
        raise CharRNNError(f"--max-chars must be at least 2, got {max_chars}")
    return ids[start : start + max_chars]


def check_out(path: str | Path) -> Path:
    """Refuse an output path that cannot take a page, before any work is done.

    Tries to create (and removes) a file in the nearest existing folder on the way:
    permission bits alone would not tell (root passes them; /proc refuses anyway), and
    folders still missing are left uncreated until the page is written."""
    path = Path(path)
    if path.is_dir():
        raise CharRNNError(f"{path} is a directory; give a file name such as report.html")
    folder = path.absolute().parent
    while not folder.exists() and folder != folder.parent:
        folder = folder.parent
    if not folder.is_dir():
        raise CharRNNError(f"cannot write {path}: {folder} is a file, not a folder")
    try:
        fd, probe = tempfile.mkstemp(prefix=".charrnn-probe.", dir=folder)
        os.close(fd)
        os.unlink(probe)
    except OSError as e:
        raise CharRNNError(f"cannot write {path}: cannot create files in {folder} "
                           f"({ckpt.os_reason(e)})") from None
    return path


def write_page(path: str | Path, page: str) -> Path:
    """Write a page atomically (a reader never sees half of it, an old page stays whole
    if the write fails)."""
    path = check_out(path)
    try:
        ckpt.atomic_write_bytes(path, page.encode("utf-8"))
    except OSError as e:
        raise CharRNNError(f"cannot write {path}: {ckpt.os_reason(e)}") from None
    return path


def surprisal_html(c: ckpt.Checkpoint, ids: np.ndarray, label: str, out: str | Path,
                   whole: dict[str, Any] | None = None, start: int = 0,
                   max_chars: int = 10_000) -> Path:
    """Write the surprisal page for an excerpt of ``ids``; ``whole`` is eval's report on all
    of the text, shown beside the excerpt's own figures."""
    part = excerpt(ids, start, max_chars)
    s = surprisal(engine(c), part)
    summary = []
    if whole:
        summary = [("bits/char (whole text)", f"{whole['bits_per_char']:.3f}"),
                   ("perplexity (whole text)", f"{whole['perplexity']:.2f}"),
                   ("characters scored", f"{whole['chars']:,}")]
        if whole.get("unknown_chars"):
            summary.append(("unknown characters skipped", f"{whole['unknown_chars']:,}"))
    title = f"{label} \u2014 {c.path}"
    page = report.surprisal_page(s, c.vocab.chars, title, summary, offset=start)
    return write_page(out, page)


@dataclass
class NeuronsResult:
    ranked: list  # list[UnitScore]
    chars: int
    units: int


def neurons(c: ckpt.Checkpoint, ids: np.ndarray, label: str, out: str | Path | None,
            start: int = 0, max_chars: int = 4000, top: int = 24) -> NeuronsResult:
    """Rank hidden units by correlation with the text's structure; write the page if asked."""
    part = excerpt(ids, start, max_chars)
    text = c.vocab.decode(part)
    acts = activations(engine(c), part)
    feats = features(text)
    table = correlation_table(acts.values, feats)
    ranked = rank_units(table, acts.names, total=top)
    if out is not None:
        summary = [("characters shown", f"{len(text):,}"), ("units", f"{len(acts.names):,}"),
                   ("cell", f"{c.config.num_layers} x {c.config.hidden_size} {c.config.cell}")]
        page = report.neurons_page(text, acts, table, ranked, feats,
                                   f"{label} \u2014 {c.path}", summary)
        write_page(out, page)
    return NeuronsResult(ranked, len(text), len(acts.names))


def run_report(run: str | Path | None, out: str | Path | None = None, length: int = 300,
               temperatures: tuple[float, ...] = REPORT_TEMPERATURES, seed: int = 0) -> Path:
    """Write a run's report.html: curves from metrics.jsonl, config, vocabulary, samples."""
    from charrnn.sample import SampleConfig, Sampler

    run_dir = Path(run) if run is not None and Path(run).is_dir() else \
        ckpt.resolve(run).parent
    target = check_out(out or run_dir / "report.html")  # before sampling, not after
    meta_ckpt = catalog.run_checkpoint(run_dir)
    best = ckpt.resolve(run_dir)
    sampler = Sampler.load(best)
    samples = [(t, "".join(sampler.generate("", SampleConfig(length, t, 0, seed))))
               for t in temperatures]
    metrics = catalog.read_metrics(run_dir)
    prog = meta_ckpt.meta.get("progress", {})
    best_val = prog.get("best_val_loss")
    summary = [
        ("best val loss (nats/char)", f"{best_val:.4f}" if best_val is not None else "n/a"),
        ("best val bits/char", f"{best_val / math.log(2):.3f}" if best_val is not None
         else "n/a"),
        ("characters seen", f"{prog.get('chars_seen', 0):,}"),
        ("training time", catalog.duration(prog.get("elapsed"))),
    ]
    sections = catalog.describe(meta_ckpt)
    sections.append(("Training config", [(k, str(v)) for k, v in
                                         meta_ckpt.meta.get("train", {}).items()]))
    page = report.run_page(str(run_dir), sections, metrics, meta_ckpt.vocab.chars,
                           samples, summary,
                           f"{length} characters each from {best}, seed {seed}")
    return write_page(target, page)
