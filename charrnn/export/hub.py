"""A folder ready for the Hugging Face Hub (``hf upload OWNER/NAME DIR``): the weights as
safetensors, ``config.json``, and a ``README.md`` model card whose YAML header is what
the Hub reads (library, pipeline, tags, the held-out score as a model-index result).

The weights file is a charrnn checkpoint (``runs.exported``), so ``charrnn sample -c DIR``,
eval, serve and ``api.load(DIR)`` read the folder as downloaded.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from charrnn.errors import CharRNNError
from charrnn.export.about import About
from charrnn.runs import checkpoint as ckpt
from charrnn.runs import exported
from charrnn.runs.checkpoint import Checkpoint
from charrnn.safetext import dumps, shown

KEEP = ("format", "format_version", "model", "vocab", "versions", "train", "corpus",
        "progress", "created", "init_from")  # the checkpoint's metadata, less the optimizer's


def files(c: Checkpoint, name: str) -> dict[str, bytes]:
    """The folder's files by name, for a repository called ``name`` (the folder's)."""
    meta = {k: v for k, v in c.meta.items() if k in KEEP}
    config = exported.config(meta)
    return {exported.WEIGHTS: ckpt.encode(c.numpy_weights(), meta),
            exported.CONFIG: (dumps(config, indent=1) + "\n").encode("utf-8"),
            exported.CARD: shown(card(c, meta, name)).encode("utf-8")}


def is_hub_folder(path: Path) -> bool:
    """Whether a folder is an earlier ``--hf`` export (its files only, config ours)."""
    try:
        names = {p.name for p in path.iterdir()}
        return (names <= {exported.WEIGHTS, exported.CONFIG, exported.CARD}
                and exported.weights_in(path) is not None)
    except (OSError, CharRNNError):  # unreadable, a config.json that is not JSON, no
        return False  # weights: not an export to replace


def _yaml(value: Any) -> str:
    """A YAML scalar: JSON strings and numbers are valid YAML."""
    return dumps(value)


def front_matter(a: About) -> str:
    """The card's YAML header: what the Hub indexes and shows beside the card."""
    lines = ["---", "library_name: charrnn", "pipeline_tag: text-generation", "tags:"]
    lines += [f"- {t}" for t in ("charrnn", "char-rnn", "character-level", a.cell,
                                 "safetensors")]
    if a.bits_per_char is not None:
        lines += ["model-index:", f"- name: {_yaml(a.name)}", "  results:",
                  "  - task:", "      type: text-generation",
                  "      name: Character-level language modelling",
                  "    dataset:", f"      name: {_yaml(a.corpus)}",
                  "      type: text",
                  "    metrics:", "    - type: bits_per_character",
                  f"      value: {a.bits_per_char:.4f}",
                  "      name: Held-out bits per character"]
    return "\n".join([*lines, "---", ""])


def _held_out(meta: dict[str, Any]) -> str:
    corpus, train = meta.get("corpus", {}), meta.get("train", {})
    fraction = train.get("val_fraction")
    part = (f"the last {fraction:.0%} of every file" if "files" in corpus
            else f"the last {fraction:.0%} of the corpus") if fraction else "the held-out text"
    chars = corpus.get("val_chars")
    size = f", {chars:,} characters" if isinstance(chars, int) else ""
    most = train.get("val_max_chars")
    sample = f"; a fixed spread sample of at most {most:,} of them is scored" if most else ""
    return f"{part}{size}{sample}"


def card(c: Checkpoint, meta: dict[str, Any], name: str) -> str:
    """README.md: YAML header, then what the model is, how it scored, what it was trained
    on and how, and how to sample from it."""
    a = About.of(c)
    a.name = name
    prog, train = meta.get("progress", {}), meta.get("train", {})
    out = [front_matter(a), f"# {a.name}", "",
           f"A character-level {a.cell.upper()} language model ({a.layers} "
           f"layer{'s' if a.layers > 1 else ''} of "
           f"{a.hidden_size} units, embedding {a.embed_size}, {a.parameters:,} parameters, "
           f"{a.vocab_size} characters) trained with charrnn. It reads and writes one "
           "character at a time: no tokenizer, any script.", ""]
    out += ["## Evaluation", ""]
    if a.val_loss is not None:
        at = f" at step {a.step:,}" if isinstance(a.step, int) else ""
        out += [f"Held-out loss: **{a.bits_per_char:.4f} bits per character** "
                f"({a.val_loss:.4f} nats/char){at}, as training measured it on text it "
                f"never trained on: {_held_out(meta)}.", ""]
    else:
        out += ["No held-out loss was recorded for this checkpoint.", ""]
    out += ["## Training data", "",
            f"- corpus: `{a.corpus}`",
            f"- digest of its text: `{a.digest}`"]
    if a.train_chars is not None:
        out.append(f"- {a.train_chars:,} training and {a.val_chars or 0:,} held-out characters")
    out += [f"- {key.strip()}: {value}" for key, value in a.lineage]
    out += ["", "## Training", ""]
    if prog:
        out.append(f"- {prog.get('step', 0):,} steps, {prog.get('chars_seen', 0):,} "
                   "characters seen")
    if train:
        out.append(f"- batch {train.get('batch_size')} x {train.get('seq_len')} characters, "
                   f"peak learning rate {train.get('lr')}, weight decay "
                   f"{train.get('weight_decay')}" + (
                       f", saved weights: moving average (decay {train['ema']})"
                       if train.get("ema") else ""))
    versions = meta.get("versions", {})
    out.append("- " + ", ".join(f"{k} {v}" for k, v in versions.items()))
    out += ["", "## How to sample", "",
            "Download the folder and give it to charrnn as a checkpoint:", "",
            "```bash",
            f"hf download OWNER/{a.name} --local-dir {a.name}",
            f"charrnn sample -c {a.name} --temp 0.8 -n 500",
            f"charrnn serve -c {a.name}   # OpenAI-compatible HTTP API and a playground",
            "```", "", "```python", "from charrnn import api", "",
            f'model = api.load("{a.name}")',
            'print(model.generate(length=300, temperature=0.8, seed=1))', "```", "",
            "## Files", "",
            f"- `{exported.WEIGHTS}`: float32 weights in torch's names and layout (an "
            "embedding, `nn." + {"lstm": "LSTM", "gru": "GRU", "rnn": "RNN"}[a.cell]
            + "` layers, a linear head); the safetensors header's `charrnn` entry holds "
            "the configuration, vocabulary and training record as JSON",
            f"- `{exported.CONFIG}`: cell, sizes and vocabulary (id = position in "
            "`vocab`)",
            f"- `{exported.CARD}`: this card", ""]
    return "\n".join(out)
