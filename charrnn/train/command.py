"""The train command's work: options -> configs, the run folder, fresh start or resume.

Sits between the CLI (which only parses) and the trainer (which knows nothing of
terminals or run-folder conventions).
"""

from __future__ import annotations

import time
from dataclasses import fields, replace
from pathlib import Path
from typing import Any

import torch

from charrnn.config import (
    CELL_LR,
    SHORT_BUDGET,
    ModelConfig,
    TrainConfig,
    auto_batch,
    auto_model,
    follows_machine,
    parse_duration,
)
from charrnn.data import cachedir, corpora
from charrnn.data.corpus import Corpus, separator_of, source_of
from charrnn.data.inputs import (
    STDIN,
    changes,
    current_files,
    is_stream,
    kept_streams,
    manifest,
    spool,
)
from charrnn.data.text import BUILTIN_CORPUS
from charrnn.errors import CharRNNError
from charrnn.escapes import unescape
from charrnn.model.device import Governor, check_fits, pick_device, pick_dtype
from charrnn.runs import checkpoint as ckpt
from charrnn.runs import folder as runfolder
from charrnn.runs import lock as runlock
from charrnn.threads import Load
from charrnn.train import checkpoints, distributed, finetune
from charrnn.train.distributed import Dist, local_main_first
from charrnn.train.events import Callbacks, Fanout
from charrnn.train.loop import Trainer
from charrnn.train.options import DEFAULT_BUDGET, TrainOptions
from charrnn.train.probe import SIZES, budget_chars, choose_size, dropout_for
from charrnn.train.progress import ConsoleProgress, log


def train_command(opts: TrainOptions, load: Load | None = None):
    """Set up (or resume) a run and train it; returns the trainer's Result.

    ``load``: how busy the machine has been since the command started. A time budget's
    clock starts here, so that reading the corpus and probing the machine count in it.
    Under torchrun this is one rank of a data-parallel job (charrnn.train.distributed).
    """
    started = time.perf_counter()
    load = load or Load()
    dist = distributed.setup(opts.device)
    try:
        return _train(opts, dist, load, started)
    finally:
        distributed.teardown(dist)


def _train(opts: TrainOptions, dist: Dist, load: Load, started: float):
    """One rank's work; rank 0, the only one that writes, holds the run folder's lock."""
    cachedir.cache_root()  # the cache's settings, checked before any work
    finetune.check_request(opts.init_from, opts.resume)
    source: str | list[str] = opts.corpus or BUILTIN_CORPUS
    name, note = default_run_name(opts.corpus)
    run_dir = Path(opts.out) if opts.out else runfolder.DEFAULT_ROOT / name
    if note and not opts.out and dist.is_main:
        log(note)
    if not dist.is_main:
        return _train_locked(opts, dist, source, run_dir, load, started)
    with runlock.hold(run_dir):  # one run per folder, from the first check to the last save
        for stale in runfolder.remove_partial_checkpoints(run_dir):
            log(f"removed {stale.name}, a checkpoint write cut short by a killed run")
        for back in runfolder.restore_left(run_dir):
            log(f"put back {back.name}, set aside by a run killed while it started")
        return _train_locked(opts, dist, source, run_dir, load, started)


def _train_locked(opts: TrainOptions, dist: Dist, source: str | list[str], run_dir: Path,
                  load: Load, started: float):
    """The train command's work; on rank 0 it runs only while holding the folder's lock."""
    governor = Governor(load)  # torch's threads: the cores other work leaves free
    board = None  # before any work: a missing package or bad folder fails at once
    if opts.tensorboard and dist.is_main:
        from charrnn.train.tensorboard import TensorBoardWriter

        board = TensorBoardWriter(opts.tensorboard)
    latest = runfolder.checkpoint_path(run_dir, runfolder.LATEST)
    budget = _budget(opts)  # parsed once; all None: no budget given
    given = any(v is not None for v in budget.values())
    source_ckpt = None  # the model a fine-tuning run starts from
    if opts.resume:
        if not latest.is_file():
            raise CharRNNError(f"nothing to resume: {latest} does not exist")
        saved = ckpt.inspect(latest)
        checkpoints.check_meta(saved)
        model_config = saved.config
        train_config = TrainConfig.from_dict(saved.meta["train"])
        if "ema" not in saved.meta["train"]:  # a run from before weight averaging
            train_config = replace(train_config, ema=0.0)
        if dist.is_main and (ignored := ignored_on_resume(opts, model_config, train_config,
                                                          saved.meta["corpus"])):
            log(f"--resume continues the run as it was set up; ignored: {ignored}")
        if given:  # a new budget replaces the saved one (it is the run's total)
            train_config = replace(train_config, **budget)
        # these follow the command line; the rest is the run's own (None: keep it)
        train_config = replace(train_config, device=opts.device, precision=opts.precision,
                               compile=opts.compile,
                               **_given(opts, ("log_every", "patience", "preview")))
        if not opts.corpus:
            source = source_of(saved.meta["corpus"])
        with local_main_first(dist):  # one process per machine builds the corpus cache
            corpus = load_corpus(
                source, train_config.val_fraction, run_dir, vocab=saved.vocab,
                separator=separator_of(saved.meta["corpus"]), resume=True,
                verbose=opts.verbose, main=dist.is_main, log=log)
    else:
        if runfolder.holds_run(run_dir) and not opts.force:
            raise CharRNNError(f"{run_dir}/ already holds a run: continue it with --resume, "
                               "start over with --force, or choose another --out")
        # The old run's kept pipe text goes aside until the new run is sure to start: a
        # new input that turns out unusable must not have replaced it (train - --force).
        aside = runfolder.SetAside(kept_streams(run_dir) if dist.is_main else [])
        try:
            corpus, model_config, train_config, source_ckpt = _fresh(
                opts, dist, source, run_dir, budget if given else None)
            if opts.force and run_dir.exists() and dist.is_main:
                runfolder.clear(run_dir)
            aside.commit()
        finally:
            aside.restore()  # nothing left to restore once committed

    _check_fits(model_config, train_config)
    callbacks: Callbacks = ConsoleProgress() if dist.is_main else Callbacks()  # rank 0 speaks
    if board is not None:
        callbacks = Fanout(callbacks, board)
    trainer = Trainer(model_config, train_config, corpus, run_dir, callbacks, dist)
    trainer.governor = governor
    if dist.is_main and corpus.stamps:  # for --resume to say what changed
        manifest(run_dir, corpus.stamps)
    if opts.resume:
        trainer.resume(latest)
    elif source_ckpt is not None:
        finetune.start(trainer, source_ckpt)
        if dist.is_main:
            log(f"fine-tuning from {source_ckpt.path}: weights only (fresh optimizer and "
                f"schedule); vocabulary {len(source_ckpt.vocab)} -> {len(corpus.vocab)}")
    if dist.is_main:
        _describe(corpus, model_config, train_config, run_dir, opts.resume)
        if dist.enabled:
            log(f"data-parallel over {dist.world} processes, "
                 f"{train_config.batch_size // dist.world} streams each")
    try:
        result = trainer.run(started)  # the set-up counts in a time budget
    finally:
        callbacks.close()
    if result.reason in ("budget", "early-stop") and dist.is_main:
        best = f"{result.best_val_loss:.4f}" if result.best_val_loss is not None else "n/a"
        why = "early stop (no improvement)" if result.reason == "early-stop" else "budget spent"
        log(f"done: {why} after {result.progress.step} steps, "
             f"{result.progress.elapsed:.0f}s; best val loss {best} nats/char; "
             f"checkpoints in {run_dir}/")
    return result


def _fresh(opts: TrainOptions, dist: Dist, source: str | list[str], run_dir: Path,
           budget: dict[str, Any] | None):
    """A new run's corpus, configs and fine-tuning source (None budget: the default one)."""
    source_ckpt = None
    if opts.init_from:  # before any work: a bad source or option fails at once
        source_ckpt = finetune.open_source(opts.init_from, run_dir)
        finetune.model_config(source_ckpt, source_ckpt.vocab, opts.cell, opts.num_layers,
                              opts.hidden_size, opts.embed_size, opts.dropout)
    budget = budget or {
        "max_time": finetune.BUDGET if source_ckpt else parse_duration(DEFAULT_BUDGET)}
    with local_main_first(dist):  # one process per machine builds the corpus cache
        corpus = load_corpus(source, opts.val_fraction, run_dir,
                             separator=unescape(opts.file_separator),
                             verbose=opts.verbose, main=dist.is_main, log=log)
    if source_ckpt is not None:  # the vocabulary grows by the new text's characters
        corpus = finetune.retarget(corpus, source_ckpt)
    n = len(corpus.train)
    batch_size, seq_len = auto_batch(n, opts.batch_size or TrainConfig.batch_size,
                                     opts.seq_len or TrainConfig.seq_len)
    cell = source_ckpt.config.cell if source_ckpt else opts.cell or ModelConfig.cell
    tuning = {"lr": CELL_LR[cell],
              **({"warmup_steps": finetune.WARMUP} if source_ckpt else {})}
    train_config = TrainConfig(**{**tuning, **_given(opts, _fields(TrainConfig)),
                                  "batch_size": opts.batch_size or batch_size,
                                  "seq_len": opts.seq_len or seq_len, **budget})
    size = auto_model(n, train_config.max_time)
    model_config = ModelConfig(
        vocab_size=len(corpus.vocab), **{**size, **_given(opts, _fields(ModelConfig))}
    ) if source_ckpt is None else finetune.model_config(
        source_ckpt, corpus.vocab, opts.cell, opts.num_layers, opts.hidden_size,
        opts.embed_size, opts.dropout)
    probed = ""
    _check_fits(model_config, train_config)  # before the probe builds any model
    if (source_ckpt is None and opts.hidden_size is None and not dist.enabled
            and follows_machine(n, train_config.max_time)):
        model_config, probed = _fit_machine(
            model_config, train_config, n, opts.dropout is None)
    if dist.is_main and source_ckpt is None:
        if None in (opts.num_layers, opts.hidden_size):
            log(f"model size chosen for {n:,} training characters and this budget"
                f"{probed} (override with --layers, --hidden-size, --dropout)")
        elif opts.dropout is None:
            log(f"dropout {model_config.dropout:g} chosen for {n:,} training characters "
                "and this budget (override with --dropout)")
    return corpus, model_config, train_config, source_ckpt


def ignored_on_resume(opts: TrainOptions, mc: ModelConfig, tc: TrainConfig,
                      corpus_meta: dict) -> str:
    """The options --resume does not apply (the architecture and the optimisation are
    the run's own) that were given with another value than the run's, as one list:
    '--hidden-size 512 (the run's: 384), ...'. An option whose default was left alone
    is not named, nor one given with the default's value (it cannot be told apart)."""
    defaults = TrainOptions.__dataclass_fields__
    out = []
    for f in fields(TrainOptions):
        config = mc if hasattr(mc, f.name) else tc if hasattr(tc, f.name) else None
        if config is None or f.name in _FOLLOW_ON_RESUME:
            continue
        value, run = getattr(opts, f.name), getattr(config, f.name)
        if value is None or value == run or value == defaults[f.name].default:
            continue
        given, was = (f"{v:g}" if isinstance(v, float) else str(v) for v in (value, run))
        out.append(f"{_flag(f)} {given} (the run's: {was})")
    separator = corpus_meta.get("separator")
    if (isinstance(separator, str) and opts.file_separator != defaults["file_separator"].default
            and unescape(opts.file_separator) != separator):
        out.append(f"--file-separator {opts.file_separator!r} (the run's: {separator!r})")
    return ", ".join(out)


_FOLLOW_ON_RESUME = ("log_every", "patience", "preview", "device", "precision", "compile",
                     "max_steps", "epochs", "max_time")


def _flag(f) -> str:
    flags = f.metadata["cli"]["flags"]
    return flags[0] if flags else "--" + f.name.replace("_", "-")


def _fields(cls: type) -> tuple[str, ...]:
    return tuple(f.name for f in fields(cls))


def _given(opts: TrainOptions, names: tuple[str, ...]) -> dict[str, Any]:
    """The options among ``names`` that were given (not None: "choose for me")."""
    return {k: getattr(opts, k) for k in names
            if hasattr(opts, k) and getattr(opts, k) is not None}


def _budget(opts: TrainOptions) -> dict[str, Any]:
    return {"max_time": parse_duration(opts.max_time) if opts.max_time is not None else None,
            "max_steps": opts.max_steps, "epochs": opts.epochs}


def _check_fits(mc: ModelConfig, tc: TrainConfig) -> None:
    """Refuse a model that could never be trained here, saying what it needs."""
    check_fits(mc.train_bytes(tc.batch_size, tc.seq_len), pick_device(tc.device),
               f"training a {mc.num_layers}x{mc.hidden_size} {mc.cell} with embedding "
               f"{mc.embed_size} ({mc.num_params():,} parameters) at batch "
               f"{tc.batch_size} x {tc.seq_len}",
               "choose a smaller --hidden-size, --layers, --embed-size, --batch-size or "
               "--seq-len")


def _fit_machine(mc: ModelConfig, tc: TrainConfig, train_chars: int,
                 choose_dropout: bool) -> tuple[ModelConfig, str]:
    """The hidden size (and unless given, the dropout) this machine can train well in the
    time budget (charrnn.train.probe), and what to say about it."""
    device = pick_device(tc.device)
    assert tc.max_time is not None  # follows_machine() needs a time budget
    sizes = SIZES if tc.max_time >= SHORT_BUDGET else (mc.hidden_size,)
    choice = choose_size(mc, tc.batch_size, tc.seq_len, device,
                         pick_dtype(tc.precision, device, mc.cell), tc.max_time, sizes=sizes)
    rate = choice.rates[choice.hidden_size]
    chars = budget_chars(rate, tc.max_time)
    others = ", ".join(f"{mc.num_layers}x{h}: {r:,.0f}" for h, r in choice.rates.items()
                       if h != choice.hidden_size)
    others = f" ({others})" if others else ""
    dropout = dropout_for(chars / train_chars) if choose_dropout else mc.dropout
    return replace(mc, hidden_size=choice.hidden_size, dropout=dropout), (
        f" on this machine: {mc.num_layers}x{choice.hidden_size} trains at {rate:,.0f} "
        f"chars/s here{others}, about {chars / 1e6:.1f}M characters "
        f"({chars / train_chars:.1f} passes) in the budget; probed in {choice.seconds:.1f}s"
        + (f" on a busy machine (this process got {choice.share:.0%} of the CPU time its "
           f"{torch.get_num_threads()} threads could use)" if choice.busy else "")
    )


def _describe(corpus, mc: ModelConfig, tc: TrainConfig, run_dir: Path, resumed: bool) -> None:
    budget = ", ".join(
        f"{k} {v}" for k, v in (("max-time", f"{tc.max_time:g}s" if tc.max_time else None),
                                ("max-steps", tc.max_steps), ("epochs", tc.epochs)) if v)
    log(f"{'resuming' if resumed else 'training'} on {corpus.source}: "
         f"{len(corpus.train):,} train / {len(corpus.val):,} val chars, "
         f"vocabulary {len(corpus.vocab)}")
    log(f"model: {mc.num_layers}x{mc.hidden_size} {mc.cell}, embed {mc.embed_size}, "
         f"dropout {mc.dropout:g}, {mc.num_params():,} parameters")
    log(f"batch {tc.batch_size} x {tc.seq_len}, lr {tc.lr:g}, budget: {budget}; "
         f"run folder {run_dir}/")


def default_run_name(inputs: list[str] | None) -> tuple[str, str | None]:
    """The run folder's name, and a note to show when it was not obvious.

    One file or folder names the run; stdin is 'stdin'; several inputs are named after
    the first with '-plus-N'."""
    if not inputs:
        return runfolder.run_name(BUILTIN_CORPUS), None
    if inputs == [STDIN] or (len(inputs) == 1 and is_stream(inputs[0])):
        return "stdin", "reading a pipe: run folder checkpoints/stdin/ (choose one with -o)"
    first = Path(inputs[0])
    name = runfolder.run_name(first.resolve().name if first.is_dir() else str(first))
    if len(inputs) == 1:
        return name, None
    name = f"{name}-plus-{len(inputs) - 1}"
    return name, f"{len(inputs)} inputs: run folder checkpoints/{name}/ (choose one with -o)"


def load_corpus(source: str | list[str], val_fraction: float, run_dir: Path, *,
                vocab=None, separator: str = "\n", resume: bool = False,
                verbose: bool = False, main: bool = True, log=print):
    """The train command's corpus: pipes kept, changes reported, skipped files listed."""
    if isinstance(source, list):
        if resume and any(is_stream(a) for a in source):
            raise CharRNNError("--resume cannot read a pipe: the run kept what came through "
                               "it; resume without giving a corpus")
        if not resume:
            source = spool(source, run_dir)
    if resume and main:
        what = changes(run_dir, current_files(source))
        if what:
            log(f"the inputs changed since this run started: {what}; re-encoding them and "
                "training on the new text from where the run stopped, with its vocabulary "
                "(a new character is an error; validation losses before and after the "
                "change are not comparable)")
    corpus = Corpus.load(source, val_fraction, vocab=vocab, separator=separator)
    if main and corpus.skipped:
        total = corpus.files + len(corpus.skipped)
        log(corpora.summary(corpus.skipped, total)
            + ("" if verbose else " (--verbose lists them all)"))
        if verbose:
            for path, reason in corpus.skipped:
                log(f"  skipped {path} ({reason})")
    return corpus
