"""The runs a server offers, by name; each loaded on first use and again when replaced.

A model name is only ever looked up among the names found by listing the runs, never
joined onto a path, so a name such as ``../../etc`` cannot reach outside the root. Names
are text (``safetext.shown``): a run folder whose name is not UTF-8 is offered, and
requested, as ``\\xffrun``.

Training replaces a checkpoint by renaming a complete new file over it, so the file's
identity (inode, size, mtime) changes. Each request compares it with the loaded one; on
a change the new file is read (metadata and weights), and if the identity moved again
while reading, it is read again: a model is always one whole checkpoint. A file that
cannot be read keeps the previous model serving.

Reading a checkpoint is file I/O: it happens under that model's own lock, never one that
every model shares, and a FIFO or other special file named like a checkpoint is refused
without blocking (``files.open_regular``), so one bad run folder cannot stall the others.
"""

from __future__ import annotations

import logging
import threading
from dataclasses import dataclass
from pathlib import Path

from charrnn.errors import CharRNNError
from charrnn.generate.sampler import Sampler
from charrnn.runs import checkpoint as ckpt
from charrnn.runs import folder as runfolder
from charrnn.safetext import shown

log = logging.getLogger("charrnn.serve")


class UnknownModel(CharRNNError):
    """A model name the server does not offer."""


@dataclass
class _Loaded:
    identity: tuple
    sampler: Sampler


def _identity(path: Path) -> tuple:
    st = path.stat()
    return (str(path), st.st_ino, st.st_size, st.st_mtime_ns)


def _run_name(path: Path) -> str:
    """A single run's name: its folder, or a checkpoint file's stem outside best/latest
    (shown as text: a folder name that is not UTF-8 has its bytes as \\xNN)."""
    if path.is_dir():
        return shown(path.resolve().name)
    return shown(path.resolve().parent.name if path.stem in ("best", "latest") else path.stem)


class Models:
    """Named runs: all runs under ``root``, or the one run (or file) ``target``."""

    def __init__(self, root: Path = runfolder.DEFAULT_ROOT, target: str | None = None) -> None:
        self.root, self.target = root, target
        self._loaded: dict[str, _Loaded] = {}
        self._lock = threading.Lock()  # guards the two dicts only: never held across I/O
        self._locks: dict[str, threading.Lock] = {}  # one per model, held while reading it
        self._runs: dict[str, Path] = {}
        self.scan()
        if not self._runs:
            runfolder.resolve(None, root)  # raises the usual "no checkpoints found" message
        self.default = self._default()

    def scan(self) -> dict[str, Path]:
        """Name -> run folder (or file): every folder under root holding a checkpoint."""
        if self.target is not None:
            path = Path(self.target)
            runfolder.resolve(path)  # a bad target fails at start-up, not at the first request
            self._runs = {_run_name(path): path}
        elif self.root.is_dir():
            found = {p.parent for p in self.root.rglob(f"*{ckpt.SUFFIX}")
                     if not p.name.startswith(".")}
            self._runs = {shown(p.relative_to(self.root).as_posix() if p != self.root
                                else p.resolve().name): p for p in sorted(found)}
        return self._runs

    def _default(self) -> str:
        """The run ``charrnn sample`` would use: the one given, else the newest."""
        if self.target is not None:
            return next(iter(self._runs))
        newest = runfolder.resolve(None, self.root).parent
        return next(n for n, p in self._runs.items() if p == newest)

    def names(self) -> list[str]:
        return list(self.scan())

    def path_of(self, name: str) -> Path:
        if name not in self._runs and name not in self.scan():
            raise UnknownModel(f"the model '{name}' does not exist; GET /v1/models "
                               "lists the ones served here")
        return self._runs[name]

    def cached(self, name: str | None) -> tuple[str, Sampler] | None:
        """(name, model) if it is loaded and its checkpoint unchanged, else None: a few
        stat calls, cheap enough for the event loop (``get`` may read a file)."""
        name = self.default if name is None else name
        loaded, run = self._loaded.get(name), self._runs.get(name)
        if loaded is None or run is None:
            return None
        try:
            if _identity(runfolder.resolve(run)) == loaded.identity:
                return name, loaded.sampler
        except (CharRNNError, OSError):
            pass
        return None

    def get(self, name: str | None) -> tuple[str, Sampler]:
        """(name, loaded model), reloading it if its checkpoint was replaced. Blocking:
        call from a worker thread."""
        name = self.default if name is None else name
        run = self.path_of(name)
        with self._lock:
            lock = self._locks.setdefault(name, threading.Lock())
        with lock:
            loaded = self._loaded.get(name)
            try:
                path = runfolder.resolve(run)
                identity = _identity(path)
                if loaded is not None and loaded.identity == identity:
                    return name, loaded.sampler
                for _ in range(5):
                    sampler = Sampler(ckpt.inspect(path))
                    after = _identity(path)
                    if after == identity:
                        break
                    identity = after  # replaced while being read: read the new one
                else:
                    raise CharRNNError(f"{path} keeps changing; try again")
            except (CharRNNError, OSError) as e:
                if loaded is None:
                    raise CharRNNError(str(e)) from None
                log.warning("keeping the loaded %s: %s", name, e)
                return name, loaded.sampler
            if loaded is not None:
                log.info("reloaded %s from %s", name, path)
            with self._lock:
                self._loaded[name] = _Loaded(identity, sampler)
            return name, sampler
