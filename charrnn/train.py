"""The training loop: truncated BPTT over B carried streams, AdamW, warm-up + cosine decay.

The loop knows nothing about progress bars: it reports through ``Callbacks``, and the CLI
draws them. It writes ``latest`` (everything needed to resume exactly) and ``best`` (the
lowest validation loss) checkpoints and a JSON-lines metrics log into its run folder.
"""

from __future__ import annotations

import math
import platform
import signal
import time
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from charrnn import checkpoint as ckpt
from charrnn.config import ModelConfig, TrainConfig
from charrnn.data import Batches, Corpus, min_train_chars
from charrnn.errors import CharRNNError
from charrnn.evaluate import score_ids
from charrnn.model import CharRNN, State, detach_state

LATEST, BEST, METRICS = "latest", "best", "metrics.jsonl"


def pick_device(name: str) -> torch.device:
    """'auto' -> cuda, then mps, then cpu; an explicit device must exist."""
    if name == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda")
        if torch.backends.mps.is_available():
            return torch.device("mps")
        return torch.device("cpu")
    if name.startswith("cuda") and not torch.cuda.is_available():
        raise CharRNNError("--device cuda: no CUDA GPU is available to torch")
    if name == "mps" and not torch.backends.mps.is_available():
        raise CharRNNError("--device mps: Apple's MPS backend is not available")
    return torch.device(name)


def pick_dtype(precision: str, device: torch.device) -> torch.dtype | None:
    """The autocast dtype for training, or None for plain float32.

    'auto' takes bfloat16 where the hardware runs it natively (CUDA GPUs that support
    it, CPUs with AMX tiles), where it roughly doubles LSTM throughput; float32 elsewhere.
    """
    if precision == "fp32" or device.type == "mps":
        return None
    if device.type == "cuda":
        ok = torch.cuda.is_bf16_supported()
    else:
        try:
            ok = torch.cpu._is_amx_tile_supported() if precision == "auto" else True
        except AttributeError:  # older torch without the probe
            ok = precision == "bf16"
    if precision == "bf16" and not ok:
        raise CharRNNError(f"--precision bf16: {device.type} here does not support bfloat16")
    return torch.bfloat16 if ok else None


@dataclass
class Progress:
    """What the loop reports to callbacks after each step or evaluation."""

    step: int
    epoch: int
    chars_seen: int
    elapsed: float  # seconds of this run's wall time, over all resumed sessions
    fraction: float  # of the budget, 0..1
    lr: float
    train_loss: float
    chars_per_s: float
    val_loss: float | None = None
    best_val_loss: float | None = None


class Callbacks:
    """Hooks for a front end; the defaults do nothing."""

    def on_start(self, info: dict[str, Any]) -> None: ...
    def on_step(self, p: Progress) -> None: ...
    def on_eval(self, p: Progress, improved: bool) -> None: ...
    def on_message(self, text: str) -> None: ...


@dataclass
class Result:
    reason: str  # budget | early-stop | interrupted | diverged
    progress: Progress
    run_dir: Path
    best_val_loss: float | None
    eval_seconds: float  # spent validating and checkpointing, included in elapsed


def lr_at(cfg: TrainConfig, step: int, fraction: float) -> float:
    """Linear warm-up over the first steps, then cosine decay to the floor at fraction 1."""
    warm = min(1.0, (step + 1) / cfg.warmup_steps) if cfg.warmup_steps else 1.0
    decay = 0.5 * (1.0 + math.cos(math.pi * min(max(fraction, 0.0), 1.0)))
    return cfg.lr * warm * (cfg.min_lr_ratio + (1.0 - cfg.min_lr_ratio) * decay)


@contextmanager
def _defer_sigint():
    """Hold Ctrl-C until a checkpoint write finishes; re-raise it afterwards."""
    pending: list[int] = []
    try:
        old = signal.signal(signal.SIGINT, lambda s, f: pending.append(s))
    except ValueError:  # not the main thread: nothing to defer
        yield
        return
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, old)
        if pending:
            raise KeyboardInterrupt


class Trainer:
    def __init__(self, model_config: ModelConfig, config: TrainConfig, corpus: Corpus,
                 run_dir: Path, callbacks: Callbacks | None = None) -> None:
        if not config.has_budget:
            raise CharRNNError("give a budget: --max-time, --max-steps or --epochs")
        need = min_train_chars(config.batch_size, config.seq_len)
        if len(corpus.train) < need:
            raise CharRNNError(
                f"training text too short: {len(corpus.train)} characters, one chunk of "
                f"{config.batch_size} streams x {config.seq_len} needs {need}; lower "
                "--batch-size / --seq-len or use a longer text")
        self.mc, self.cfg, self.corpus, self.run_dir = model_config, config, corpus, run_dir
        self.cb = callbacks or Callbacks()
        self.device = pick_device(config.device)
        self.dtype = pick_dtype(config.precision, self.device)
        torch.manual_seed(config.seed)
        self.model = CharRNN(model_config).to(self.device)
        self.forward = torch.compile(self.model) if config.compile else self.model
        self.opt = torch.optim.AdamW(self._param_groups(), lr=config.lr, betas=(0.9, 0.99))
        # position in the run; replaced by resume()
        self.step, self.epoch, self.chunk, self.chars_seen = 0, 0, 0, 0
        self.elapsed_before, self.best_val, self.bad_evals = 0.0, None, 0
        self.state: State | None = None
        self._t0: float | None = None  # perf_counter at the start of this session
        self._last_eval_step = -1
        self.eval_seconds = 0.0

    def _param_groups(self) -> list[dict]:
        """Weight decay on matrices only, not on biases or the embedding table."""
        decay, no_decay = [], []
        for name, p in self.model.named_parameters():
            (decay if p.ndim == 2 and not name.startswith("embed") else no_decay).append(p)
        return [{"params": decay, "weight_decay": self.cfg.weight_decay},
                {"params": no_decay, "weight_decay": 0.0}]

    # ---------------------------------------------------------------- checkpoints
    def _meta(self, progress: Progress) -> dict[str, Any]:
        return ckpt.build_meta(
            self.mc, self.corpus.vocab,
            train=self.cfg.to_dict(), corpus=self.corpus.describe(),
            progress={**asdict(progress), "epoch_chunk": self.chunk,
                      "bad_evals": self.bad_evals, "eval_seconds": self.eval_seconds},
            versions={"torch": torch.__version__, "python": platform.python_version()},
            created=time.strftime("%Y-%m-%dT%H:%M:%S%z"))

    def _weights(self) -> dict[str, torch.Tensor]:
        return {k: v.detach().float().cpu().contiguous()
                for k, v in self.model.state_dict().items()}

    def save(self, name: str, progress: Progress, full: bool) -> Path:
        tensors = self._weights()
        if full:  # everything needed to continue exactly where we are
            opt = self.opt.state_dict()
            for idx, st in opt["state"].items():
                for key, t in st.items():
                    tensors[f"optim.{idx}.{key}"] = t.detach().cpu().contiguous()
            if self.state is not None:
                parts = self.state if isinstance(self.state, tuple) else (self.state,)
                for key, t in zip("hc", parts, strict=False):
                    tensors[f"carry.{key}"] = t.detach().float().cpu().contiguous()
            tensors["rng.cpu"] = torch.get_rng_state()
            if self.device.type == "cuda":
                tensors["rng.cuda"] = torch.cuda.get_rng_state(self.device)
        meta = self._meta(progress)
        if full:
            meta["optimizer"] = {"param_groups": [
                {k: v for k, v in g.items()} for g in self.opt.state_dict()["param_groups"]]}
        path = self.run_dir / f"{name}{ckpt.SUFFIX}"
        with _defer_sigint():
            ckpt.write(path, tensors, meta)
        return path

    def resume(self, path: Path) -> None:
        """Restore weights, optimizer, RNG, carried state and position from ``latest``."""
        c = ckpt.inspect(path)
        if "optimizer" not in c.meta:
            raise CharRNNError(f"{path} holds weights only; resume from a latest checkpoint")
        if c.vocab != self.corpus.vocab:
            raise CharRNNError("the corpus's characters differ from the checkpoint's vocabulary")
        t = ckpt.load_tensors(c, "cpu")
        self.model.load_state_dict({k: t[k] for k in self.mc.weight_shapes()})
        opt = {"state": {}, "param_groups": c.meta["optimizer"]["param_groups"]}
        for key, value in t.items():
            if key.startswith("optim."):
                _, idx, name = key.split(".", 2)
                opt["state"].setdefault(int(idx), {})[name] = value
        self.opt.load_state_dict(opt)
        if "carry.h" in t:
            h = t["carry.h"].to(self.device)
            self.state = (h, t["carry.c"].to(self.device)) if "carry.c" in t else h
        torch.set_rng_state(t["rng.cpu"])
        if "rng.cuda" in t and self.device.type == "cuda":
            torch.cuda.set_rng_state(t["rng.cuda"], self.device)
        p = c.meta["progress"]
        self.step, self.epoch, self.chunk = p["step"], p["epoch"], p["epoch_chunk"]
        self.chars_seen, self.elapsed_before = p["chars_seen"], p["elapsed"]
        self.best_val, self.bad_evals = p["best_val_loss"], p["bad_evals"]
        self.eval_seconds = p.get("eval_seconds", 0.0)

    # ---------------------------------------------------------------- the loop
    def _batches(self, epoch: int) -> Batches:
        # A fresh offset per epoch moves the chunk edges, so no character always sits at
        # the start of a chunk; derived from (seed, epoch) so resume needs no RNG state.
        offset = int(np.random.default_rng([self.cfg.seed, epoch]).integers(self.cfg.seq_len))
        offset = min(offset, len(self.corpus.train) - min_train_chars(self.cfg.batch_size, 1))
        return Batches(self.corpus.train, self.cfg.batch_size, self.cfg.seq_len, max(offset, 0))

    def run(self) -> Result:
        cfg, model = self.cfg, self.model
        batches = self._batches(self.epoch)
        steps_per_epoch = len(batches)
        total_steps = min(cfg.max_steps or math.inf,
                          (cfg.epochs or math.inf) * steps_per_epoch)
        eval_steps = cfg.eval_every or (
            0 if cfg.max_time else max(1, int(min(total_steps, 10**9) // 10)))
        eval_seconds = min(max(cfg.max_time / 10, 30.0), 600.0) if cfg.max_time else 0.0
        self.cb.on_start({"device": str(self.device),
                          "precision": str(self.dtype or torch.float32).replace("torch.", ""),
                          "params": self.mc.num_params(),
                          "steps_per_epoch": steps_per_epoch, "run_dir": str(self.run_dir)})
        self.run_dir.mkdir(parents=True, exist_ok=True)
        metrics = (self.run_dir / METRICS).open("a", encoding="utf-8")
        self._t0 = time.perf_counter()
        reserve = 0.0  # seconds kept back at the end for the final validation and save
        last_eval_time = time.perf_counter()
        loss_sum, loss_n, rate, reason = 0.0, 0, 0.0, "budget"
        progress = self._progress(0.0, 0.0, math.nan, 0.0)
        model.train()
        try:
            while True:
                # ---- termination conditions and position in the budget
                elapsed = self._elapsed()
                fraction = max(
                    self.step / total_steps if total_steps < math.inf else 0.0,
                    elapsed / max(cfg.max_time - reserve, 1e-9) if cfg.max_time else 0.0)
                if fraction >= 1.0:
                    break
                if self.chunk >= len(batches):  # next epoch: fresh streams, zero state
                    self.epoch, self.chunk, self.state = self.epoch + 1, 0, None
                    batches = self._batches(self.epoch)
                lr = lr_at(cfg, self.step, fraction)
                for g in self.opt.param_groups:
                    g["lr"] = lr

                # ---- forward, backward, update
                t0 = time.perf_counter()
                x, y = batches.chunk(self.chunk)
                x = torch.from_numpy(x).to(self.device, non_blocking=True)
                y = torch.from_numpy(y).to(self.device, non_blocking=True)
                with torch.autocast(self.device.type, self.dtype or torch.float32,
                                    enabled=self.dtype is not None):
                    logits, state = self.forward(x, self.state)
                loss = F.cross_entropy(logits.float().flatten(0, 1), y.flatten())
                self.opt.zero_grad(set_to_none=True)
                loss.backward()
                if cfg.grad_clip > 0:
                    torch.nn.utils.clip_grad_norm_(model.parameters(), cfg.grad_clip)
                self.opt.step()
                loss_value = loss.item()  # a device sync point
                if not math.isfinite(loss_value):
                    reason = "diverged"
                    self.cb.on_message(
                        f"training diverged at step {self.step} (loss {loss_value}); the "
                        "checkpoints on disk are from before; try a lower --lr")
                    break
                self.state = detach_state(state)  # carry the values, cut the gradient
                self.step, self.chunk = self.step + 1, self.chunk + 1
                self.chars_seen += x.numel()
                dt = time.perf_counter() - t0
                rate = x.numel() / dt if rate == 0 else 0.9 * rate + 0.1 * x.numel() / dt
                loss_sum, loss_n = loss_sum + loss_value, loss_n + 1
                progress = self._progress(fraction, lr, loss_value, rate)
                self.cb.on_step(progress)
                if self.step % 20 == 0:
                    self._log(metrics, "train", progress, loss=loss_sum / loss_n)
                    loss_sum, loss_n = 0.0, 0

                # ---- periodic validation and checkpoints
                now = time.perf_counter()
                due = (eval_steps and self.step % eval_steps == 0) or (
                    eval_seconds and now - last_eval_time >= eval_seconds)
                if due:
                    stop = self._evaluate(progress, metrics)
                    reserve = time.perf_counter() - now
                    last_eval_time = time.perf_counter()
                    if stop:
                        reason = "early-stop"
                        break
        except KeyboardInterrupt:
            reason = "interrupted"
        try:
            if reason == "budget" and self._last_eval_step != self.step:
                self._evaluate(progress, metrics)
            elif reason == "interrupted" and self.step > 0:
                self.save(LATEST, self._progress(progress.fraction, progress.lr,
                                                 progress.train_loss, rate), full=True)
        finally:
            metrics.close()
        return Result(reason, progress, self.run_dir, self.best_val, self.eval_seconds)

    def _progress(self, fraction: float, lr: float, loss: float, rate: float) -> Progress:
        return Progress(self.step, self.epoch, self.chars_seen, self._elapsed(), fraction, lr,
                        loss, rate, best_val_loss=self.best_val)

    def _elapsed(self) -> float:
        running = time.perf_counter() - self._t0 if self._t0 is not None else 0.0
        return self.elapsed_before + running

    def _evaluate(self, progress: Progress, metrics) -> bool:
        """Validate, save latest (and best); True when patience has run out."""
        t0 = time.perf_counter()
        improved = True
        self._last_eval_step = self.step
        if len(self.corpus.val) >= 2:
            val = score_ids(self.model, self.corpus.val).loss
            progress.val_loss = val
            improved = self.best_val is None or val < self.best_val
            if improved:
                self.best_val, self.bad_evals = val, 0
            else:
                self.bad_evals += 1
        progress.best_val_loss = self.best_val
        self._log(metrics, "val", progress, loss=progress.val_loss)
        self.save(LATEST, progress, full=True)
        if improved:
            self.save(BEST, progress, full=False)
        self.eval_seconds += time.perf_counter() - t0
        self.cb.on_eval(progress, improved)
        return bool(self.cfg.patience) and self.bad_evals >= self.cfg.patience

    @staticmethod
    def _log(metrics, kind: str, p: Progress, loss: float | None) -> None:
        import json

        metrics.write(json.dumps({"kind": kind, "step": p.step, "epoch": p.epoch,
                                  "chars": p.chars_seen, "time": round(p.elapsed, 3),
                                  "lr": p.lr, "loss": loss, "chars_per_s": round(p.chars_per_s)})
                      + "\n")
        metrics.flush()
