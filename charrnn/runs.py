"""Run folders and the commands' work: choose defaults, train with progress, evaluate.

Sits between the CLI (which only parses) and the library (which knows nothing of
terminals): it turns options into configs, picks the run folder, draws progress on
stderr and builds the reports that the CLI prints.
"""

from __future__ import annotations

import re
import sys
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from charrnn import checkpoint as ckpt
from charrnn.config import ModelConfig, TrainConfig, auto_batch, auto_model, parse_duration
from charrnn.distributed import Dist
from charrnn.errors import CharRNNError
from charrnn.text import BUILTIN_CORPUS

DEFAULT_BUDGET = 600.0  # seconds, when no budget option is given


@dataclass
class TrainRequest:
    """The train command's options, as parsed."""

    corpus: list[str] | None = None  # files, folders, '-' (stdin); None: the built-in text
    cell: str | None = None  # None: lstm, or with --init-from the source's
    layers: int | None = None
    hidden_size: int | None = None
    embed_size: int | None = None
    dropout: float | None = None
    batch_size: int | None = None
    seq_len: int | None = None
    lr: float | None = None  # None: TrainConfig's, or finetune.LR with --init-from
    weight_decay: float = TrainConfig.weight_decay
    grad_clip: float = TrainConfig.grad_clip
    warmup: int | None = None
    max_time: str | None = None
    max_steps: int | None = None
    epochs: float | None = None
    patience: int | None = None  # None: TrainConfig's, or on resume the run's own
    eval_every: int = 0
    val_fraction: float = TrainConfig.val_fraction
    val_max_chars: int = TrainConfig.val_max_chars
    log_every: int | None = None  # None: 20, or on resume the run's own setting
    out: Path | None = None
    resume: bool = False
    force: bool = False
    seed: int = TrainConfig.seed
    device: str = "auto"
    precision: str = "auto"
    compile: bool = False
    file_separator: str = "\n"  # between the files of several inputs (charrnn.corpora)
    verbose: bool = False
    init_from: str | None = None  # fine-tune: a run folder or checkpoint (charrnn.finetune)


def run_name(source: str) -> str:
    """The default run folder's name from the corpus file's: one plain path component.

    Letters (any script), digits, '-', '_' and inner dots survive; anything else becomes
    '_', and dots and '_' at the ends go, so no file name ('..', '...', '..txt') can make
    checkpoints/<name> point outside checkpoints/ or at a hidden folder.
    """
    if source == BUILTIN_CORPUS:
        return "pydoc"
    name = re.sub(r"[^\w.-]+", "_", Path(source).stem).strip("._")[:64].rstrip("._")
    return name or "run"


def _log(text: str) -> None:
    from tqdm import tqdm

    tqdm.write(text, file=sys.stderr)


def train_command(req: TrainRequest):
    """Set up (or resume) a run and train it; returns the trainer's Result.

    Under torchrun this is one rank of a data-parallel job (see charrnn.distributed).
    """
    from charrnn import distributed

    dist = distributed.setup(req.device)
    try:
        return _train(req, dist)
    finally:
        distributed.teardown(dist)


def _train(req: TrainRequest, dist: Dist):
    """One rank's work; rank 0, the only one that writes, holds the run folder's lock."""
    from charrnn import finetune, inputs, runlock

    finetune.check_request(req.init_from, req.resume)
    source = req.corpus or BUILTIN_CORPUS
    name, note = inputs.default_run_name(req.corpus)
    run_dir = Path(req.out) if req.out else ckpt.DEFAULT_ROOT / name
    if note and not req.out and dist.is_main:
        _log(note)
    if not dist.is_main:
        return _train_locked(req, dist, source, run_dir)
    with runlock.hold(run_dir):  # one run per folder, from the first check to the last save
        for stale in ckpt.remove_partial_writes(run_dir):
            _log(f"removed {stale.name}, a checkpoint write cut short by a killed run")
        return _train_locked(req, dist, source, run_dir)


def _train_locked(req: TrainRequest, dist: Dist, source: str, run_dir: Path):
    """The train command's work; on rank 0 it runs only while holding the folder's lock."""
    from charrnn import finetune, inputs
    from charrnn.data import separator_of, source_of
    from charrnn.distributed import local_main_first
    from charrnn.inputs import load_corpus
    from charrnn.train import LATEST, Callbacks, Trainer

    latest = run_dir / f"{LATEST}{ckpt.SUFFIX}"
    budget = {"max_time": parse_duration(req.max_time) if req.max_time else None,
              "max_steps": req.max_steps, "epochs": req.epochs}

    source_ckpt = None  # the model a fine-tuning run starts from
    if req.resume:
        if not latest.is_file():
            raise CharRNNError(f"nothing to resume: {latest} does not exist")
        saved = ckpt.inspect(latest)
        ckpt.check_resumable(saved)
        model_config = saved.config
        train_config = TrainConfig.from_dict(saved.meta["train"])
        given = {k: v for k, v in budget.items() if v is not None}
        if given:  # a new budget replaces the saved one (it is the run's total)
            train_config = replace(train_config, **budget)
        train_config = replace(train_config, device=req.device,
                               log_every=req.log_every or train_config.log_every,
                               patience=train_config.patience if req.patience is None
                               else req.patience,
                               precision=req.precision, compile=req.compile)
        if not req.corpus:
            source = source_of(saved.meta["corpus"])
        with local_main_first(dist):  # one process per machine builds the corpus cache
            corpus = load_corpus(source, train_config.val_fraction, run_dir, vocab=saved.vocab,
                                 separator=separator_of(saved.meta["corpus"]),
                                 resume=True, verbose=req.verbose, main=dist.is_main, log=_log)
    else:
        if latest.exists() and not req.force:
            raise CharRNNError(f"{run_dir}/ already holds a run: continue it with --resume, "
                               "start over with --force, or choose another --out")
        if req.init_from:  # before any work: a bad source or option fails at once
            source_ckpt = finetune.open_source(req.init_from, run_dir)
            finetune.model_config(source_ckpt, source_ckpt.vocab, req.cell, req.layers,
                                  req.hidden_size, req.embed_size, req.dropout)
        if not any(v is not None for v in budget.values()):
            budget["max_time"] = finetune.BUDGET if source_ckpt else DEFAULT_BUDGET
        with local_main_first(dist):  # one process per machine builds the corpus cache
            corpus = load_corpus(source, req.val_fraction, run_dir, separator=req.file_separator,
                                 verbose=req.verbose, main=dist.is_main, log=_log)
        if source_ckpt is not None:  # the vocabulary grows by the new text's characters
            corpus = finetune.retarget(corpus, source_ckpt)
        n = len(corpus.train)
        batch_size, seq_len = auto_batch(n, req.batch_size or TrainConfig.batch_size,
                                           req.seq_len or TrainConfig.seq_len)
        train_config = TrainConfig(
            batch_size=req.batch_size or batch_size, seq_len=req.seq_len or seq_len,
            lr=(finetune.LR if source_ckpt else TrainConfig.lr) if req.lr is None else req.lr,
            warmup_steps=(finetune.WARMUP if source_ckpt else TrainConfig.warmup_steps)
            if req.warmup is None else req.warmup, weight_decay=req.weight_decay,
            grad_clip=req.grad_clip, eval_every=req.eval_every,
            val_fraction=req.val_fraction, val_max_chars=req.val_max_chars,
            log_every=req.log_every or TrainConfig.log_every, seed=req.seed, device=req.device,
            patience=TrainConfig.patience if req.patience is None else req.patience,
            precision=req.precision, compile=req.compile, **budget)
        size = auto_model(n, train_config.max_time)
        model_config = ModelConfig(
            vocab_size=len(corpus.vocab), cell=req.cell or "lstm",
            embed_size=req.embed_size or ModelConfig.embed_size,
            num_layers=req.layers or size["num_layers"],
            hidden_size=req.hidden_size or size["hidden_size"],
            dropout=size["dropout"] if req.dropout is None else req.dropout
        ) if source_ckpt is None else finetune.model_config(
            source_ckpt, corpus.vocab, req.cell, req.layers, req.hidden_size,
            req.embed_size, req.dropout)
        if dist.is_main and source_ckpt is None and None in (req.layers, req.hidden_size,
                                                             req.dropout):
            _log(f"model size chosen for {n:,} training characters and this budget "
                 "(override with --layers, --hidden-size, --dropout)")
        if req.force and run_dir.exists() and dist.is_main:
            for name in ("latest", "best"):
                (run_dir / f"{name}{ckpt.SUFFIX}").unlink(missing_ok=True)
            (run_dir / "metrics.jsonl").unlink(missing_ok=True)

    callbacks = ConsoleProgress() if dist.is_main else Callbacks()  # rank 0 speaks
    trainer = Trainer(model_config, train_config, corpus, run_dir, callbacks, dist)
    if dist.is_main and corpus.stamps:  # for --resume to say what changed
        inputs.manifest(run_dir, corpus.stamps)
    if req.resume:
        trainer.resume(latest)
    elif source_ckpt is not None:
        finetune.start(trainer, source_ckpt)
        if dist.is_main:
            _log(f"fine-tuning from {source_ckpt.path}: weights only (fresh optimizer and "
                 f"schedule); vocabulary {len(source_ckpt.vocab)} -> {len(corpus.vocab)}")
    if dist.is_main:
        _describe(corpus, model_config, train_config, run_dir, req.resume)
        if dist.enabled:
            _log(f"data-parallel over {dist.world} processes, "
                 f"{train_config.batch_size // dist.world} streams each")
    result = trainer.run()
    if dist.is_main:
        trainer.cb.close()
    if result.reason in ("budget", "early-stop") and dist.is_main:
        best = f"{result.best_val_loss:.4f}" if result.best_val_loss is not None else "n/a"
        why = "early stop (no improvement)" if result.reason == "early-stop" else "budget spent"
        _log(f"done: {why} after {result.progress.step} steps, "
             f"{result.progress.elapsed:.0f}s; best val loss {best} nats/char; "
             f"checkpoints in {run_dir}/")
    return result


def _describe(corpus, mc: ModelConfig, tc: TrainConfig, run_dir: Path, resumed: bool) -> None:
    budget = ", ".join(
        f"{k} {v}" for k, v in (("max-time", f"{tc.max_time:g}s" if tc.max_time else None),
                                ("max-steps", tc.max_steps), ("epochs", tc.epochs)) if v)
    _log(f"{'resuming' if resumed else 'training'} on {corpus.source}: "
         f"{len(corpus.train):,} train / {len(corpus.val):,} val chars, "
         f"vocabulary {len(corpus.vocab)}")
    _log(f"model: {mc.num_layers}x{mc.hidden_size} {mc.cell}, embed {mc.embed_size}, "
         f"dropout {mc.dropout:g}, {mc.num_params():,} parameters")
    _log(f"batch {tc.batch_size} x {tc.seq_len}, lr {tc.lr:g}, budget: {budget}; "
         f"run folder {run_dir}/")


def sparkline(values: list[float], width: int = 12) -> str:
    """The last ``width`` values as block characters, lowest to highest (terminal trend).

    Empty for fewer than two values, or when stderr cannot print the blocks."""
    encoding = (getattr(sys.stderr, "encoding", None) or "").lower().replace("-", "")
    if len(values) < 2 or encoding not in ("utf8", "utf16", "utf32"):
        return ""
    tail = values[-width:]
    lo, hi = min(tail), max(tail)
    blocks = "\u2581\u2582\u2583\u2584\u2585\u2586\u2587\u2588"
    return "".join(blocks[round((v - lo) / (hi - lo) * 7) if hi > lo else 0] for v in tail)


class ConsoleProgress:
    """tqdm bar on stderr (hidden when stderr is not a terminal) plus one line per eval."""

    def __init__(self) -> None:
        self.bar = None
        self.val = float("nan")
        self.history: list[float] = []  # validation losses, for the trend in each eval line

    def on_start(self, info: dict[str, Any]) -> None:
        from tqdm import tqdm

        _log(f"device {info['device']} ({info['precision']}), "
             f"{info['steps_per_epoch']} steps per epoch")
        self.bar = tqdm(total=1000, file=sys.stderr, disable=None, leave=False,
                        bar_format="{l_bar}{bar}| {elapsed}<{remaining} {postfix}")

    def on_step(self, p) -> None:
        if self.bar is not None and not self.bar.disable:
            self.bar.n = int(p.fraction * 1000)
            self.bar.set_postfix_str(
                f"step {p.step} loss {p.train_loss:.3f} val {self.val:.3f} "
                f"{p.chars_per_s:,.0f} chars/s", refresh=False)
            self.bar.refresh()

    def on_eval(self, p, improved: bool) -> None:
        if p.val_loss is not None:
            self.val = p.val_loss
            self.history.append(p.val_loss)
        val = f"{p.val_loss:.4f}" if p.val_loss is not None else "n/a"
        trend = sparkline(self.history)
        _log(f"step {p.step:>6} | epoch {p.epoch} | {p.elapsed:7.1f}s | train {p.train_loss:.4f}"
             f" | val {val}{' *' if improved else ''} | lr {p.lr:.2e} | "
             f"{p.chars_per_s:,.0f} chars/s" + (f" | {trend}" if trend else ""))

    def on_message(self, text: str) -> None:
        _log(text)

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()


def eval_command(file: str | None, target: str | None, device: str) -> dict[str, Any]:
    """Score a text (or the training corpus's held-out split) with a checkpoint.

    The held-out split is scored as training validates it: at most the run's
    ``val_max_chars`` characters, in the same fixed windows, so a huge corpus stays cheap
    and the loss matches the checkpoint's validation loss.
    """
    from charrnn.data import val_windows
    from charrnn.evaluate import Score, score_ids
    from charrnn.train import pick_device

    c = ckpt.inspect(ckpt.resolve(target))
    ids, unknown, label = eval_ids(c, file)
    windows = [ids]
    if file is None:
        windows = val_windows(ids, TrainConfig.from_dict(c.meta["train"]).val_max_chars)
        scored = sum(len(w) for w in windows)
        if scored < len(ids):
            label += f", scored on a fixed sample of {scored:,} as in training validation"
    model = ckpt.load_model(c, str(pick_device(device)))
    scores = [score_ids(model, w) for w in windows]
    score = Score(sum(s.nats for s in scores), sum(s.chars for s in scores), unknown)
    return {"checkpoint": str(c.path), "text": label, **score.as_dict()}


def eval_ids(c: ckpt.Checkpoint, file: str | None):
    """The ids eval scores: FILE's known characters, or the corpus's held-out split.

    The held-out split comes from the corpus's id cache (a memory map), so a huge
    corpus is never read into memory. Returns (ids, Counter of skipped unknown
    characters, a label for reports)."""
    from collections import Counter

    from charrnn.data import remap_ids, split_ids
    from charrnn.text import read_text, text_digest

    vocab = c.vocab
    if file is None and "inputs" in c.meta.get("corpus", {}):  # several files: every tail
        from charrnn.data import held_out_many

        ids, unknown, label = held_out_many(
            c.meta["corpus"], vocab,
            TrainConfig.from_dict(c.meta["train"]).val_fraction or 0.1)
    elif file is None:
        corpus = c.meta.get("corpus", {})
        source = corpus.get("source")
        if not source:
            raise CharRNNError(f"{c.path} does not record its corpus; give a file to score")
        cached = None
        if source != BUILTIN_CORPUS:
            from charrnn import cache

            cached = cache.load(source)
            if not set(cached.vocab.chars) <= set(vocab.chars):
                cached = None  # new characters: the slow path below skips and counts them
        if cached is not None:
            digest, ids, unknown = cached.digest, cached.ids, Counter()
        else:
            text = read_text(source)
            digest = text_digest(text)
            ids, unknown = vocab.encode_known(text)
        if digest != corpus.get("digest"):
            _log(f"warning: {source} changed since training; scoring its current tail")
        _, ids = split_ids(ids, TrainConfig.from_dict(c.meta["train"]).val_fraction or 0.1)
        if cached is not None and cached.vocab != vocab:  # the checkpoint's ids
            ids = remap_ids(ids, cached.vocab, vocab)
        label = f"{source}, held-out split"
    else:
        ids, unknown = vocab.encode_known(read_text(file))
        label = file
    if len(ids) < 2:
        raise CharRNNError("nothing to score: fewer than 2 known characters")
    return ids, unknown, label
