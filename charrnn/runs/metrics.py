"""A run's metrics log, ``<run>/metrics.jsonl``: one JSON object per line, appended as the
run trains (train and validation losses, previews), read back by the report.

Each line is written whole and flushed, so a reader (``charrnn report`` while training,
``tail -f | jq``) sees only complete records; a run killed mid-line leaves half a line,
which the next session cuts before appending (``drop_partial_line``).
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

from charrnn.errors import CharRNNError
from charrnn.files import NotAFile, os_reason
from charrnn.runs.folder import metrics_path
from charrnn.safetext import dumps

KINDS = ("train", "val", "preview")


class MetricsLog:
    """Appends records to a run's log; every failure is one CharRNNError."""

    def __init__(self, run_dir: Path) -> None:
        self.path = metrics_path(run_dir)
        try:
            run_dir.mkdir(parents=True, exist_ok=True)
            if os.path.lexists(self.path) and not self.path.is_file():  # a FIFO would block
                raise NotAFile(self.path, os.stat(self.path).st_mode)
            drop_partial_line(self.path)
            self._file = self.path.open("a", encoding="utf-8")
        except OSError as e:
            raise CharRNNError(f"cannot write to {run_dir}/: {os_reason(e)}") from None

    def write(self, record: dict[str, Any]) -> None:
        try:
            self._file.write(dumps(record) + "\n")  # valid JSON, whatever it holds
            self._file.flush()
        except OSError as e:
            raise CharRNNError(f"cannot write {self.path}: {os_reason(e)}; the checkpoints "
                               "already saved are intact") from None

    def close(self) -> None:
        self._file.close()


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
        if isinstance(rec, dict) and rec.get("kind") in KINDS:
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
