"""What training writes into its checkpoints and reads back to resume: the metadata, and
the resumable state inside ``latest``, written, read and checked here.

Besides the weights, ``latest`` holds what --resume needs to continue exactly:

    train.<weight name>          the trained weights, when the saved ones are their
                                 moving average (TrainConfig.ema)
    optim.<param index>.<name>   AdamW moments and step of each parameter (torch's order)
    carry.h, carry.c             the hidden (and LSTM cell) state carried by all B streams
    rng.cpu, rng.cuda            random-generator states (dropout masks)
    meta["optimizer"]            the optimizer's parameter groups (JSON)
    meta["progress"]             step, epoch, position in the epoch, time, best loss

Every tensor is checked against the model before any is used: a wrong shape would
otherwise surface as a crash steps into the resumed run.
"""

from __future__ import annotations

import math
import platform
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from charrnn.config import ModelConfig, TrainConfig
from charrnn.data.corpus import Corpus
from charrnn.data.text import Vocab
from charrnn.errors import CharRNNError, CheckpointError
from charrnn.model.network import CharRNN, State, load_tensors
from charrnn.runs import checkpoint as ckpt
from charrnn.train.signals import defer_sigint

TRAINED = "train."  # prefix of the trained weights beside their saved average


def weights_of(model: CharRNN) -> dict[str, torch.Tensor]:
    """A model's weights as they are saved: float32, on the CPU, contiguous."""
    return {k: v.detach().float().cpu().contiguous() for k, v in model.state_dict().items()}


def run_meta(mc: ModelConfig, corpus: Corpus, cfg: TrainConfig, progress: dict[str, Any],
             lineage: dict[str, Any] | None) -> dict[str, Any]:
    """A training checkpoint's metadata: model, vocabulary, training config, corpus,
    progress, versions and (fine-tuned) where it came from."""
    return ckpt.build_meta(
        mc, corpus.vocab, train=cfg.to_dict(), corpus=corpus.describe(), progress=progress,
        versions={"torch": torch.__version__, "python": platform.python_version()},
        created=time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        **({"init_from": lineage} if lineage else {}))


def write(path: Path, weights: dict[str, torch.Tensor], meta: dict[str, Any],
          state: tuple[torch.optim.Optimizer, State | None, torch.device,
                       dict[str, torch.Tensor] | None] | None = None) -> None:
    """Write a checkpoint; ``state`` (optimizer, carried state, device, trained weights)
    adds everything --resume needs. A Ctrl-C waits until the file is whole."""
    tensors = dict(weights)
    if state is not None:
        packed, meta["optimizer"] = pack(*state)
        tensors.update(packed)
    with defer_sigint():
        ckpt.write(path, tensors, meta)


def read(path: Path, opt: torch.optim.Optimizer, mc: ModelConfig, batch_size: int,
         vocab: Vocab) -> Restored:
    """The resumable state in ``latest`` at ``path``, checked against this run."""
    c = ckpt.inspect(path)
    check_meta(c)
    if c.vocab != vocab:
        raise CharRNNError("the corpus's characters differ from the checkpoint's vocabulary")
    return unpack(c, load_tensors(c, "cpu"), opt, mc, batch_size)


def pack(opt: torch.optim.Optimizer, carry: State | None, device: torch.device,
         trained: dict[str, torch.Tensor] | None = None
         ) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
    """The tensors and the metadata section that let a run continue where it is;
    ``trained``: the trained weights, where the saved ones are an average."""
    tensors = {f"{TRAINED}{k}": v for k, v in (trained or {}).items()}
    state = opt.state_dict()
    for idx, st in state["state"].items():
        for key, t in st.items():
            tensors[f"optim.{idx}.{key}"] = t.detach().cpu().contiguous()
    if carry is not None:
        parts = carry if isinstance(carry, tuple) else (carry,)
        for key, t in zip("hc", parts, strict=False):
            tensors[f"carry.{key}"] = t.detach().float().cpu().contiguous()
    tensors["rng.cpu"] = torch.get_rng_state()
    if device.type == "cuda":
        tensors["rng.cuda"] = torch.cuda.get_rng_state(device)
    return tensors, {"param_groups": [dict(g) for g in state["param_groups"]]}


@dataclass
class Restored:
    """What ``read`` read back, checked: applied by ``Trainer.resume``."""

    weights: dict[str, torch.Tensor]  # the trained ones
    average: dict[str, torch.Tensor] | None  # the saved average of them, if it is one
    optimizer: dict[str, Any]  # an optimizer state_dict
    carry: State | None  # all B streams, on the CPU
    rng_cpu: torch.Tensor
    rng_cuda: torch.Tensor | None
    progress: dict[str, Any]
    lineage: dict[str, Any] | None  # init_from: the model a fine-tuned run started from


def check_meta(c: ckpt.Checkpoint) -> None:
    """Refuse a checkpoint whose training state (written only to ``latest``) is damaged.

    ``inspect`` checks what sampling needs; resuming also reads the training config,
    the corpus path, the position in the run and the optimizer's groups, so an edited
    or wrong-typed value there must be one clear message too, not a crash mid-resume.
    """
    meta = c.meta
    if "optimizer" not in meta:
        raise CheckpointError(f"{c.path} holds weights only; resume from a latest checkpoint")
    try:
        TrainConfig.from_dict(meta["train"])
        source, progress = meta["corpus"]["source"], meta["progress"]
        groups = meta["optimizer"]["param_groups"]
        counts = [progress[k] for k in ("step", "epoch", "epoch_chunk", "chars_seen",
                                        "bad_evals")]
        times = [progress["elapsed"], progress.get("eval_seconds", 0.0)] + (
            [] if progress["best_val_loss"] is None else [progress["best_val_loss"]])
    except KeyError as e:
        raise ckpt.bad(c.path, f"training state lacks {e}") from None
    except (CharRNNError, TypeError) as e:
        raise ckpt.bad(c.path, f"bad training state ({e})") from None
    if not isinstance(source, str) or "\0" in source:
        raise ckpt.bad(c.path, "bad training state (corpus source is not a path)")
    if not all(isinstance(v, int) and not isinstance(v, bool) and v >= 0 for v in counts):
        raise ckpt.bad(c.path, "bad training state (progress counters must be integers >= 0)")
    if not all(isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)
               and v >= 0 for v in times):
        raise ckpt.bad(c.path, "bad training state (progress times and losses must be finite)")
    if not (isinstance(groups, list) and groups and all(
            isinstance(g, dict) and ckpt.naturals(g.get("params")) for g in groups)):
        raise ckpt.bad(c.path, "bad training state (optimizer parameter groups)")


def unpack(c: ckpt.Checkpoint, t: dict[str, torch.Tensor], opt: torch.optim.Optimizer,
           mc: ModelConfig, batch_size: int) -> Restored:
    """Read the state of ``c`` (tensors ``t``) for a model ``mc`` and optimizer ``opt``."""
    _check_tensors(c, t, opt, mc, batch_size)
    state: dict[str, Any] = {"state": {}, "param_groups": c.meta["optimizer"]["param_groups"]}
    for key, value in t.items():
        if key.startswith("optim."):
            _, idx, name = key.split(".", 2)
            state["state"].setdefault(int(idx), {})[name] = value
    carry: State | None = None
    if "carry.h" in t:
        carry = (t["carry.h"], t["carry.c"]) if "carry.c" in t else t["carry.h"]
    saved = {k: t[k] for k in mc.weight_shapes()}
    if f"{TRAINED}{next(iter(saved))}" in t:
        weights, average = {k: t[f"{TRAINED}{k}"] for k in saved}, saved
    else:
        weights, average = saved, None
    return Restored(weights, average, state, carry, t["rng.cpu"], t.get("rng.cuda"),
                    c.meta["progress"], c.meta.get("init_from"))


def _check_tensors(c: ckpt.Checkpoint, t: dict[str, torch.Tensor], opt: torch.optim.Optimizer,
                   mc: ModelConfig, batch_size: int) -> None:
    """Optimizer moments, carried state and RNG must fit this model before any is used."""
    params = [p for g in opt.param_groups for p in g["params"]]  # torch's order
    groups = c.meta["optimizer"]["param_groups"]
    ids = sorted(i for g in groups for i in g["params"])
    if ids != list(range(len(params))) or [len(g["params"]) for g in groups] != [
            len(g["params"]) for g in opt.param_groups]:
        raise CheckpointError(f"{c.path}: optimizer state does not fit the model")
    for key, value in t.items():
        if key.startswith("optim."):
            idx = (key.split(".") + [""])[1]  # optim.<param index>.<state name>
            ok = (key.count(".") >= 2 and idx.isdigit() and int(idx) < len(params)
                  and value.dtype == torch.float32)
            if ok and value.ndim:
                ok = value.shape == params[int(idx)].shape
            if not ok:
                raise CheckpointError(f"{c.path}: tensor {key} does not fit the model")
    shapes = mc.weight_shapes()
    trained = [k for k in t if k.startswith(TRAINED)]
    if trained and (sorted(trained) != sorted(f"{TRAINED}{k}" for k in shapes) or any(
            t[f"{TRAINED}{k}"].dtype != torch.float32
            or tuple(t[f"{TRAINED}{k}"].shape) != s for k, s in shapes.items())):
        raise CheckpointError(f"{c.path}: trained weights do not fit the model")
    want = (mc.num_layers, batch_size, mc.hidden_size)
    carried = [k for k in ("carry.h", "carry.c") if k in t]
    if any(tuple(t[k].shape) != want for k in carried) or (
            carried and len(carried) != (2 if mc.cell == "lstm" else 1)):
        raise CheckpointError(f"{c.path}: carried state does not fit the model")
    if not all(v.isfinite().all() for v in t.values() if v.is_floating_point()):
        raise CheckpointError(f"{c.path} is not a usable charrnn checkpoint: its "
                              "weights contain NaN or infinite values")
    rng = t.get("rng.cpu")
    if rng is None or rng.dtype != torch.uint8 or rng.shape != torch.get_rng_state().shape:
        raise CheckpointError(f"{c.path}: random-generator state is missing or damaged")
