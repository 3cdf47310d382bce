"""The train command's options, declared once: value, default, flags, help and panel.

``charrnn train``'s Typer signature is built from ``TrainOptions`` (cli.py), the library
takes the dataclass itself (training.py), and tests/test_readme.py checks the README's
option table against it. A field named like a ``TrainConfig``/``ModelConfig`` field is
copied into that config; None means "choose for me" (from the corpus, the budget, or on
--resume the run's own setting).
"""

from __future__ import annotations

from dataclasses import dataclass, field, fields
from typing import Any

from charrnn.config import (
    CELL_LR,
    CELLS,
    DEVICE_HELP,
    PRECISIONS,
    ModelConfig,
    TrainConfig,
    parse_duration,
)
from charrnn.safetext import check_text

MODEL, OPTIM, BUDGET, CKPT, OUTPUT = "Model", "Optimization", "Budget", "Checkpoints", "Output"
DEFAULT_BUDGET = "10m"  # when no budget option is given


def option(default: Any, help: str, *flags: str, panel: str | None = None,
           min: float | None = None, max: float | None = None, show_default: bool = True,
           choices: tuple[str, ...] = (), argument: bool = False) -> Any:
    """A dataclass field that also says how the command line offers it."""
    cli = {"help": help, "flags": flags, "panel": panel, "min": min, "max": max,
           "show_default": show_default, "choices": choices, "argument": argument}
    return field(default=default, metadata={"cli": cli})


@dataclass
class TrainOptions:
    """Everything ``charrnn train`` accepts."""

    corpus: list[str] | None = option(
        None, "UTF-8 text files and folders to train on (a folder: every text file under "
        "it); '-' reads stdin. Default: Python's built-in help text.", argument=True,
        show_default=False)
    cell: str | None = option(
        None, f"Recurrent cell (default {ModelConfig.cell}; with --init-from the source's).",
        panel=MODEL, choices=CELLS, show_default=False)
    num_layers: int | None = option(None, "Recurrent layers. Default: from corpus size.",
                                    "--layers", panel=MODEL, min=1)
    hidden_size: int | None = option(None, "Units per layer. Default: from corpus size.",
                                     panel=MODEL, min=1)
    embed_size: int | None = option(
        None, f"Character embedding size (default {ModelConfig.embed_size}).", panel=MODEL,
        min=1)
    dropout: float | None = option(None, "Dropout in [0, 1). Default: from corpus size.",
                                   panel=MODEL)
    batch_size: int | None = option(
        None, f"Parallel streams (default {TrainConfig.batch_size}, fewer for tiny texts).",
        "--batch-size", "-b", panel=OPTIM, min=1)
    seq_len: int | None = option(
        None, f"Truncated-BPTT window in characters (default {TrainConfig.seq_len}).",
        "--seq-len", "-t", panel=OPTIM, min=1)
    lr: float | None = option(
        None, f"Peak learning rate (default {CELL_LR['lstm']:g} for LSTM, "
        f"{CELL_LR['gru']:g} for GRU and RNN, fine-tuning too).",
        panel=OPTIM)
    weight_decay: float = option(TrainConfig.weight_decay,
                                 "AdamW weight decay (matrices only).", panel=OPTIM)
    grad_clip: float = option(TrainConfig.grad_clip, "Max gradient norm; 0 disables clipping.",
                              panel=OPTIM)
    ema: float = option(
        TrainConfig.ema, "Decay of the moving average of the weights that is validated and "
        "saved; 0 saves the trained weights themselves.", panel=OPTIM)
    warmup_steps: int | None = option(
        None, f"Warm-up steps (default {TrainConfig.warmup_steps}; fine-tuning 20).",
        "--warmup", panel=OPTIM, min=0)
    max_time: str | None = option(
        None, "Wall-time budget, e.g. 90s, 10m, 2h. The learning rate reaches its floor at "
        f"the deadline. Default: {DEFAULT_BUDGET} when no budget is given.", panel=BUDGET,
        show_default=False)
    max_steps: int | None = option(None, "Step budget.", panel=BUDGET, min=1)
    epochs: float | None = option(None, "Epoch budget (fractions allowed).", panel=BUDGET)
    patience: int | None = option(
        None, "Stop after this many validations without improvement; 0 never stops early. "
        f"Default: {TrainConfig.patience}, or the resumed run's own.", panel=BUDGET, min=0,
        show_default=False)
    eval_every: int = option(TrainConfig.eval_every,
                             "Steps between validations; 0 chooses by time.", panel=BUDGET,
                             min=0)
    val_fraction: float = option(TrainConfig.val_fraction,
                                 "Tail of the text held out for validation.", panel=BUDGET)
    val_max_chars: int = option(
        TrainConfig.val_max_chars, "Held-out characters scored per validation (a fixed "
        "sample spread over the tail); 0 scores all.", panel=BUDGET, min=0)
    log_every: int | None = option(
        None, "Steps between train-loss lines in metrics.jsonl "
        f"(default {TrainConfig.log_every}; --resume keeps the run's).", panel=OUTPUT, min=1)
    preview: int | None = option(
        None, "Characters sampled from the current weights at each validation, shown on "
        "stderr and logged (seed: --seed, temperature 0.8); 0 disables "
        f"(default {TrainConfig.preview}; --resume keeps the run's).", panel=OUTPUT, min=0)
    tensorboard: str | None = option(
        None, "Also write the metrics and previews as TensorBoard events to this folder "
        "(pip extra tensorboard); metrics.jsonl stays the record.", "--tensorboard",
        panel=OUTPUT, show_default=False)
    out: str | None = option(None, "Run folder. Default: checkpoints/<corpus name>.",
                             "--out", "-o", panel=CKPT, show_default=False)
    resume: bool = option(False, "Continue the run in the output folder from its latest "
                          "checkpoint.", panel=CKPT)
    force: bool = option(False, "Start afresh even if the output folder holds a run.",
                         panel=CKPT)
    seed: int = option(TrainConfig.seed, "Seed for weights, dropout and batching.")
    device: str = option(TrainConfig.device, DEVICE_HELP)
    precision: str = option(
        TrainConfig.precision, f"{', '.join(PRECISIONS)}. auto: bfloat16 autocast where the "
        "hardware runs it natively (recent GPUs, CPUs with AMX or AVX-512 BF16), else "
        "float32.")
    compile: bool = option(False, "torch.compile the model.", "--compile")
    file_separator: str = option(
        "\\n", "Put between the files of several inputs, after each file's final newline "
        "(escapes \\n, \\t, \\0, \\\\). Default: a blank line.", "--file-separator")
    verbose: bool = option(False, "List every skipped file.", "--verbose", "-v")
    init_from: str | None = option(
        None, "Fine-tune: start from this run's (or checkpoint's) weights, in a new run "
        "folder, with its architecture; new characters grow the vocabulary.", "--init-from",
        panel=CKPT, show_default=False)

    def __post_init__(self) -> None:
        """The one check of every value, before any work: each setting by the rules of the
        config it goes into (finite, in range; sizes within the configs' bounds; what the
        model needs in memory is checked once the vocabulary is known), the budget
        parsed, the separator real text."""
        given = {f.name: getattr(self, f.name) for f in fields(self)
                 if getattr(self, f.name) is not None}
        train = {f.name for f in fields(TrainConfig)} & set(given)
        model = {f.name for f in fields(ModelConfig)} & set(given)
        if self.max_time is not None:
            given["max_time"] = parse_duration(self.max_time)  # '' is a bad duration too
        TrainConfig(**{k: given[k] for k in train})
        ModelConfig(vocab_size=1, **{k: given[k] for k in model})
        check_text(self.file_separator, "--file-separator")
