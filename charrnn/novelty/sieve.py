"""Samples checked against the training text: report copies, keep only novel ones.

``draw`` generates samples, checks each (prime + sample, as the reader sees it) with a
``novelty.index.Index`` and keeps those that pass the filter, drawing again until
``num_samples`` are kept or ``tries * num_samples`` were drawn. Candidate c is the
sample that ``--seed seed+c`` gives alone, so a kept sample can be reproduced by its
seed, and the samples kept do not depend on how the draws were batched.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass, replace
from pathlib import Path

from charrnn.errors import ConfigError
from charrnn.generate.decoding import SampleConfig
from charrnn.generate.sampler import END, Sampler, render_jsonl
from charrnn.novelty.filter import CopyFilter
from charrnn.novelty.index import CopyReport, Index
from charrnn.novelty.source import for_checkpoint, stderr_log
from charrnn.safetext import dumps

_MAX_BATCH = 256  # samples generated at once while redrawing


@dataclass
class Kept:
    """A sample that passed: its seed, its text (without the prime), its copies."""

    seed: int
    text: str
    copies: CopyReport


@dataclass
class Drawn:
    kept: list[Kept]
    drawn: int  # samples generated in all
    wanted: int


def index_for(checkpoint, corpus: str | Path | list[str] | None = None) -> Index:
    """The copy index of a checkpoint's training text (or of ``corpus``, a copy: one
    path, or as many as training was given)."""
    given = [str(corpus)] if isinstance(corpus, (str, Path)) else corpus
    return for_checkpoint(checkpoint.meta, checkpoint.path, given or None, stderr_log)


def _texts(sampler: Sampler, prime: str, config: SampleConfig) -> list[str]:
    texts: list[list[str]] = [[] for _ in range(config.num_samples)]
    for i, ch in sampler.stream(prime, config):
        if ch != END:
            texts[i].append(ch)
    return ["".join(t) for t in texts]


def draw(sampler: Sampler, prime: str, config: SampleConfig, index: Index,
         keep: CopyFilter) -> Drawn:
    """Samples checked against the training text; see the module docstring.

    ``config.seed`` must be set (candidate c uses seed + c); ``prime`` is already
    cleaned (``Sampler.clean_prime``)."""
    if config.seed is None:
        raise ConfigError("draw needs a seed")
    wanted = config.num_samples
    limit = keep.tries * wanted if keep.filters else wanted
    kept: list[Kept] = []
    drawn = 0
    while len(kept) < wanted and drawn < limit:
        need = wanted - len(kept)
        guess = -(-need * drawn // len(kept)) if kept else need * (2 if drawn else 1)
        batch = min(limit - drawn, max(need, min(guess, _MAX_BATCH)))
        texts = _texts(sampler, prime, replace(config, seed=config.seed + drawn,
                                               num_samples=batch))
        for j, text in enumerate(texts):
            whole = prime + text
            report = index.report(whole, len(prime), keep.min_copy)
            if len(kept) < wanted and _passes(keep, index, whole, report):
                kept.append(Kept(config.seed + drawn + j, text, report))
        drawn += batch
    return Drawn(kept, drawn, wanted)


def _passes(keep: CopyFilter, index: Index, text: str, report: CopyReport) -> bool:
    if keep.max_copy is not None and report.longest > keep.max_copy:
        return False
    return not (keep.novel and index.occurs(text))


def jsonl(result: Drawn, fields: dict) -> Iterator[str]:
    """``--jsonl`` lines, as ``sample.render_jsonl`` writes them, plus the copy fields."""
    for j, k in enumerate(result.kept):
        events = [*((0, ch) for ch in k.text), (0, END)]
        for line in render_jsonl(events, 1, fields, k.seed):
            record = {**json.loads(line), "index": j, **k.copies.fields()}
            yield dumps(record) + "\n"


def plain(result: Drawn, head: str, separator: str) -> Iterator[str]:
    """The kept samples as plain text: ``head`` before each, ``separator`` between."""
    for j, k in enumerate(result.kept):
        yield (separator if j else "") + head + k.text


def shortfall(result: Drawn, keep: CopyFilter) -> str | None:
    """The error to give when too few samples passed, else None."""
    if len(result.kept) >= result.wanted:
        return None
    return (f"only {len(result.kept)} of {result.wanted} samples passed {keep.describe()} "
            f"in {result.drawn} draws (--tries {keep.tries}); raise --tries or --temp, "
            "or loosen the filter")
