"""Checkpoints: one safetensors file per checkpoint, metadata as JSON inside its header.

A checkpoint is ``<run>/<name>.safetensors``: the model weights (float32), for ``latest``
also the optimizer and the carried training state, and under the header key ``charrnn``
a JSON document with the format version, model config, vocabulary, training config,
progress and versions. One file means one atomic rename: a reader sees the old
checkpoint or the new one, never half of each. Nothing is ever unpickled; the header is
parsed here before safetensors touches the file, so a foreign or damaged file is refused
with a clear message.
"""

from __future__ import annotations

import json
import os
import struct
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from charrnn.config import ModelConfig
from charrnn.errors import CharRNNError, CheckpointError
from charrnn.text import Vocab

FORMAT = "charrnn-checkpoint"
FORMAT_VERSION = 1
SUFFIX = ".safetensors"
DEFAULT_ROOT = Path("checkpoints")
_MAX_HEADER = 100 * 1024 * 1024
_DTYPES = {"F32": np.float32, "F16": np.float16, "BF16": None, "F64": np.float64,
           "I64": np.int64, "I32": np.int32, "U8": np.uint8, "BOOL": np.bool_}


@dataclass
class Checkpoint:
    """A checkpoint's metadata, read and checked without loading the weights."""

    path: Path
    meta: dict[str, Any]
    tensors: dict[str, tuple[str, tuple[int, ...]]]  # name -> (dtype, shape)

    @property
    def config(self) -> ModelConfig:
        return ModelConfig.from_dict(self.meta["model"])

    @property
    def vocab(self) -> Vocab:
        return Vocab(tuple(self.meta["vocab"]))

    def numpy_weights(self) -> dict[str, np.ndarray]:
        """The model's weights as float32 numpy arrays (no torch needed).

        Read straight into arrays at the offsets the header gives: only the model's
        tensors (not the optimizer state of a ``latest`` checkpoint), one copy, no
        extra imports, which keeps ``charrnn sample``'s start-up short.
        """
        header, _ = read_header(self.path)
        try:
            data_start = self.path.stat().st_size - max(
                (int(v["data_offsets"][1]) for v in header.values()), default=0)
            arrays = {}
            with self.path.open("rb") as f:
                for name, shape in self.config.weight_shapes().items():
                    lo, hi = (int(x) for x in header[name]["data_offsets"])
                    a = np.empty(shape, dtype="<f4")
                    f.seek(data_start + lo)
                    if hi - lo != a.nbytes or f.readinto(a) != a.nbytes:
                        raise CheckpointError(f"{self.path}: weight {name} is truncated")
                    arrays[name] = a.astype(np.float32, copy=False)
        except OSError as e:
            raise CheckpointError(f"{self.path}: cannot read weights ({e})") from None
        return arrays


def _bad(path: Path, why: str) -> CheckpointError:
    return CheckpointError(f"{path} is not a usable charrnn checkpoint: {why}")


def read_header(path: Path) -> tuple[dict[str, Any], dict[str, Any]]:
    """Parse a safetensors header by hand: (tensor table, metadata dict)."""
    try:
        size = path.stat().st_size
        with path.open("rb") as f:
            head = f.read(8)
            if len(head) < 8:
                raise _bad(path, "file is empty or truncated")
            (n,) = struct.unpack("<Q", head)
            if n > min(_MAX_HEADER, size - 8):
                raise _bad(path, "not a safetensors file (or truncated)")
            header = json.loads(f.read(n))
    except (UnicodeDecodeError, json.JSONDecodeError):
        raise _bad(path, "not a safetensors file (header is not JSON)") from None
    except IsADirectoryError:
        raise _bad(path, "it is a directory") from None
    except OSError as e:
        raise CheckpointError(f"cannot read {path}: {e.strerror or e}") from None
    if not isinstance(header, dict):
        raise _bad(path, "header is not a JSON object")
    meta = header.pop("__metadata__", None) or {}
    end = 0
    for name, info in header.items():
        try:
            lo, hi = info["data_offsets"]
            end = max(end, int(hi))
        except (TypeError, KeyError, ValueError):
            raise _bad(path, f"malformed entry for tensor {name!r}") from None
    if 8 + n + end != size:
        raise _bad(path, "file is truncated or has trailing bytes")
    return header, meta


def inspect(path: str | Path) -> Checkpoint:
    """Open a checkpoint's metadata and check it against its tensors; no weights loaded."""
    path = Path(path)
    if path.suffix != SUFFIX:
        raise _bad(path, f"expected a {SUFFIX} file (charrnn never loads pickles)")
    header, raw_meta = read_header(path)
    try:
        meta = json.loads(raw_meta["charrnn"])
    except (KeyError, TypeError, json.JSONDecodeError):
        raise _bad(path, "no charrnn metadata (was it written by another program?)") from None
    if not isinstance(meta, dict) or meta.get("format") != FORMAT:
        raise _bad(path, "no charrnn metadata (was it written by another program?)")
    version = meta.get("format_version")
    if not isinstance(version, int) or version < 1:
        raise _bad(path, f"bad format version {version!r}")
    if version > FORMAT_VERSION:
        raise _bad(path, f"written by a newer charrnn (format {version}, this one reads "
                         f"up to {FORMAT_VERSION}); upgrade charrnn")
    try:
        config = ModelConfig.from_dict(meta["model"])
        vocab = meta["vocab"]
        if not (isinstance(vocab, list) and all(isinstance(c, str) and len(c) == 1
                                                for c in vocab)):
            raise CharRNNError("vocabulary must be a list of single characters")
        Vocab(tuple(vocab))
    except KeyError as e:
        raise _bad(path, f"metadata lacks {e}") from None
    except (CharRNNError, TypeError) as e:
        raise _bad(path, f"bad metadata ({e})") from None
    if config.vocab_size != len(vocab):
        raise _bad(path, f"vocabulary has {len(vocab)} characters but the model "
                         f"{config.vocab_size}")
    tensors = {k: (v.get("dtype"), tuple(v.get("shape", ()))) for k, v in header.items()}
    for name, shape in config.weight_shapes().items():
        if name not in tensors:
            raise _bad(path, f"weight {name} is missing")
        dtype, got = tensors[name]
        if got != shape or dtype != "F32":
            raise _bad(path, f"weight {name} is {dtype} {list(got)}, the config needs "
                             f"F32 {list(shape)}")
    return Checkpoint(path, meta, tensors)


def build_meta(config: ModelConfig, vocab: Vocab, **extra: Any) -> dict[str, Any]:
    from dataclasses import asdict

    from charrnn import __version__

    return {"format": FORMAT, "format_version": FORMAT_VERSION,
            "model": asdict(config), "vocab": list(vocab.chars),
            "versions": {"charrnn": __version__, **extra.pop("versions", {})}, **extra}


def write(path: Path, tensors: dict[str, Any], meta: dict[str, Any]) -> None:
    """Atomically write a checkpoint: temp file, fsync, rename, fsync the folder."""
    from safetensors.torch import save

    blob = save(tensors, metadata={"charrnn": json.dumps(meta, ensure_ascii=False)})
    atomic_write_bytes(path, blob)


def atomic_write_bytes(path: Path, data: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        os.fchmod(fd, 0o666 & ~_umask())  # mkstemp's 0600 would hide checkpoints from others
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    dir_fd = os.open(path.parent, os.O_RDONLY)
    try:
        os.fsync(dir_fd)
    finally:
        os.close(dir_fd)


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def load_tensors(ckpt: Checkpoint, device: str = "cpu") -> dict[str, Any]:
    """All tensors of a checkpoint as torch tensors (safetensors: no pickle, no code)."""
    from safetensors.torch import load_file

    try:
        return load_file(str(ckpt.path), device=device)
    except Exception as e:
        raise CheckpointError(f"{ckpt.path}: cannot read weights ({e})") from None


def resolve(target: str | Path | None, root: Path = DEFAULT_ROOT) -> Path:
    """A checkpoint file from a file, a run folder, or (None) the newest run under root.

    In a run folder the best checkpoint (lowest validation loss) is preferred over latest.
    """
    if target is None:
        if not root.is_dir():
            raise CheckpointError(f"no checkpoints found: {root}/ does not exist; "
                                  "train a model first (charrnn train FILE)")
        runs = [p for p in root.rglob(f"*{SUFFIX}") if not p.name.startswith(".")]
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
    for name in ("best", "latest"):
        p = run / f"{name}{SUFFIX}"
        if p.is_file():
            return p
    others = sorted(run.glob(f"*{SUFFIX}"))
    if not others:
        raise CheckpointError(f"no checkpoint in {run}/")
    return others[0]


def load_model(checkpoint: Checkpoint, device: str = "cpu"):
    """A ``CharRNN`` in eval mode with the checkpoint's weights (imports torch)."""
    from charrnn.model import CharRNN

    tensors = load_tensors(checkpoint, device)
    model = CharRNN(checkpoint.config).to(device)
    model.load_state_dict({k: tensors[k] for k in checkpoint.config.weight_shapes()})
    return model.eval()
