"""Fine-tuning (``train --init-from``): a new run that starts from another model's weights.

Only the weights come from the source: the optimizer, step count and schedule start
afresh, in a new run folder. The architecture is the source's. Characters of the new
text that the source never saw grow the vocabulary; as the vocabulary is kept sorted by
code point, every old character's embedding row, head row and bias move to the
character's new id, so each keeps its meaning.

What is guaranteed at step 0 (tested): for every context, the probability of every old
character differs from the source's by at most ``NEW_MASS`` (1e-5), and the
distribution over the old characters renormalised is the source's exactly (up to float
rounding). Each new head row is the mean of the old rows (weights and bias) with the
bias lowered by ``c = log(k / NEW_MASS)`` for k new characters: the mean of the old
logits is at most their largest, so each new logit is at least c below the
log-sum-exp of the old ones and the k new characters share less than NEW_MASS, in every
context. The new logits start only c plus (log-sum-exp minus mean) below the old
ones, not at a "-inf" that gradients cannot lift, and the new rows get ordinary
gradients, so training learns the new characters (tested). New embedding rows are the
mean of the old ones.
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np

from charrnn.config import ModelConfig
from charrnn.data.text import Vocab
from charrnn.errors import ConfigError
from charrnn.runs import checkpoint as ckpt
from charrnn.runs import folder as runfolder

NEW_MASS = 1e-5  # at most this much probability on the new characters at step 0
# Fine-tuning defaults (docs/benchmarks.md, bench/finetune.py). The peak lr is the cell's
# training default (config.CELL_LR): with the weight average, fine-tuning an LSTM at
# 1.2e-2 and 1.6e-2 was 0.014-0.026 nats ahead of 8e-3 at 150 and 400 steps, a GRU was
# best at 6e-3-8e-3 (1.2e-2: 0.024 behind), an RNN flat from 4e-3 to 8e-3. Warm-up: 0,
# 20 and 50 steps within 0.01 at 8e-3, 20 best. A 2-minute budget instead of 10: the
# lead over training from scratch is largest early (0.11 at 1 minute, 0.03 at 5).
WARMUP = 20
BUDGET = 120.0  # seconds


def open_source(target: str | Path, run_dir: Path) -> ckpt.Checkpoint:
    """The checkpoint to start from: a run folder (its best) or a .safetensors file, never
    one in ``run_dir``, whose checkpoints the new run replaces."""
    p = Path(target)
    if not p.exists():
        raise ckpt.CheckpointError(f"--init-from: no such run or checkpoint: {p}")
    c = runfolder.open_checkpoint(p)
    if c.path.resolve().parent == Path(run_dir).resolve():
        raise ConfigError(f"--init-from {p} is the run folder the new run would replace; "
                          "choose another --out")
    c.numpy_weights()  # a truncated or non-finite file fails here, before any work
    return c


def model_config(c: ckpt.Checkpoint, vocab: Vocab, cell: str | None, layers: int | None,
                 hidden_size: int | None, embed_size: int | None,
                 dropout: float | None) -> ModelConfig:
    """The source's architecture over ``vocab``; a conflicting option is a usage error."""
    src = c.config
    asked = {"--cell": (cell, src.cell), "--layers": (layers, src.num_layers),
             "--hidden-size": (hidden_size, src.hidden_size),
             "--embed-size": (embed_size, src.embed_size)}
    conflicts = [f"{opt} {want} (the source has {have})"
                 for opt, (want, have) in asked.items() if want is not None and want != have]
    if conflicts:
        raise ConfigError(f"--init-from {c.path} fixes the architecture: "
                          f"{'; '.join(conflicts)}; drop the option or train from scratch")
    return replace(src, vocab_size=len(vocab),
                   dropout=src.dropout if dropout is None else dropout)


def grown_vocab(source: Vocab, text: Vocab) -> Vocab:
    """The source's characters plus the new text's, in code-point order."""
    return Vocab(tuple(sorted(set(source.chars) | set(text.chars), key=ord)))


def grown_weights(c: ckpt.Checkpoint, vocab: Vocab) -> dict[str, np.ndarray]:
    """The source's weights over ``vocab``: old rows moved to their new ids, new rows added
    as the module docstring says."""
    w = c.numpy_weights()
    index = {ch: i for i, ch in enumerate(vocab.chars)}
    old = np.array([index[ch] for ch in c.vocab.chars], dtype=np.int64)
    new = np.setdiff1d(np.arange(len(vocab)), old)
    out = dict(w)
    emb, head, bias = w["embed.weight"], w["head.weight"], w["head.bias"]
    out["embed.weight"] = np.empty((len(vocab), emb.shape[1]), np.float32)
    out["embed.weight"][old] = emb
    out["embed.weight"][new] = emb.mean(axis=0)
    out["head.weight"] = np.empty((len(vocab), head.shape[1]), np.float32)
    out["head.weight"][old] = head
    out["head.weight"][new] = head.mean(axis=0)
    out["head.bias"] = np.empty(len(vocab), np.float32)
    out["head.bias"][old] = bias
    if len(new):
        out["head.bias"][new] = bias.mean() - np.log(len(new) / NEW_MASS)
    return out


def retarget(corpus, c: ckpt.Checkpoint):
    """``corpus`` re-expressed in the vocabulary grown from the source's (ids remapped)."""
    from charrnn.data.corpus import remap_ids

    vocab = grown_vocab(c.vocab, corpus.vocab)
    if vocab != corpus.vocab:
        corpus.train = remap_ids(corpus.train, corpus.vocab, vocab)
        corpus.val = remap_ids(corpus.val, corpus.vocab, vocab)
        corpus.vocab = vocab
    return corpus


def lineage(c: ckpt.Checkpoint, vocab: Vocab) -> dict[str, Any]:
    """What a fine-tuned run records about where it came from (checkpoint meta init_from)."""
    corpus, progress = c.meta.get("corpus", {}), c.meta.get("progress", {})
    added = "".join(ch for ch in vocab.chars if ch not in c.vocab)
    out = {"checkpoint": str(c.path.resolve()), "corpus": str(corpus.get("source", "")),
           "digest": str(corpus.get("digest", "")), "step": int(progress.get("step", 0)),
           "best_val_loss": progress.get("best_val_loss"), "added_chars": added}
    if isinstance(c.meta.get("init_from"), dict):
        out["init_from"] = c.meta["init_from"]  # the source's own lineage
    return out


def start(trainer, c: ckpt.Checkpoint) -> None:
    """Load the grown source weights into a fresh trainer and record the lineage."""
    import torch

    weights = grown_weights(c, trainer.corpus.vocab)
    trainer.load_weights({k: torch.from_numpy(v) for k, v in weights.items()})
    trainer.lineage = lineage(c, trainer.corpus.vocab)


def check_request(init_from: str | None, resume: bool) -> None:
    if init_from is not None and resume:
        raise ConfigError("--init-from starts a new run and --resume continues one; "
                          "use one of them")
