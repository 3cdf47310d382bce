"""What a checkpoint and its run hold, as plain data: the work behind info and list.

Reads checkpoint headers only (no weights, no torch), so listing many runs is instant.
The front ends (rich tables in the terminal, the report page) render the same key/value
sections.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from charrnn.errors import CharRNNError
from charrnn.runs import checkpoint as ckpt
from charrnn.runs import folder as runfolder
from charrnn.score.measures import bits

Section = tuple[str, list[tuple[str, str]]]


def visible(ch: str) -> str:
    """A character as a reader can see it: newline, tab and space get symbols."""
    return {"\n": "\u21b5", "\t": "\u21e5", " ": "\u2423", "\r": "\u240d"}.get(
        ch, ch if ch.isprintable() else f"\\u{ord(ch):04x}")


def vocab_preview(chars: tuple[str, ...] | list[str], limit: int = 96) -> str:
    text = "".join(visible(c) for c in chars[:limit])
    return text + (f" \u2026 (+{len(chars) - limit})" if len(chars) > limit else "")


def duration(seconds: float | None) -> str:
    if seconds is None or not math.isfinite(seconds):
        return "n/a"
    s = int(round(seconds))
    h, m = divmod(s, 3600)
    m, s = divmod(m, 60)
    return f"{h}h{m:02d}m{s:02d}s" if h else f"{m}m{s:02d}s" if m else f"{s}s"


def _loss(nats: float | None) -> str:
    if nats is None or not math.isfinite(nats):
        return "n/a"
    return f"{nats:.4f} nats/char ({bits(nats):.3f} bits/char)"


def lineage(lineage_meta: Any) -> list[tuple[str, str]]:
    """Rows for ``charrnn info`` and the report: trained from which model, on what."""
    if not isinstance(lineage_meta, dict):
        return []
    rows: list[tuple[str, str]] = []
    chain: Any = lineage_meta
    while isinstance(chain, dict):
        loss = chain.get("best_val_loss")
        at = f", best val {loss:.4f}" if isinstance(loss, (int, float)) else ""
        rows.append(("fine-tuned from" if not rows else "which came from",
                     f"{chain.get('checkpoint', '?')} (step {chain.get('step', '?')}{at})"))
        rows.append(("  its corpus", f"{chain.get('corpus', '?')} "
                                     f"(digest {chain.get('digest', '?')})"))
        if chain.get("added_chars"):
            rows.append(("  new characters", repr(chain["added_chars"])))
        chain = chain.get("init_from")
    return rows


def describe(c: ckpt.Checkpoint) -> list[Section]:
    """A checkpoint's metadata as titled sections of (key, value) strings."""
    m, meta = c.config, c.meta
    chars = meta["vocab"]
    model = [
        ("cell", m.cell),
        ("layers x hidden", f"{m.num_layers} x {m.hidden_size}"),
        ("embedding", str(m.embed_size)),
        ("dropout", f"{m.dropout:g}"),
        ("parameters", f"{m.num_params():,}"),
        ("vocabulary", f"{len(chars)} characters"),
        ("characters", vocab_preview(chars)),
    ]
    sections: list[Section] = [("Model", model)]
    corpus, prog, train = meta.get("corpus", {}), meta.get("progress", {}), meta.get("train", {})
    if prog or corpus:
        rows = [("corpus", str(corpus.get("source", "n/a")))]
        if "files" in corpus:  # several inputs (charrnn.data.corpora)
            rows.append(("files", f"{corpus['files']} used, {corpus.get('skipped', 0)} skipped; "
                                  f"separator {corpus.get('separator', '')!r}; held out: "
                                  "the last fraction of every file"))
        rows += lineage(meta.get("init_from"))
        if "train_chars" in corpus:
            rows.append(("split", f"{corpus['train_chars']:,} train / "
                                  f"{corpus.get('val_chars', 0):,} val characters"))
        if prog:
            rows += [
                ("steps", f"{prog.get('step', 0):,} (epoch {prog.get('epoch', 0)})"),
                ("characters seen", f"{prog.get('chars_seen', 0):,}"),
                ("training time", duration(prog.get("elapsed"))),
                ("speed", f"{prog.get('chars_per_s', 0):,.0f} chars/s"),
                ("val loss here", _loss(prog.get("val_loss"))),
                ("best val loss", _loss(prog.get("best_val_loss"))),
            ]
        if train:
            rows.append(("batch x seq", f"{train.get('batch_size')} x {train.get('seq_len')}"))
            rows.append(("lr", f"{train.get('lr', 0):g} (warm-up {train.get('warmup_steps')}, "
                               f"weight decay {train.get('weight_decay')})"))
            if train.get("ema"):
                rows.append(("weights saved", f"moving average, decay {train['ema']:g}"))
        sections.append(("Training", rows))
    versions = meta.get("versions", {})
    rows = [(k, str(v)) for k, v in versions.items()]
    rows.append(("created", str(meta.get("created", "n/a"))))
    kind = "weights + optimizer state" if "optimizer" in meta else "weights"
    rows.append(("file", f"{c.path} ({kind})"))
    sections.append(("Versions", rows))
    return sections


@dataclass
class RunSummary:
    path: Path
    cell: str
    size: str  # "2x512"
    params: int
    steps: int
    chars_seen: int
    elapsed: float
    best_val_loss: float | None
    corpus: str

    def as_dict(self) -> dict[str, Any]:
        return {"run": str(self.path), "cell": self.cell, "size": self.size,
                "params": self.params, "steps": self.steps, "chars_seen": self.chars_seen,
                "elapsed": self.elapsed, "best_val_loss": self.best_val_loss,
                "corpus": self.corpus}


def list_runs(root: Path = runfolder.DEFAULT_ROOT) -> list[RunSummary]:
    """Every run folder under ``root`` (any folder holding a checkpoint), sorted by path.

    A damaged checkpoint is skipped rather than hiding the other runs."""
    root = Path(root)
    if root.exists() and not root.is_dir():
        raise CharRNNError(f"{root} is a file, not a folder (--root names a folder of runs)")
    if not root.is_dir():
        raise CharRNNError(f"{root}/ does not exist; train a model first (charrnn train FILE)")
    out = []
    for d in runfolder.run_dirs(root):
        try:
            c = runfolder.newest_meta(d)
        except CharRNNError:
            continue
        m, prog = c.config, c.meta.get("progress", {})
        out.append(RunSummary(d, m.cell, f"{m.num_layers}x{m.hidden_size}", m.num_params(),
                              int(prog.get("step", 0)), int(prog.get("chars_seen", 0)),
                              float(prog.get("elapsed", 0.0)), prog.get("best_val_loss"),
                              str(c.meta.get("corpus", {}).get("source", ""))))
    return out
