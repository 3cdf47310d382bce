"""Several runs side by side, as plain data: their curves from metrics.jsonl, their
configurations with the differences marked, their figures and their previews at
comparable points. ``comparepage`` renders it; ``charrnn report RUN RUN ...`` prints
the figures too.

A run from an earlier version lacks some series (no gradient norms in its log, say):
the series is simply empty, and the page leaves it out.
"""

from __future__ import annotations

import math
import statistics
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from charrnn.errors import CharRNNError
from charrnn.inspect.runinfo import duration
from charrnn.runs import folder as runfolder
from charrnn.runs.metrics import read_metrics
from charrnn.score.measures import bits

NANOGPT_WINDOW = 256  # nanoGPT's shakespeare_char block size: its 1.4697 is measured so
X_AXES = {"step": "step", "time": "training time", "chars": "characters seen"}
Point = tuple[float, float]


@dataclass
class Run:
    """One run's data for the comparison."""

    label: str
    path: Path
    meta: dict[str, Any]
    metrics: list[dict[str, Any]]
    evals: dict[str, float] = field(default_factory=dict)  # "held-out", "windows"
    eval_note: str = ""  # why there is no held-out eval

    @property
    def progress(self) -> dict[str, Any]:
        return self.meta.get("progress", {})

    def curve(self, kind: str, x: str, y: str) -> list[Point]:
        """(x, y) of the log's ``kind`` lines that have both (empty for an old log)."""
        return [(float(r[x]), float(r[y])) for r in self.metrics
                if r.get("kind") == kind and isinstance(r.get(x), (int, float))
                and isinstance(r.get(y), (int, float))]

    def grad_norms(self) -> list[float]:
        return [y for _, y in self.curve("train", "step", "grad_norm")]

    def clipped_share(self) -> float | None:
        """The share of all logged steps that were clipped (None: not logged)."""
        shares = [y for _, y in self.curve("train", "step", "clipped")]
        return sum(shares) / len(shares) if shares else None

    def previews(self) -> list[dict[str, Any]]:
        """Preview lines with the validation loss logged at their step (if any)."""
        val = {r["step"]: r.get("loss") for r in self.metrics if r.get("kind") == "val"}
        return [{**r, "val": val.get(r["step"])} for r in self.metrics
                if r.get("kind") == "preview" and isinstance(r.get("text"), str)
                and isinstance(r.get("chars"), (int, float))]


def load_runs(targets: list[str]) -> list[Run]:
    """The runs named (folders, or checkpoints in them), each once; labels are folder
    names, or paths where two runs share a name."""
    dirs: list[Path] = []
    for t in targets:
        d = Path(t) if Path(t).is_dir() else runfolder.resolve(t).parent
        if d.resolve() not in [x.resolve() for x in dirs]:
            dirs.append(d)
    names = [d.resolve().name for d in dirs]
    return [Run(n if names.count(n) == 1 else str(d), d, runfolder.newest_meta(d).meta,
                read_metrics(d)) for d, n in zip(dirs, names, strict=True)]


def evaluate(runs: list[Run], device: str = "auto") -> None:
    """Each run's best checkpoint on its held-out split, as ``charrnn eval`` scores it,
    and by nanoGPT's protocol (``eval --window 256``); a run whose corpus cannot be
    read gets a note instead (torch)."""
    from charrnn.score.evaluate import held_out_losses

    for r in runs:
        try:
            r.evals["held-out"], r.evals["windows"] = held_out_losses(
                str(runfolder.resolve(r.path)), device, NANOGPT_WINDOW)
        except CharRNNError as e:
            r.eval_note = str(e)


def _fmt_loss(x: float | None) -> str:
    return f"{x:.4f}" if isinstance(x, (int, float)) and math.isfinite(x) else "n/a"


def figures(r: Run) -> dict[str, str]:
    """A run's figures, formatted: the page's table and the terminal's are these."""
    m, p, t = r.meta.get("model", {}), r.progress, r.meta.get("train", {})
    best = p.get("best_val_loss")
    norms = r.grad_norms()
    clipped = r.clipped_share()
    lrs = r.curve("train", "step", "lr")
    return {
        "run": r.label, "cell": str(m.get("cell", "?")),
        "size": f"{m.get('num_layers', '?')}x{m.get('hidden_size', '?')}",
        "T": str(t.get("seq_len", "n/a")), "steps": f"{p.get('step', 0):,}",
        "chars": f"{p.get('chars_seen', 0):,}", "time": duration(p.get("elapsed")),
        "best val": _fmt_loss(best),
        "bits/char": f"{bits(best):.3f}" if isinstance(best, (int, float)) else "n/a",
        "held-out eval": _fmt_loss(r.evals.get("held-out")),
        f"windows of {NANOGPT_WINDOW}": _fmt_loss(r.evals.get("windows")),
        "grad norm (median)": f"{statistics.median(norms):.3g}" if norms else "n/a",
        "clipped": f"{clipped:.1%}" if clipped is not None else "n/a",
        "peak lr": f"{max(y for _, y in lrs):.3g}" if lrs else "n/a",
    }


def config_rows(runs: Sequence[Run]) -> list[tuple[str, list[str], bool]]:
    """(key, value per run, whether they differ) over the model, corpus and training
    configuration of every run; a key a run lacks shows as "-"."""
    def flat(r: Run) -> dict[str, str]:
        out = {f"model.{k}": str(v) for k, v in r.meta.get("model", {}).items()}
        corpus = r.meta.get("corpus", {})
        out.update({f"corpus.{k}": str(corpus[k]) for k in ("source", "train_chars",
                                                            "val_chars") if k in corpus})
        out.update({f"train.{k}": str(v) for k, v in r.meta.get("train", {}).items()})
        return out

    flats = [flat(r) for r in runs]
    keys = list(dict.fromkeys(k for f in flats for k in f))
    rows = []
    for k in keys:
        values = [f.get(k, "-") for f in flats]
        rows.append((k, values, len(set(values)) > 1))
    return rows


def preview_rows(runs: Sequence[Run], points: int = 6
                 ) -> list[tuple[str, list[dict[str, Any] | None]]]:
    """Previews at comparable points: after the same numbers of characters seen (spread
    from where the last run's previews begin to where the shortest run's end), each
    run's preview nearest to each, then every run's last. Empty when no run logged
    previews."""
    lists = [r.previews() for r in runs]
    ends = [ps[-1]["chars"] for ps in lists if ps]
    if not ends:
        return []
    lo, hi = max(ps[0]["chars"] for ps in lists if ps), min(ends)
    lo = min(lo, hi)
    targets = sorted({round(lo + (hi - lo) * i / max(points - 1, 1)) for i in range(points)})
    rows: list[tuple[str, list[dict[str, Any] | None]]] = []
    for c in targets:
        rows.append((f"~{c:,} characters", [_nearest(ps, c) for ps in lists]))
    last = [ps[-1] if ps else None for ps in lists]
    if last != rows[-1][1]:
        rows.append(("the end of each run", last))
    return rows


def _nearest(previews: list[dict[str, Any]], chars: int) -> dict[str, Any] | None:
    """The preview logged nearest to ``chars`` characters seen (None: there are none)."""
    return min(previews, key=lambda p: abs(p["chars"] - chars)) if previews else None
