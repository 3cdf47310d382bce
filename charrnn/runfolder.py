"""A run folder's layout and how commands find one: the only place that names its files.

    checkpoints/<run>/latest.safetensors   weights + everything --resume needs
    checkpoints/<run>/best.safetensors     weights of the lowest validation loss
    checkpoints/<run>/metrics.jsonl        one JSON line per train/val loss and preview
    checkpoints/<run>/.lock                held by the run training there (runlock)
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

from charrnn import checkpoint as ckpt
from charrnn.config import DEFAULT_ROOT
from charrnn.data.text import BUILTIN_CORPUS
from charrnn.errors import CheckpointError
from charrnn.files import remove_partial_writes

LATEST, BEST, METRICS = "latest", "best", "metrics.jsonl"


def checkpoint_path(run_dir: Path, name: str) -> Path:
    """``<run_dir>/<name>.safetensors`` for name LATEST or BEST."""
    return Path(run_dir) / f"{name}{ckpt.SUFFIX}"


def metrics_path(run_dir: Path) -> Path:
    return Path(run_dir) / METRICS


def run_name(source: str) -> str:
    """The default run folder's name from the corpus file's: one plain path component.

    Letters (any script), digits, '-', '_' and inner dots survive; anything else becomes
    '_', and dots and '_' at the ends go, so no file name ('..', '...', '..txt') can make
    checkpoints/<name> point outside checkpoints/ or at a hidden folder.
    """
    if source == BUILTIN_CORPUS:
        return "pydoc"
    name = re.sub(r"[^\w.-]+", "_", Path(source).stem).strip("._")[:64].rstrip("._")
    return name or "run"


def clear(run_dir: Path) -> None:
    """Remove a run's checkpoints and log (train --force), leaving other files alone."""
    for name in (LATEST, BEST):
        checkpoint_path(run_dir, name).unlink(missing_ok=True)
    metrics_path(run_dir).unlink(missing_ok=True)


def remove_partial_checkpoints(run_dir: Path) -> list[Path]:
    """Temp files of checkpoint writes cut short by a killed run (hold the run's lock)."""
    return remove_partial_writes(run_dir, ckpt.SUFFIX)


def run_dirs(root: Path) -> list[Path]:
    """Every folder under ``root`` that holds a checkpoint, sorted by path."""
    return sorted({p.parent for p in Path(root).rglob(f"*{ckpt.SUFFIX}")
                   if not p.name.startswith(".")})


def resolve(target: str | Path | None, root: Path = DEFAULT_ROOT) -> Path:
    """A checkpoint file from a file, a run folder, or (None) the newest run under root.

    In a run folder the best checkpoint (lowest validation loss) is preferred over latest.
    """
    if target is None:
        if not root.is_dir():
            raise CheckpointError(f"no checkpoints found: {root}/ does not exist; "
                                  "train a model first (charrnn train FILE)")
        runs = [p for p in root.rglob(f"*{ckpt.SUFFIX}") if not p.name.startswith(".")]
        if not runs:
            raise CheckpointError(f"no checkpoints found under {root}/; "
                                  "train a model first (charrnn train FILE)")
        newest = max(runs, key=lambda p: p.stat().st_mtime)
        return _pick_in_run(newest.parent)
    p = Path(target)
    if p.is_dir():
        return _pick_in_run(p)
    if not p.exists():
        raise CheckpointError(f"no such checkpoint: {p}")
    return p


def _pick_in_run(run: Path) -> Path:
    for name in (BEST, LATEST):
        p = checkpoint_path(run, name)
        if p.is_file():
            return p
    others = sorted(run.glob(f"*{ckpt.SUFFIX}"))
    if not others:
        raise CheckpointError(f"no checkpoint in {run}/")
    return others[0]


def open_checkpoint(target: str | Path | None) -> ckpt.Checkpoint:
    """``resolve`` then ``inspect``: what every command that reads a model starts with."""
    return ckpt.inspect(resolve(target))


def newest_meta(run_dir: Path) -> ckpt.Checkpoint:
    """The run's most up-to-date metadata: latest (it knows the best loss so far), else best."""
    for name in (LATEST, BEST):
        p = checkpoint_path(run_dir, name)
        if p.is_file():
            return ckpt.inspect(p)
    return open_checkpoint(run_dir)


def read_metrics(run_dir: Path) -> list[dict[str, Any]]:
    """The records of a run's metrics.jsonl (damaged lines, e.g. a torn last line, skipped)."""
    path = metrics_path(run_dir)
    if not path.is_file():
        return []
    out = []
    for line in path.read_text(encoding="utf-8", errors="replace").splitlines():
        try:
            rec = json.loads(line)
        except json.JSONDecodeError:
            continue
        if isinstance(rec, dict) and rec.get("kind") in ("train", "val", "preview"):
            out.append(rec)
    return out


def drop_partial_line(path: Path) -> None:
    """A run killed mid-write leaves half a JSON line at the end of the log: cut it, so
    the resumed run's lines do not glue onto it and every line stays valid JSON."""
    if not path.is_file():
        return
    with path.open("r+b") as f:
        size = f.seek(0, 2)
        f.seek(max(0, size - 65536))
        tail = f.read()
        if tail and not tail.endswith(b"\n") and (b"\n" in tail or len(tail) == size):
            f.truncate(size - len(tail) + tail.rfind(b"\n") + 1)
