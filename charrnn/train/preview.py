"""Samples while it trains: a short text from the current weights at every validation.

Every preview of a run starts from the same place (a silent newline) and draws the same
random numbers (``random.Random(run seed)``) at the same temperature
(``PREVIEW_TEMPERATURE``), so successive previews differ only through the weights: the
view of "The Unreasonable Effectiveness of RNNs", noise turning into words. A preview is
exactly what ``charrnn sample --seed SEED --temp 0.8 -n N`` prints from the checkpoint saved
at that validation.

It runs on the numpy twin of the model (charrnn.model.infer), built from a copy of the weights:
at batch 1 that is about ten times cheaper than stepping the torch model. It runs on one
BLAS thread: training keeps the cores busy, and a batch-1 step that waits for a second,
descheduled BLAS thread took 20-30 times longer (docs/benchmarks.md, 2026-12-03).
"""

from __future__ import annotations

import functools
import random
from collections.abc import Sequence
from typing import Any

import numpy as np
from threadpoolctl import ThreadpoolController

from charrnn.config import ModelConfig
from charrnn.data.text import Vocab
from charrnn.generate.decoding import Decoding
from charrnn.generate.pick import pick
from charrnn.model.infer import NumpyRNN

PREVIEW_TEMPERATURE = 0.8  # readable early on, yet not stuck in one loop as greedy gets
_DECODING = Decoding(temperature=PREVIEW_TEMPERATURE)
REPORT_ROWS = 40  # previews shown in a report; a longer run shows this many, spread out


def generate(config: ModelConfig, weights: dict[str, np.ndarray], vocab: Vocab,
             length: int, seed: int) -> str:
    """``length`` characters from these weights (float32 arrays named as in the
    state_dict), seeded and tempered as every preview of the run."""
    engine = NumpyRNN(config, weights)
    rng = random.Random(seed)
    chars = vocab.chars
    start = np.array([[chars.index("\n") if "\n" in vocab else 0]])  # as charrnn sample
    out = []
    with _thread_pools().limit(limits=1, user_api="blas"):
        logits, state = engine.warm(start, engine.init_state(1))
        for t in range(length):
            ids = pick(logits, [rng.random()], _DECODING)
            out.append(chars[int(ids[0])])
            if t + 1 < length:
                logits, state = engine.step(ids, state)
    return "".join(out)


@functools.cache
def _thread_pools() -> ThreadpoolController:
    """The loaded BLAS and OpenMP libraries, found once (about 15 ms)."""
    return ThreadpoolController()


def table(metrics: Sequence[dict[str, Any]], limit: int = REPORT_ROWS
          ) -> tuple[list[tuple[int, float | None, str]], int]:
    """(step, validation loss at that step, sample) for the previews in a metrics log,
    at most ``limit`` of them spread evenly (first and last kept), and how many there are.

    A step logged twice (a run resumed from before its last validation) takes the
    validation logged just before its preview.
    """
    val_at: dict[int, float | None] = {}
    rows: list[tuple[int, float | None, str]] = []
    for r in metrics:
        step = r.get("step")
        if not isinstance(step, int):
            continue
        if r.get("kind") == "val":
            loss = r.get("loss")
            val_at[step] = float(loss) if isinstance(loss, (int, float)) else None
        elif r.get("kind") == "preview" and isinstance(r.get("text"), str):
            rows.append((step, val_at.get(step), r["text"]))
    total = len(rows)
    if total > limit > 1:
        picks = sorted({round(i * (total - 1) / (limit - 1)) for i in range(limit)})
        rows = [rows[i] for i in picks]
    return rows, total


def record(step: int, chars: int, elapsed: float, seed: int, text: str) -> dict[str, Any]:
    """The metrics.jsonl line of a preview: where in the run, how drawn, what came out."""
    return {"kind": "preview", "step": step, "chars": chars, "time": round(elapsed, 3),
            "seed": seed, "temperature": PREVIEW_TEMPERATURE, "text": text}
