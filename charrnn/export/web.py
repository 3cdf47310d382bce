"""The model for the browser: ``model.json`` + a weights file for ``charrnn.js``, one
self-contained page, or a folder with both.

    model.json    format, model config, vocabulary, number format, each tensor's name,
                  shape and byte offset in the weights file, and what the model is
    weights.bin   the tensors of the checkpoint, torch's names and layout, little-endian
                  float16 or float32, one after another
    charrnn.js    the engine (an ES module, this package's ``charrnn.js``)
    index.html    the page, loading the three files above

The single page (``--web``) is the same page with the engine pasted into its script, the
model JSON in a <script type="application/json"> and the weights as base64 text: no
network, no external assets, it opens from a file:// URL.
"""

from __future__ import annotations

import base64
import html
import json
import re
from importlib import resources
from pathlib import Path
from typing import Any

import numpy as np

from charrnn.errors import CharRNNError
from charrnn.export.about import About
from charrnn.runs.checkpoint import Checkpoint
from charrnn.safetext import dumps, shown

FORMAT, FORMAT_VERSION = "charrnn-web", 1
ENGINE, MODEL, WEIGHTS, PAGE = "charrnn.js", "model.json", "weights.bin", "index.html"
DTYPES = {"float16": "<f2", "float32": "<f4"}
_HALF_MAX = float(np.finfo(np.float16).max)


def engine_source() -> str:
    """The JavaScript engine, as shipped in the package."""
    return resources.files("charrnn.export").joinpath(ENGINE).read_text(encoding="utf-8")


def _template() -> str:
    return resources.files("charrnn.export").joinpath("page.html").read_text(encoding="utf-8")


def web_model(c: Checkpoint, dtype: str) -> tuple[dict[str, Any], bytes]:
    """(model.json's object, the weights file's bytes) in float16 or float32."""
    if dtype not in DTYPES:
        raise CharRNNError(f"unknown number format {dtype!r}: use {' or '.join(DTYPES)}")
    tensors, parts, offset = [], [], 0
    for name, array in c.numpy_weights().items():
        if dtype == "float16" and np.abs(array).max(initial=0) > _HALF_MAX:
            raise CharRNNError(f"weight {name} holds values beyond float16's range "
                               f"(±{_HALF_MAX:g}); export with --dtype float32")
        data = np.ascontiguousarray(array, dtype=DTYPES[dtype]).tobytes()
        tensors.append({"name": name, "shape": list(array.shape), "offset": offset})
        parts.append(data)
        offset += len(data)
    meta = {"format": FORMAT, "format_version": FORMAT_VERSION,
            "model": {k: v for k, v in c.meta["model"].items() if k != "dropout"},
            "vocab": c.meta["vocab"], "dtype": dtype, "weights": WEIGHTS,
            "tensors": tensors, "about": About.of(c).as_dict()}
    return meta, b"".join(parts)


def _exports(source: str) -> list[str]:
    """The names the engine exports (``export const|function|class NAME``)."""
    return re.findall(r"^export (?:async )?(?:const|function|class) (\w+)", source, re.M)


def _page(c: Checkpoint, data: str, engine: str) -> str:
    about = About.of(c)
    slots = {"TITLE": html.escape(about.name), "ABOUT": html.escape(about.line()),
             "DATA": data, "ENGINE": engine}
    # One pass: text put in a slot (a run named "{{DATA}}") is never read as a slot.
    return re.sub(r"\{\{(\w+)\}\}", lambda m: slots[m.group(1)], _template())


def _script_json(value: Any) -> str:
    """JSON that can sit inside a <script> element (no '</' to end it early)."""
    return dumps(value).replace("</", "<\\/").replace("<!--", "<\\!--")


def page(c: Checkpoint, dtype: str) -> str:
    """The single self-contained page: engine, model and weights inside."""
    meta, weights = web_model(c, dtype)
    source = engine_source()
    data = (f'<script type="application/json" id="model-json">{_script_json(meta)}</script>\n'
            f'<script type="text/plain" id="model-weights">'
            f'{base64.b64encode(weights).decode("ascii")}</script>\n')
    engine = (f"{source}\nconst engine = {{ {', '.join(_exports(source))} }};\n"
              "const model = new Model(JSON.parse($data('model-json')), "
              "decodeBase64($data('model-weights')));\n"
              "function $data(id) { return document.getElementById(id).textContent; }")
    return _page(c, data, engine)


def folder(c: Checkpoint, dtype: str) -> dict[str, bytes]:
    """The files of ``--web-dir``: engine, model.json, weights and the page that loads them."""
    meta, weights = web_model(c, dtype)
    engine = (f'import * as engine from "./{ENGINE}";\n'
              f'const model = await engine.load("{MODEL}");')
    return {ENGINE: engine_source().encode("utf-8"),
            MODEL: dumps(meta, indent=1).encode("utf-8"),
            WEIGHTS: weights,
            PAGE: shown(_page(c, "", engine)).encode("utf-8")}


def is_web_folder(path: Path) -> bool:
    """Whether a folder is an earlier ``--web-dir`` export (its files only, model.json ours)."""
    try:
        names = {p.name for p in path.iterdir()}
        meta = json.loads((path / MODEL).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return False
    return names <= {ENGINE, MODEL, WEIGHTS, PAGE} and isinstance(meta, dict) \
        and meta.get("format") == FORMAT
