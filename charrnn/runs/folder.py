"""A run folder's layout and how commands find one: the only place that names its files.

    checkpoints/<run>/latest.safetensors   weights + everything --resume needs
    checkpoints/<run>/best.safetensors     weights of the lowest validation loss
    checkpoints/<run>/metrics.jsonl        one JSON line per train/val loss and preview (metrics)
    checkpoints/<run>/.lock                held by the run training there (lock)

A folder made by ``charrnn export --hf`` (``exported``) is read as a run: its weights file.
"""

from __future__ import annotations

import os
import re
from pathlib import Path

from charrnn.config import DEFAULT_ROOT
from charrnn.data.text import BUILTIN_CORPUS
from charrnn.errors import CheckpointError
from charrnn.files import remove_partial_writes
from charrnn.runs import checkpoint as ckpt
from charrnn.runs import exported

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


def holds_run(run_dir: Path) -> bool:
    """Whether a folder holds a run that starting afresh there would overwrite: either
    checkpoint (a folder with only ``best`` is a run too) or its metrics log."""
    return any(p.exists() for p in (checkpoint_path(run_dir, LATEST),
                                    checkpoint_path(run_dir, BEST), metrics_path(run_dir)))


class SetAside:
    """Files of a run moved out of the way (to ``.<name>.aside``) while a new run is set
    up in its folder (``train --force``): ``commit()`` deletes them once the new run is
    sure to start, ``restore()`` (a failed set-up) puts them back as they were. Call
    only while holding the folder's lock; ``restore_left(run_dir)`` puts back what a
    killed set-up left aside."""

    def __init__(self, paths: list[Path]) -> None:
        self.moved: list[tuple[Path, Path]] = []
        for p in paths:
            if p.is_file():
                aside = _aside(p)
                os.replace(p, aside)
                self.moved.append((p, aside))

    def commit(self) -> None:
        for _, aside in self.moved:
            aside.unlink(missing_ok=True)
        self.moved = []

    def restore(self) -> None:
        for p, aside in self.moved:
            os.replace(aside, p)
        self.moved = []


def _aside(p: Path) -> Path:
    return p.with_name(f".{p.name}.aside")


def restore_left(run_dir: Path) -> list[Path]:
    """Put back the files a set-up killed before it committed left aside."""
    back = []
    for aside in Path(run_dir).glob(".*.aside"):
        original = aside.with_name(aside.name[1:-len(".aside")])
        os.replace(aside, original)
        back.append(original)
    return back


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

    In a run folder the best checkpoint (lowest validation loss) is preferred over latest;
    an exported model folder gives its weights file.
    """
    if target is None:
        if root.exists() and not root.is_dir():
            raise CheckpointError(f"no checkpoints found: {root} is a file, not a folder")
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
    weights = exported.weights_in(run)
    if weights is not None:
        return weights
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
