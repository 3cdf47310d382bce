"""The training loop: truncated BPTT over B carried streams, AdamW, warm-up + cosine decay,
and validation.

The loop knows nothing about progress bars: it reports through ``Callbacks``, and the CLI
draws them. At each validation it writes ``latest`` (everything needed to resume exactly;
the format is ``train.checkpoints``') and ``best`` (the lowest validation loss) into its
run folder, and logs to its metrics log (``runs.metrics``).

With ``TrainConfig.ema`` the weights that are validated, previewed and saved are an
exponential moving average of the trained ones (one lerp per step): it smooths out the
noise of the last steps, which a short run's schedule never anneals away (measured in
docs/benchmarks.md). ``latest`` also keeps the trained weights, for --resume.
"""

from __future__ import annotations

import copy
import math
import time
from dataclasses import asdict
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from charrnn.config import ModelConfig, TrainConfig
from charrnn.data.batches import Batches, min_train_chars
from charrnn.data.corpus import Corpus
from charrnn.errors import CharRNNError
from charrnn.model.device import Governor, pick_device, pick_dtype
from charrnn.model.network import CharRNN, State, detach_state
from charrnn.runs import folder as runfolder
from charrnn.runs.folder import BEST, LATEST
from charrnn.score.loss import OutOfTime
from charrnn.train import checkpoints, preview
from charrnn.train.checkpoints import weights_of
from charrnn.train.distributed import Dist
from charrnn.train.events import Callbacks, Progress, Result
from charrnn.train.record import Interval, Recorder
from charrnn.train.schedule import Schedule, lr_at
from charrnn.train.signals import StopOnSignal
from charrnn.train.validation import Validation

_VERDICTS = (None, "early-stop", "diverged")  # what a validation decides, as rank 0 sends it


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
        self.dtype = pick_dtype(config.precision, self.device, model_config.cell)
        torch.manual_seed(config.seed)
        self.model = CharRNN(model_config).to(self.device)
        # the weights that are validated and saved: a running average, or the model's own
        self.average: CharRNN | None = None
        if config.ema and dist.is_main:
            self.average = copy.deepcopy(self.model).requires_grad_(False)
        net: torch.nn.Module = self.model
        if dist.enabled:  # DDP checks every rank holds the same weights, then syncs grads
            from torch.nn.parallel import DistributedDataParallel

            net = DistributedDataParallel(
                self.model, device_ids=[self.device.index] if self.device.type == "cuda"
                else None)
        # what the loop calls: the model or its DDP wrapper, compiled if asked
        self.forward: torch.nn.Module = torch.compile(net) if config.compile else net  # type: ignore[assignment]
        self._seed_rank(0)
        self.validation = Validation(corpus.val, config.val_max_chars, config.max_time)
        self.governor: Governor | None = None  # torch's CPU threads, re-checked as it runs
        self.opt = torch.optim.AdamW(self._param_groups(), lr=config.lr, betas=(0.9, 0.99))
        # position in the run; replaced by resume()
        self.step, self.epoch, self.chunk, self.chars_seen = 0, 0, 0, 0
        self.elapsed_before, self.bad_evals = 0.0, 0
        self.best_val: float | None = None
        self.state: State | None = None
        self.clock: Schedule | None = None  # this session's, made by run()
        self._last_eval_step = -1
        self.eval_seconds = 0.0
        self.rate = 0.0  # training chars/s, a moving average
        self._save_seconds = 0.1  # the last checkpoint write took (a guess before it)
        self._sigint = StopOnSignal()
        self.lineage: dict[str, Any] | None = None  # set by finetune.start: init_from meta

    def load_weights(self, weights: dict[str, torch.Tensor],
                     average: dict[str, torch.Tensor] | None = None) -> None:
        """Set the trained weights, and the average (by default the same weights)."""
        self.model.load_state_dict(weights)
        if self.average is not None:
            self.average.load_state_dict(weights if average is None else average)

    def _update_average(self) -> None:
        """One step of the moving average; its decay grows from 0.1 so that the first
        steps' random weights are soon forgotten (as in Polyak averaging's warm-up)."""
        if self.average is None:
            return
        decay = min(self.cfg.ema, (1 + self.step) / (10 + self.step))
        with torch.no_grad():
            torch._foreach_lerp_(list(self.average.parameters()),
                                 list(self.model.parameters()), 1.0 - decay)

    @property
    def scored(self) -> CharRNN:
        """The model that is validated, previewed and saved."""
        return self.average if self.average is not None else self.model

    def _seed_rank(self, step: int) -> None:
        """Other ranks draw their own dropout masks; rank 0 keeps the single-process ones."""
        if self.dist.rank:
            torch.manual_seed(self.cfg.seed + 7919 * self.dist.rank + step)

    def _param_groups(self) -> list[dict]:
        """Weight decay on matrices only, not on biases or the embedding table."""
        decay: list[torch.nn.Parameter] = []
        no_decay: list[torch.nn.Parameter] = []
        for name, p in self.model.named_parameters():
            (decay if p.ndim == 2 and not name.startswith("embed") else no_decay).append(p)
        return [{"params": decay, "weight_decay": self.cfg.weight_decay},
                {"params": no_decay, "weight_decay": 0.0}]

    # ---------------------------------------------------------------- checkpoints
    def save(self, name: str, progress: Progress, full: bool,
             carry: State | None = None) -> Path:
        """Write a checkpoint; ``carry``: the whole job's carried state (``_job_state``).

        ``full`` adds what --resume needs (train.checkpoints). In a single process the
        carried state defaults to the trainer's own.
        """
        if carry is None and not self.dist.enabled:
            carry = self.state
        meta = checkpoints.run_meta(self.mc, self.corpus, self.cfg, {
            **asdict(progress), "epoch_chunk": self.chunk, "bad_evals": self.bad_evals,
            "eval_seconds": self.eval_seconds}, self.lineage)
        trained = weights_of(self.model) if full and self.average is not None else None
        path = runfolder.checkpoint_path(self.run_dir, name)
        t0 = time.perf_counter()
        checkpoints.write(path, weights_of(self.scored), meta,
                          (self.opt, carry, self.device, trained) if full else None)
        self._save_seconds = time.perf_counter() - t0
        return path

    def resume(self, path: Path) -> None:
        """Restore weights, optimizer, RNG, carried state and position from ``latest``."""
        r = checkpoints.read(path, self.opt, self.mc, self.cfg.batch_size, self.corpus.vocab)
        self.load_weights(r.weights, r.average)
        self.opt.load_state_dict(r.optimizer)
        if isinstance(r.carry, tuple):  # this rank's streams
            h, cell = r.carry
            self.state = (h[:, self.rows].to(self.device), cell[:, self.rows].to(self.device))
        elif r.carry is not None:
            self.state = r.carry[:, self.rows].to(self.device)
        torch.set_rng_state(r.rng_cpu)
        if r.rng_cuda is not None and self.device.type == "cuda":
            torch.cuda.set_rng_state(r.rng_cuda, self.device)
        p = r.progress
        self.step, self.epoch, self.chunk = p["step"], p["epoch"], p["epoch_chunk"]
        self.chars_seen, self.elapsed_before = p["chars_seen"], p["elapsed"]
        self.best_val, self.bad_evals = p["best_val_loss"], p["bad_evals"]
        self.eval_seconds = p.get("eval_seconds", 0.0)
        self.lineage = r.lineage
        self._seed_rank(self.step)

    def _job_state(self) -> State | None:
        """The carried state of all B streams, gathered from every rank (a collective)."""
        if self.state is None or not self.dist.enabled:
            return self.state
        if isinstance(self.state, tuple):
            return tuple(self.dist.gather_streams(s) for s in self.state)  # type: ignore
        return self.dist.gather_streams(self.state)

    # ---------------------------------------------------------------- the loop
    def _batches(self, epoch: int) -> Batches:
        # A fresh offset per epoch moves the chunk edges, so no character always sits at
        # the start of a chunk; derived from (seed, epoch) so resume needs no RNG state.
        offset = int(np.random.default_rng([self.cfg.seed, epoch]).integers(self.cfg.seq_len))
        offset = min(offset, len(self.corpus.train) - min_train_chars(self.cfg.batch_size, 1))
        return Batches(self.corpus.train, self.cfg.batch_size, self.cfg.seq_len, max(offset, 0))

    def run(self, started: float | None = None) -> Result:
        """Train to the budget; ``started``: the ``time.perf_counter()`` at which the
        command began, so that its set-up (corpus, probe) counts in a time budget."""
        if started is not None:
            self.elapsed_before += time.perf_counter() - started
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
        self.cb.on_start({"device": str(self.device),
                          "precision": str(self.dtype or torch.float32).replace("torch.", ""),
                          "threads": self.governor.threads.describe() if self.governor
                          else None, "params": self.mc.num_params(),
                          "steps_per_epoch": steps_per_epoch, "run_dir": str(self.run_dir)})
        metrics = Recorder(self.run_dir, self.cb, dist.is_main)  # only rank 0 writes
        clock = self.clock = Schedule(cfg, steps_per_epoch, self.elapsed_before)
        interval, reason = Interval(cfg.grad_clip), "budget"
        progress = self._progress(0.0, 0.0, math.nan, 0.0)
        self.forward.train()
        try:
            while True:
                # ---- termination conditions and position in the budget
                fraction = clock.fraction(self.step)
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
                xs, ys = batches.chunk(self.chunk, self.rows)  # (B/N, T): this rank's streams
                x = torch.from_numpy(xs).to(self.device, non_blocking=True)
                y = torch.from_numpy(ys).to(self.device, non_blocking=True)
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
                self._update_average()
                chars = x.numel() * dist.world
                self.chars_seen += chars
                dt = time.perf_counter() - t0
                rate = chars / dt if self.rate == 0 else 0.9 * self.rate + 0.1 * chars / dt
                self.rate = rate
                interval.add(loss_value, norm_value)
                progress = self._progress(fraction, lr, loss_value, rate)
                self.cb.on_step(progress)
                if self.governor is not None and (note := self.governor.tick()):
                    self.cb.on_message(note)
                if cfg.max_time and self._last_eval_step < 0:  # no validation timed yet
                    clock.reserve = (self.validation.expected_seconds(self.rate)
                                     + 2 * self._save_seconds)
                if self.step % cfg.log_every == 0:
                    metrics.progress("train", progress, **interval.take())

                # ---- periodic validation and checkpoints
                due = clock.due(self.step)
                if clock.eval_seconds and dist.enabled:
                    due = dist.broadcast([float(due)])[0] > 0
                if due:
                    now = time.perf_counter()
                    stop = self._evaluate(progress, metrics)
                    clock.validated(time.perf_counter() - now)
                    if stop:
                        reason = stop
                        break
            # ---- the end: a last validation, or on Ctrl-C save where we are
            if (reason == "budget" and self._last_eval_step != self.step
                    and self._evaluate(progress, metrics) == "diverged"):
                reason = "diverged"
        except KeyboardInterrupt:  # alone, only while validating (see StopOnSignal)
            reason = "interrupted"
        finally:
            metrics.close()
        saved = reason in ("budget", "early-stop")
        if reason == "interrupted" and self.step > 0 and not dist.enabled:
            self.save(LATEST, self._progress(progress.fraction, progress.lr,
                                             progress.train_loss, self.rate), full=True)
            saved = True
        elif reason == "interrupted" and dist.is_main:  # other ranks may be mid-step
            when = (f"the last validation (step {self._last_eval_step})"
                    if self._last_eval_step >= 0 else "before this session")
            latest = runfolder.checkpoint_path(self.run_dir, LATEST)
            self.cb.on_message(f"interrupted: {latest.name} is from {when}")
            saved = latest.is_file()
        return Result(reason, progress, self.run_dir, self.best_val, self.eval_seconds, saved,
                      self._sigint.signum if reason == "interrupted" else 0)

    def _diverged_note(self, when: str) -> str:
        latest = runfolder.checkpoint_path(self.run_dir, LATEST)
        kept = (f"{latest} is from before it" if latest.is_file()
                else "nothing was saved")
        return (f"training diverged {when}; no checkpoint was written from it, {kept}; "
                "try a lower --lr")

    def _progress(self, fraction: float, lr: float, loss: float, rate: float) -> Progress:
        return Progress(self.step, self.epoch, self.chars_seen, self._elapsed(), fraction, lr,
                        loss, rate, best_val_loss=self.best_val)

    def _elapsed(self) -> float:
        return self.clock.elapsed() if self.clock is not None else self.elapsed_before

    def _evaluate(self, progress: Progress, metrics: Recorder) -> str | None:
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
            if note := self.validation.size(self.rate):
                self.cb.on_message(note)
            try:
                with self._sigint.immediate():
                    val = self.validation.score(self.scored, self.clock.deadline(
                        2 * self._save_seconds) if self.clock else None)
            except OutOfTime:
                return self._skip(progress, carry, t0)
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
        metrics.progress("val", progress, loss=progress.val_loss)
        self.save(LATEST, progress, full=True, carry=carry)
        if improved:
            self.save(BEST, progress, full=False)
        sample = self._preview(progress, metrics) if self.cfg.preview else None
        self.eval_seconds += time.perf_counter() - t0
        self.cb.on_eval(progress, improved)
        if sample is not None:
            self.cb.on_preview(progress.step, sample)
        return self._verdict("early-stop" if self.cfg.patience
                             and self.bad_evals >= self.cfg.patience else None)

    def _skip(self, progress: Progress, carry: State | None, t0: float) -> str | None:
        """Out of time while validating: save where we are without a validation loss."""
        self.cb.on_message(f"validation at step {self.step} skipped: it would have ended "
                           f"past the time budget; {LATEST} saved without it")
        progress.best_val_loss = self.best_val
        self.save(LATEST, progress, full=True, carry=carry)
        self.eval_seconds += time.perf_counter() - t0
        return self._verdict(None)

    def _verdict(self, verdict: str | None) -> str | None:
        """Rank 0's verdict after a validation, on every rank, so that all stop together."""
        return _VERDICTS[int(self.dist.broadcast([float(_VERDICTS.index(verdict))])[0])]

    def _preview(self, p: Progress, metrics: Recorder) -> str:
        """A sample from the current weights, logged (charrnn.train.preview)."""
        weights = {k: v.numpy() for k, v in weights_of(self.scored).items()}
        text = preview.generate(self.mc, weights, self.corpus.vocab, self.cfg.preview,
                                self.cfg.seed)
        metrics.write(preview.record(p.step, p.chars_seen, p.elapsed, self.cfg.seed, text))
        return text
