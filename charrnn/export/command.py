"""The export command's work: check every output, build every export in memory, then
write each one whole (a file atomically, a folder by one rename).

A bad output path, a missing optional package or weights beyond float16's range fail
before anything is written, so a failed export leaves nothing half-made behind.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from charrnn.errors import ConfigError
from charrnn.export import hub, web
from charrnn.export.onnxgraph import onnx_bytes
from charrnn.files import check_folder_out, check_out, write_file, write_folder
from charrnn.runs import folder as runfolder
from charrnn.safetext import shown


@dataclass(frozen=True)
class Targets:
    """Where each export goes (None: not wanted) and the web weights' number format."""

    web: Path | None = None  # the single page
    web_dir: Path | None = None  # charrnn.js + model.json + weights.bin + index.html
    onnx: Path | None = None
    hf: Path | None = None
    dtype: str = "float16"

    def wanted(self) -> dict[str, Path]:
        found = {"--web": self.web, "--web-dir": self.web_dir, "--onnx": self.onnx,
                 "--hf": self.hf}
        return {flag: Path(p) for flag, p in found.items() if p is not None}


def _size(n: int) -> str:
    return f"{n / 1e6:.1f} MB" if n >= 1e5 else f"{n / 1e3:.1f} kB"


def export(target: str | None, targets: Targets) -> list[str]:
    """Write every export ``targets`` asks for from checkpoint ``target`` (a run folder,
    file or exported folder; None: the newest run); one line per export written."""
    wanted = targets.wanted()
    if not wanted:
        raise ConfigError("nothing to export: give --web PAGE, --web-dir DIR, --onnx FILE "
                          "or --hf DIR")
    if targets.dtype not in web.DTYPES:
        raise ConfigError(f"--dtype must be {' or '.join(web.DTYPES)}, got {targets.dtype!r}")
    places = [p.absolute() for p in wanted.values()]
    if len(set(places)) < len(places):
        raise ConfigError("two exports given the same path")
    c = runfolder.open_checkpoint(target)
    # Every output is checked before any work, then everything is built before anything
    # is written.
    folders: dict[str, Callable[[Path], bool]] = {"--web-dir": web.is_web_folder,
                                                  "--hf": hub.is_hub_folder}
    for flag, path in wanted.items():
        if flag in folders:
            check_folder_out(path, folders[flag])
        else:
            check_out(path)
    built: dict[str, bytes | dict[str, bytes]] = {}
    if targets.web is not None:
        built["--web"] = shown(web.page(c, targets.dtype)).encode("utf-8")
    if targets.web_dir is not None:
        built["--web-dir"] = web.folder(c, targets.dtype)
    if targets.onnx is not None:
        built["--onnx"] = onnx_bytes(c)
    if targets.hf is not None:
        built["--hf"] = hub.files(c, targets.hf.resolve().name)
    done = []
    for flag, data in built.items():
        path = wanted[flag]
        if isinstance(data, dict):
            write_folder(path, data, folders[flag])
            size = sum(map(len, data.values()))
            done.append(f"wrote {path}/ ({', '.join(data)}; {_size(size)})")
        else:
            write_file(path, data)
            done.append(f"wrote {path} ({_size(len(data))})")
    return done

