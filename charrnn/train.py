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
from charrnn.data import Batches, Corpus, min_train_chars, val_windows
from charrnn.distributed import Dist
from charrnn.errors import CharRNNError
from charrnn.evaluate import score_ids
from charrnn.model import CharRNN, State, detach_state

LATEST, BEST, METRICS = "latest", "best", "metrics.jsonl"
MIN_EVAL_GAP = 30.0  # seconds between time-based validations, at the least
_VERDICTS = (None, "early-stop", "diverged")  # what a validation decides, as rank 0 sends it


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

    'auto' takes bfloat16 where the hardware runs it natively: CUDA GPUs that support it,
    and CPUs with AMX tiles (LSTM training 1.6-2.4x faster than float32) or AVX-512 BF16
    instructions (1.2-1.6x, e.g. AMD Zen 4); float32 elsewhere, where bf16 is emulated.
    """
    if precision == "fp32" or device.type == "mps":
        return None
    if device.type == "cuda":
        ok = torch.cuda.is_bf16_supported()
    else:
        try:
            ok = precision == "bf16" or (torch.cpu._is_amx_tile_supported()
                                           or torch.cpu._is_avx512_bf16_supported())
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
    saved: bool = False  # whether latest holds this session's final position
    stop_signal: int = 0  # SIGINT or SIGTERM when one stopped the run


def lr_at(cfg: TrainConfig, step: int, fraction: float) -> float:
    """Linear warm-up over the first steps, then cosine decay to the floor at fraction 1."""
    warm = min(1.0, (step + 1) / cfg.warmup_steps) if cfg.warmup_steps else 1.0
    decay = 0.5 * (1.0 + math.cos(math.pi * min(max(fraction, 0.0), 1.0)))
    return cfg.lr * warm * (cfg.min_lr_ratio + (1.0 - cfg.min_lr_ratio) * decay)


@contextmanager
def _defer_sigint():
    """Hold Ctrl-C until a checkpoint write finishes, then deliver it to the old handler."""
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
            signal.raise_signal(signal.SIGINT)


class _StopOnSignal:
    """Ctrl-C (or a plain ``kill``: SIGTERM) while training: finish the step in hand,
    then save and stop.

    A KeyboardInterrupt raised anywhere in a step (say between the optimizer update and
    the step counter) would save weights one step ahead of the recorded position, and the
    resumed run would no longer match an uninterrupted one. So the handler only sets a
    flag that the loop reads between steps. Validation changes no training state, so a
    Ctrl-C during it interrupts at once (``immediate``); during a save it waits.
    """

    SIGNALS = (signal.SIGINT, signal.SIGTERM)

    def __init__(self) -> None:
        self.requested = False
        self.signum = 0  # the signal that asked to stop, if any
        self._immediate = False

    def _handler(self, signum, frame) -> None:
        self.requested, self.signum = True, signum
        if self._immediate:
            raise KeyboardInterrupt

    @contextmanager
    def installed(self):
        try:
            old = [signal.signal(s, self._handler) for s in self.SIGNALS]
        except ValueError:  # not the main thread: signals never reach us here
            yield
            return
        try:
            yield
        finally:
            for s, handler in zip(self.SIGNALS, old, strict=True):
                signal.signal(s, handler)

    @contextmanager
    def immediate(self):
        """A stop signal inside this block raises KeyboardInterrupt (also one pending)."""
        self._immediate = True
        try:
            if self.requested:
                raise KeyboardInterrupt
            yield
        finally:
            self._immediate = False


def _drop_partial_line(path: Path) -> None:
    """A run killed mid-write leaves half a JSON line at the end of the log: cut it, so
    the resumed run's lines do not glue onto it and every line stays valid JSON."""
    if not path.is_file():
        return
    with path.open("r+b") as f:
        size = f.seek(0, 2)
        f.seek(max(0, size - 65536))
        tail = f.read()
        if tail and not tail.endswith(b"\n") and (b"\n" in tail or len(tail) == size):
            f.truncate(size - len(tail) + tail.rfind(b"\n") + 1)


class Trainer:
    """Trains one model; under torchrun (``dist``) one rank of a data-parallel job.

    Each rank trains on its own contiguous share of the B streams; only rank 0 logs,
    validates and writes checkpoints, which hold the whole job's carried state.
    """

    def __init__(self, model_config: ModelConfig, config: TrainConfig, corpus: Corpus,
                 run_dir: Path, callbacks: Callbacks | None = None,
                 dist: Dist | None = None) -> None:
        if not config.has_budget:
            raise CharRNNError("give a budget: --max-time, --max-steps or --epochs")
        self.dist = dist = dist or Dist()
        if config.batch_size % dist.world:
            raise CharRNNError(
                f"--batch-size {config.batch_size} does not split evenly over {dist.world} "
                f"processes; use a multiple of {dist.world}")
        need = min_train_chars(config.batch_size, config.seq_len)
        if len(corpus.train) < need:
            raise CharRNNError(
                f"training text too short: {len(corpus.train)} characters, one chunk of "
                f"{config.batch_size} streams x {config.seq_len} needs {need}; lower "
                "--batch-size / --seq-len or use a longer text")
        self.mc, self.cfg, self.corpus, self.run_dir = model_config, config, corpus, run_dir
        self.cb = callbacks or Callbacks()
        self.device = pick_device(config.device)
        if dist.enabled and self.device.type == "cuda":
            self.device = torch.device("cuda", dist.local_rank)
        share = config.batch_size // dist.world
        self.rows = slice(dist.rank * share, (dist.rank + 1) * share)  # this rank's streams
        self.dtype = pick_dtype(config.precision, self.device)
        torch.manual_seed(config.seed)
        self.model = CharRNN(model_config).to(self.device)
        net = self.model
        if dist.enabled:  # DDP checks every rank holds the same weights, then syncs grads
            from torch.nn.parallel import DistributedDataParallel

            net = DistributedDataParallel(
                self.model, device_ids=[self.device.index] if self.device.type == "cuda"
                else None)
        # what the loop calls: the model or its DDP wrapper, compiled if asked
        self.forward = torch.compile(net) if config.compile else net
        self._seed_rank(0)
        self.val_sample = val_windows(corpus.val, config.val_max_chars)
        self.opt = torch.optim.AdamW(self._param_groups(), lr=config.lr, betas=(0.9, 0.99))
        # position in the run; replaced by resume()
        self.step, self.epoch, self.chunk, self.chars_seen = 0, 0, 0, 0
        self.elapsed_before, self.best_val, self.bad_evals = 0.0, None, 0
        self.state: State | None = None
        self._t0: float | None = None  # perf_counter at the start of this session
        self._last_eval_step = -1
        self.eval_seconds = 0.0
        self._sigint = _StopOnSignal()
        self.lineage: dict[str, Any] | None = None  # set by finetune.start: init_from meta

    def request_stop(self) -> None:
        """Stop after the current step, saving latest, as Ctrl-C does."""
        self._sigint.requested = True

    def _seed_rank(self, step: int) -> None:
        """Other ranks draw their own dropout masks; rank 0 keeps the single-process ones."""
        if self.dist.rank:
            torch.manual_seed(self.cfg.seed + 7919 * self.dist.rank + step)

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
            created=time.strftime("%Y-%m-%dT%H:%M:%S%z"),
            **({"init_from": self.lineage} if self.lineage else {}))

    def _weights(self) -> dict[str, torch.Tensor]:
        return {k: v.detach().float().cpu().contiguous()
                for k, v in self.model.state_dict().items()}

    def save(self, name: str, progress: Progress, full: bool,
             carry: State | None = None) -> Path:
        """Write a checkpoint; ``carry``: the whole job's carried state (``_job_state``).

        In a single process it defaults to the trainer's own state.
        """
        if carry is None and not self.dist.enabled:
            carry = self.state
        tensors = self._weights()
        if full:  # everything needed to continue exactly where we are
            opt = self.opt.state_dict()
            for idx, st in opt["state"].items():
                for key, t in st.items():
                    tensors[f"optim.{idx}.{key}"] = t.detach().cpu().contiguous()
            if carry is not None:
                parts = carry if isinstance(carry, tuple) else (carry,)
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
        ckpt.check_resumable(c)
        if c.vocab != self.corpus.vocab:
            raise CharRNNError("the corpus's characters differ from the checkpoint's vocabulary")
        t = ckpt.load_tensors(c, "cpu")
        self._check_state_tensors(c, t)
        self.model.load_state_dict({k: t[k] for k in self.mc.weight_shapes()})
        opt = {"state": {}, "param_groups": c.meta["optimizer"]["param_groups"]}
        for key, value in t.items():
            if key.startswith("optim."):
                _, idx, name = key.split(".", 2)
                opt["state"].setdefault(int(idx), {})[name] = value
        self.opt.load_state_dict(opt)
        if "carry.h" in t:
            if t["carry.h"].shape[1] != self.cfg.batch_size:
                raise CharRNNError(f"{path} carries {t['carry.h'].shape[1]} streams, the "
                                   f"run has {self.cfg.batch_size}")
            h = t["carry.h"][:, self.rows].to(self.device)  # this rank's streams
            self.state = (h, t["carry.c"][:, self.rows].to(self.device)) if "carry.c" in t else h
        torch.set_rng_state(t["rng.cpu"])
        if "rng.cuda" in t and self.device.type == "cuda":
            torch.cuda.set_rng_state(t["rng.cuda"], self.device)
        p = c.meta["progress"]
        self.step, self.epoch, self.chunk = p["step"], p["epoch"], p["epoch_chunk"]
        self.chars_seen, self.elapsed_before = p["chars_seen"], p["elapsed"]
        self.best_val, self.bad_evals = p["best_val_loss"], p["bad_evals"]
        self.eval_seconds = p.get("eval_seconds", 0.0)
        self.lineage = c.meta.get("init_from")
        self._seed_rank(self.step)

    def _job_state(self) -> State | None:
        """The carried state of all B streams, gathered from every rank (a collective)."""
        if self.state is None or not self.dist.enabled:
            return self.state
        if isinstance(self.state, tuple):
            return tuple(self.dist.gather_streams(s) for s in self.state)  # type: ignore
        return self.dist.gather_streams(self.state)

    def _check_state_tensors(self, c: ckpt.Checkpoint, t: dict[str, torch.Tensor]) -> None:
        """Optimizer moments, carried state and RNG must fit this model before any is used:
        a wrong shape would otherwise surface as a crash steps into the resumed run."""
        params = [p for g in self.opt.param_groups for p in g["params"]]  # torch's order
        groups = c.meta["optimizer"]["param_groups"]
        ids = sorted(i for g in groups for i in g["params"])
        if ids != list(range(len(params))) or [len(g["params"]) for g in groups] != [
                len(g["params"]) for g in self.opt.param_groups]:
            raise ckpt.CheckpointError(f"{c.path}: optimizer state does not fit the model")
        for key, value in t.items():
            if key.startswith("optim."):
                idx = (key.split(".") + [""])[1]  # optim.<param index>.<state name>
                ok = (key.count(".") >= 2 and idx.isdigit() and int(idx) < len(params)
                      and value.dtype == torch.float32)
                if ok and value.ndim:
                    ok = value.shape == params[int(idx)].shape
                if not ok:
                    raise ckpt.CheckpointError(f"{c.path}: tensor {key} does not fit the model")
        want = (self.mc.num_layers, self.cfg.batch_size, self.mc.hidden_size)
        carried = [k for k in ("carry.h", "carry.c") if k in t]
        if any(tuple(t[k].shape) != want for k in carried) or (
                carried and len(carried) != (2 if self.mc.cell == "lstm" else 1)):
            raise ckpt.CheckpointError(f"{c.path}: carried state does not fit the model")
        if not all(v.isfinite().all() for v in t.values() if v.is_floating_point()):
            raise ckpt.CheckpointError(f"{c.path} is not a usable charrnn checkpoint: its "
                                       "weights contain NaN or infinite values")
        rng = t.get("rng.cpu")
        if rng is None or rng.dtype != torch.uint8 or rng.shape != torch.get_rng_state().shape:
            raise ckpt.CheckpointError(f"{c.path}: random-generator state is missing or damaged")

    # ---------------------------------------------------------------- the loop
    def _batches(self, epoch: int) -> Batches:
        # A fresh offset per epoch moves the chunk edges, so no character always sits at
        # the start of a chunk; derived from (seed, epoch) so resume needs no RNG state.
        offset = int(np.random.default_rng([self.cfg.seed, epoch]).integers(self.cfg.seq_len))
        offset = min(offset, len(self.corpus.train) - min_train_chars(self.cfg.batch_size, 1))
        return Batches(self.corpus.train, self.cfg.batch_size, self.cfg.seq_len, max(offset, 0))

    def run(self) -> Result:
        if self.dist.enabled:  # ranks must stop together: torchrun's Ctrl-C, unchanged
            return self._run()
        with self._sigint.installed():
            return self._run()

    def _run(self) -> Result:
        cfg, model, dist = self.cfg, self.model, self.dist
        batches = self._batches(self.epoch)
        # From the fixed offset 0, not this epoch's: the count (and so the lr schedule of
        # an --epochs budget) must not depend on the epoch a resumed session starts in.
        steps_per_epoch = len(Batches(self.corpus.train, cfg.batch_size, cfg.seq_len))
        total_steps = min(cfg.max_steps or math.inf,
                          (cfg.epochs or math.inf) * steps_per_epoch)
        eval_steps = cfg.eval_every or (
            0 if cfg.max_time else max(1, int(min(total_steps, 10**9) // 10)))
        eval_seconds = (min(max(cfg.max_time / 10, MIN_EVAL_GAP), 600.0)
                        if cfg.max_time else 0.0)
        eval_gap = eval_seconds  # widened so validating takes at most a tenth of the time
        self.cb.on_start({"device": str(self.device),
                          "precision": str(self.dtype or torch.float32).replace("torch.", ""),
                          "params": self.mc.num_params(),
                          "steps_per_epoch": steps_per_epoch, "run_dir": str(self.run_dir)})
        metrics = None  # only rank 0 writes to the run folder
        if dist.is_main:
            try:
                self.run_dir.mkdir(parents=True, exist_ok=True)
                _drop_partial_line(self.run_dir / METRICS)
                metrics = (self.run_dir / METRICS).open("a", encoding="utf-8")
            except OSError as e:
                raise CharRNNError(f"cannot write to {self.run_dir}/: {ckpt.os_reason(e)}"
                                   ) from None
        self._t0 = time.perf_counter()
        reserve = 0.0  # seconds kept back at the end for the final validation and save
        last_eval_time = time.perf_counter()
        loss_sum, loss_n, rate, reason = 0.0, 0, 0.0, "budget"
        progress = self._progress(0.0, 0.0, math.nan, 0.0)
        self.forward.train()
        try:
            while True:
                # ---- termination conditions and position in the budget
                elapsed = self._elapsed()
                fraction = max(
                    self.step / total_steps if total_steps < math.inf else 0.0,
                    elapsed / max(cfg.max_time - reserve, 1e-9) if cfg.max_time else 0.0)
                if cfg.max_time and dist.enabled:  # clocks differ: rank 0's decides
                    (fraction,) = dist.broadcast([fraction])
                if fraction >= 1.0:
                    break
                if self._sigint.requested:  # Ctrl-C: between steps the state is whole
                    reason = "interrupted"
                    break
                if self.chunk >= len(batches):  # next epoch: fresh streams, zero state
                    self.epoch, self.chunk, self.state = self.epoch + 1, 0, None
                    batches = self._batches(self.epoch)
                lr = lr_at(cfg, self.step, fraction)
                for g in self.opt.param_groups:
                    g["lr"] = lr

                # ---- forward, backward, update
                t0 = time.perf_counter()
                x, y = batches.chunk(self.chunk, self.rows)  # (B/N, T): this rank's streams
                x = torch.from_numpy(x).to(self.device, non_blocking=True)
                y = torch.from_numpy(y).to(self.device, non_blocking=True)
                with torch.autocast(self.device.type, self.dtype or torch.float32,
                                    enabled=self.dtype is not None):
                    logits, state = self.forward(x, self.state)  # (B/N, T, V)
                # mean over this rank's streams; DDP averages the gradients over ranks
                loss = F.cross_entropy(logits.float().flatten(0, 1), y.flatten())
                self.opt.zero_grad(set_to_none=True)
                loss.backward()
                # the norm is measured even without clipping (max inf scales by 1.0)
                norm = torch.nn.utils.clip_grad_norm_(model.parameters(),
                                                      cfg.grad_clip or math.inf)
                # ---- divergence: refuse the update before it can poison the weights; the
                # loss is averaged over ranks (and gradients already are), so all agree
                loss_value, norm_value = torch.stack(
                    [dist.mean(loss.detach()), norm.to(loss.device)]).tolist()  # a sync point
                if not (math.isfinite(loss_value) and math.isfinite(norm_value)):
                    reason = "diverged"
                    what = (f"loss {loss_value}" if not math.isfinite(loss_value)
                            else f"gradient norm {norm_value}")
                    self.cb.on_message(self._diverged_note(f"at step {self.step + 1} ({what})"))
                    break
                self.opt.step()
                self.state = detach_state(state)  # carry the values, cut the gradient
                self.step, self.chunk = self.step + 1, self.chunk + 1
                chars = x.numel() * dist.world
                self.chars_seen += chars
                dt = time.perf_counter() - t0
                rate = chars / dt if rate == 0 else 0.9 * rate + 0.1 * chars / dt
                loss_sum, loss_n = loss_sum + loss_value, loss_n + 1
                progress = self._progress(fraction, lr, loss_value, rate)
                self.cb.on_step(progress)
                if self.step % cfg.log_every == 0:
                    self._log(metrics, "train", progress, loss=loss_sum / loss_n)
                    loss_sum, loss_n = 0.0, 0

                # ---- periodic validation and checkpoints
                now = time.perf_counter()
                due = (eval_steps and self.step % eval_steps == 0) or (
                    eval_seconds and now - last_eval_time >= eval_gap)
                if eval_seconds and dist.enabled:
                    due = dist.broadcast([float(bool(due))])[0] > 0
                if due:
                    stop = self._evaluate(progress, metrics)
                    reserve = time.perf_counter() - now
                    # a big held-out sample or a slow disk: space validations out instead
                    # of letting them eat the budget (it was half of a 5-minute run)
                    eval_gap = max(eval_seconds, 9 * reserve)
                    last_eval_time = time.perf_counter()
                    if stop:
                        reason = stop
                        break
            # ---- the end: a last validation, or on Ctrl-C save where we are
            if (reason == "budget" and self._last_eval_step != self.step
                    and self._evaluate(progress, metrics) == "diverged"):
                reason = "diverged"
        except KeyboardInterrupt:  # alone, only while validating (see _StopOnSignal)
            reason = "interrupted"
        finally:
            if metrics is not None:
                metrics.close()
        saved = reason in ("budget", "early-stop")
        if reason == "interrupted" and self.step > 0 and not dist.enabled:
            self.save(LATEST, self._progress(progress.fraction, progress.lr,
                                             progress.train_loss, rate), full=True)
            saved = True
        elif reason == "interrupted" and dist.is_main:  # other ranks may be mid-step
            when = (f"the last validation (step {self._last_eval_step})"
                    if self._last_eval_step >= 0 else "before this session")
            self.cb.on_message(f"interrupted: {LATEST}{ckpt.SUFFIX} is from {when}")
            saved = (self.run_dir / f"{LATEST}{ckpt.SUFFIX}").is_file()
        return Result(reason, progress, self.run_dir, self.best_val, self.eval_seconds, saved,
                      self._sigint.signum if reason == "interrupted" else 0)

    def _diverged_note(self, when: str) -> str:
        latest = self.run_dir / f"{LATEST}{ckpt.SUFFIX}"
        kept = (f"{latest} is from before it" if latest.is_file()
                else "nothing was saved")
        return (f"training diverged {when}; no checkpoint was written from it, {kept}; "
                "try a lower --lr")

    def _progress(self, fraction: float, lr: float, loss: float, rate: float) -> Progress:
        return Progress(self.step, self.epoch, self.chars_seen, self._elapsed(), fraction, lr,
                        loss, rate, best_val_loss=self.best_val)

    def _elapsed(self) -> float:
        running = time.perf_counter() - self._t0 if self._t0 is not None else 0.0
        return self.elapsed_before + running

    def _evaluate(self, progress: Progress, metrics) -> str | None:
        """Validate, save latest (and best); 'early-stop' when patience has run out,
        'diverged' (and nothing saved) when the validation loss is not finite.

        Every rank calls this (the carried state is gathered from all of them); rank 0
        does the work and tells the others the verdict.
        """
        t0 = time.perf_counter()
        improved = True
        self._last_eval_step = self.step
        carry = self._job_state()
        if not self.dist.is_main:  # wait for rank 0's verdict
            verdict = self._verdict(None)
            self.eval_seconds += time.perf_counter() - t0
            return verdict
        if len(self.corpus.val) >= 2:
            with self._sigint.immediate():
                scores = [score_ids(self.model, w) for w in self.val_sample]
            val = sum(s.nats for s in scores) / sum(s.chars for s in scores)
            if not math.isfinite(val):
                self.cb.on_message(self._diverged_note(
                    f"after step {self.step} (validation loss {val})"))
                return self._verdict("diverged")
            progress.val_loss = val
            improved = self.best_val is None or val < self.best_val
            if improved:
                self.best_val, self.bad_evals = val, 0
            else:
                self.bad_evals += 1
        progress.best_val_loss = self.best_val
        self._log(metrics, "val", progress, loss=progress.val_loss)
        self.save(LATEST, progress, full=True, carry=carry)
        if improved:
            self.save(BEST, progress, full=False)
        self.eval_seconds += time.perf_counter() - t0
        self.cb.on_eval(progress, improved)
        return self._verdict("early-stop" if self.cfg.patience
                             and self.bad_evals >= self.cfg.patience else None)

    def _verdict(self, verdict: str | None) -> str | None:
        """Rank 0's verdict after a validation, on every rank, so that all stop together."""
        return _VERDICTS[int(self.dist.broadcast([float(_VERDICTS.index(verdict))])[0])]

    def _log(self, metrics, kind: str, p: Progress, loss: float | None) -> None:
        import json

        if metrics is None:
            return
        try:
            metrics.write(json.dumps({"kind": kind, "step": p.step, "epoch": p.epoch,
                                      "chars": p.chars_seen, "time": round(p.elapsed, 3),
                                      "lr": p.lr, "loss": loss,
                                      "chars_per_s": round(p.chars_per_s)}) + "\n")
            metrics.flush()
        except OSError as e:
            raise CharRNNError(f"cannot write {self.run_dir / METRICS}: {ckpt.os_reason(e)}; "
                               "the checkpoints already saved are intact") from None
