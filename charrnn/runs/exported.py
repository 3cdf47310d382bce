"""A model folder made by ``charrnn export --hf``: its files, and how readers know one.

    DIR/model.safetensors   a charrnn checkpoint: float32 weights, metadata JSON in its header
    DIR/config.json         cell, sizes and vocabulary, for the Hub and for other programs
    DIR/README.md           the model card

The weights file is a whole checkpoint (the header carries everything a run folder's
``best.safetensors`` does, without the optimizer), so every command that reads a
checkpoint reads the folder as it is, through the same safe reader: no pickle, no code.
``config.json`` restates part of that header for readers that are not charrnn; a folder
whose two files disagree (one edited by hand) is refused rather than guessed at.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from charrnn.errors import CheckpointError

WEIGHTS, CONFIG, CARD = "model.safetensors", "config.json", "README.md"
MODEL_TYPE = "charrnn"


def config(meta: dict[str, Any]) -> dict[str, Any]:
    """config.json for a checkpoint's metadata: the model's fields, its vocabulary and
    which file holds the weights."""
    return {"model_type": MODEL_TYPE, **meta["model"], "vocab": meta["vocab"],
            "weights": WEIGHTS, "format": meta["format"],
            "format_version": meta["format_version"]}


def _read_config(folder: Path) -> dict[str, Any] | None:
    """The folder's config.json if it is charrnn's, else None (no file, another model's)."""
    path = folder / CONFIG
    if not path.is_file():
        return None
    try:
        found = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as e:
        raise CheckpointError(f"{path} cannot be read as JSON ({type(e).__name__})") from None
    return found if isinstance(found, dict) and found.get("model_type") == MODEL_TYPE else None


def weights_in(folder: Path) -> Path | None:
    """The weights of an exported folder (None: the folder is not one); a folder that
    says it is one but lacks its weights is an error naming the file."""
    if _read_config(folder) is None:
        return None
    weights = folder / WEIGHTS
    if not weights.is_file():
        raise CheckpointError(f"{folder} is an exported charrnn model but {WEIGHTS} is "
                              "missing; download the whole folder")
    return weights


def mismatch(path: Path, meta: dict[str, Any]) -> str | None:
    """Why the weights file ``path`` of an exported folder disagrees with the folder's
    config.json, if it does (None for any other checkpoint)."""
    if path.name != WEIGHTS:
        return None
    found = _read_config(path.parent)
    if found is None:
        return None
    expected = config(meta)
    wrong = sorted(k for k in expected if found.get(k) != expected[k])
    if wrong:
        return f"{CONFIG} beside it disagrees with the weights' header on {', '.join(wrong)}"
    return None
