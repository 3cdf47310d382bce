"""Checkpoints: one safetensors file per checkpoint, metadata as JSON inside its header.

A checkpoint is ``<run>/<name>.safetensors``: the model weights (float32), for ``latest``
also the optimizer and the carried training state, and under the header key ``charrnn``
a JSON document with the format version, model config, vocabulary, training config,
progress and versions. One file means one atomic rename: a reader sees the old
checkpoint or the new one, never half of each. Nothing is ever unpickled; the header is
parsed here before safetensors touches the file, so a foreign or damaged file is refused
with a clear message. numpy only: the torch side (``model.network.load_model``) reads
through here.
"""

from __future__ import annotations

import json
import os
import struct
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from charrnn.config import CHECKPOINT_SUFFIX, ModelConfig
from charrnn.data.text import Vocab
from charrnn.errors import CharRNNError, CheckpointError
from charrnn.files import NotAFile, atomic_write_bytes, open_regular, os_reason
from charrnn.runs import exported
from charrnn.safetext import dumps

FORMAT = "charrnn-checkpoint"
FORMAT_VERSION = 1
SUFFIX = CHECKPOINT_SUFFIX
_MAX_HEADER = 100 * 1024 * 1024


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
            with open_regular(self.path) as f:
                for name, shape in self.config.weight_shapes().items():
                    lo, hi = (int(x) for x in header[name]["data_offsets"])
                    a = np.empty(shape, dtype="<f4")
                    f.seek(data_start + lo)
                    if hi - lo != a.nbytes or f.readinto(a.data) != a.nbytes:
                        raise CheckpointError(f"{self.path}: weight {name} is truncated")
                    arrays[name] = a.astype(np.float32, copy=False)
        except OSError as e:
            raise CheckpointError(f"{self.path}: cannot read weights ({e})") from None
        require_finite(self.path, (np.isfinite(a).all() for a in arrays.values()))
        return arrays


def require_finite(path: Path, checks) -> None:
    """charrnn never saves NaN/inf weights; such a file was damaged or edited since."""
    if not all(bool(ok) for ok in checks):
        raise bad(path, "its weights contain NaN or infinite values")


def bad(path: Path, why: str) -> CheckpointError:
    return CheckpointError(f"{path} is not a usable charrnn checkpoint: {why}")


def read_header(path: Path) -> tuple[dict[str, Any], dict[str, Any]]:
    """Parse a safetensors header by hand: (tensor table, metadata dict)."""
    try:
        with open_regular(path) as f:
            size = os.fstat(f.fileno()).st_size
            head = f.read(8)
            if len(head) < 8:
                raise bad(path, "file is empty or truncated")
            (n,) = struct.unpack("<Q", head)
            if n > min(_MAX_HEADER, size - 8):
                raise bad(path, "not a safetensors file (or truncated)")
            header = json.loads(f.read(n))
    except (UnicodeDecodeError, json.JSONDecodeError):
        raise bad(path, "not a safetensors file (header is not JSON)") from None
    except NotAFile as e:
        raise bad(path, os_reason(e)) from None
    except OSError as e:
        raise CheckpointError(f"cannot read {path}: {e.strerror or e}") from None
    if not isinstance(header, dict):
        raise bad(path, "header is not a JSON object")
    meta = header.pop("__metadata__", None) or {}
    end = 0
    for name, info in header.items():
        if not (isinstance(info, dict) and isinstance(info.get("dtype"), str)
                and naturals(info.get("shape")) and naturals(info.get("data_offsets"), 2)):
            raise bad(path, f"malformed entry for tensor {name!r}")
        end = max(end, info["data_offsets"][1])
    if 8 + n + end != size:
        raise bad(path, "file is truncated or has trailing bytes")
    return header, meta


def naturals(value: Any, length: int | None = None) -> bool:
    """A JSON list of non-negative integers (of the given length): shapes and offsets."""
    return (isinstance(value, list) and (length is None or len(value) == length)
            and all(isinstance(v, int) and not isinstance(v, bool) and v >= 0 for v in value))


def inspect(path: str | Path) -> Checkpoint:
    """Open a checkpoint's metadata and check it against its tensors; no weights loaded."""
    path = Path(path)
    if path.suffix != SUFFIX:
        raise bad(path, f"expected a {SUFFIX} file (charrnn never loads pickles)")
    header, raw_meta = read_header(path)
    try:
        meta = json.loads(raw_meta["charrnn"])
    except (KeyError, TypeError, json.JSONDecodeError):
        raise bad(path, "no charrnn metadata (was it written by another program?)") from None
    if not isinstance(meta, dict) or meta.get("format") != FORMAT:
        raise bad(path, "no charrnn metadata (was it written by another program?)")
    version = meta.get("format_version")
    if not isinstance(version, int) or version < 1:
        raise bad(path, f"bad format version {version!r}")
    if version > FORMAT_VERSION:
        raise bad(path, f"written by a newer charrnn (format {version}, this one reads "
                         f"up to {FORMAT_VERSION}); upgrade charrnn")
    try:
        config = ModelConfig.from_dict(meta["model"])
        vocab = meta["vocab"]
        if not (isinstance(vocab, list) and all(
                isinstance(c, str) and len(c) == 1 and not 0xD800 <= ord(c) <= 0xDFFF
                for c in vocab)):  # a lone surrogate cannot be printed as UTF-8
            raise CharRNNError("vocabulary must be a list of single characters")
        Vocab(tuple(vocab))
    except KeyError as e:
        raise bad(path, f"metadata lacks {e}") from None
    except (CharRNNError, TypeError) as e:
        raise bad(path, f"bad metadata ({e})") from None
    why = _section_problem(meta)
    if why:
        raise bad(path, f"bad metadata ({why})")
    if config.vocab_size != len(vocab):
        raise bad(path, f"vocabulary has {len(vocab)} characters but the model "
                         f"{config.vocab_size}")
    why = exported.mismatch(path, meta)
    if why:
        raise bad(path, why)
    tensors = {k: (v["dtype"], tuple(v["shape"])) for k, v in header.items()}
    for name, shape in config.weight_shapes().items():
        if name not in tensors:
            raise bad(path, f"weight {name} is missing")
        dtype, got = tensors[name]
        if got != shape or dtype != "F32":
            raise bad(path, f"weight {name} is {dtype} {list(got)}, the config needs "
                             f"F32 {list(shape)}")
    return Checkpoint(path, meta, tensors)


_NUMBERS = {  # metadata fields that readers (info, list, report, eval) format as numbers
    "progress": ("step", "epoch", "chars_seen", "elapsed", "fraction", "lr", "train_loss",
                 "chars_per_s", "val_loss", "best_val_loss", "epoch_chunk", "bad_evals",
                 "eval_seconds"),
    "train": ("batch_size", "seq_len", "lr", "min_lr_ratio", "warmup_steps", "weight_decay",
              "grad_clip", "ema", "max_time", "max_steps", "epochs", "patience", "eval_every",
              "val_fraction", "seed"),
    "corpus": ("train_chars", "val_chars"),
}


def _section_problem(meta: dict[str, Any]) -> str | None:
    """What is wrong with the optional sections (training config, corpus, progress,
    versions, optimizer), if anything: each must be a JSON object of the right kinds of
    values, so that no command that only displays them can trip over an edited file."""
    for name in ("train", "corpus", "progress", "versions", "optimizer"):
        if name in meta and not isinstance(meta[name], dict):
            return f"{name} must be a JSON object"
    for name, keys in _NUMBERS.items():
        section = meta.get(name, {})
        for key in keys:  # fields other versions may add are not judged here
            value = section.get(key)
            if value is not None and (isinstance(value, bool)
                                      or not isinstance(value, (int, float))):
                return f"{name}.{key} must be a number, got {value!r}"
    corpus, versions = meta.get("corpus", {}), meta.get("versions", {})
    if not all(isinstance(corpus.get(k, ""), str) for k in ("source", "digest")):
        return "corpus source and digest must be strings"
    if not all(isinstance(v, str) for v in versions.values()):
        return "versions must be strings"
    return None


def build_meta(config: ModelConfig, vocab: Vocab, **extra: Any) -> dict[str, Any]:
    from dataclasses import asdict

    from charrnn import __version__

    return {"format": FORMAT, "format_version": FORMAT_VERSION,
            "model": asdict(config), "vocab": list(vocab.chars),
            "versions": {"charrnn": __version__, **extra.pop("versions", {})}, **extra}


def write(path: Path, tensors: dict[str, Any], meta: dict[str, Any]) -> None:
    """Atomically write a checkpoint; a failed write (disk full, read-only) leaves the
    previous checkpoint as it was and becomes one clear CheckpointError.

    ``tensors`` are numpy arrays or CPU torch tensors (read through ``np.asarray``, so
    this module needs no torch)."""
    try:
        atomic_write_bytes(path, encode(tensors, meta))
    except OSError as e:
        kept = ("the previous checkpoint there is intact" if path.is_file()
                else "nothing was saved")
        raise CheckpointError(f"cannot save checkpoint {path}: {os_reason(e)}; {kept}"
                              ) from None


def encode(tensors: dict[str, Any], meta: dict[str, Any]) -> bytes:
    """A checkpoint file's bytes: safetensors with the metadata JSON under ``charrnn``."""
    from safetensors.numpy import save

    arrays = {k: np.require(np.asarray(v), requirements="C") for k, v in tensors.items()}
    return save(arrays, metadata={"charrnn": dumps(meta, exact=True)})  # names kept exactly
