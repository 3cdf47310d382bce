"""Dataclass configs for the model and the training run, torch-free and JSON-friendly.

They validate themselves, so a bad value is one clear message whether it came from the
CLI, the Python API or an edited checkpoint.
"""

from __future__ import annotations

import math
import os
from dataclasses import asdict, dataclass, fields
from pathlib import Path
from typing import Any

from charrnn.errors import ConfigError

CELLS = ("lstm", "gru", "rnn")
PRECISIONS = ("auto", "fp32", "bf16")
DEVICES = ("auto", "cpu", "cuda", "mps")  # and cuda:N for one GPU of several
DEVICE_HELP = "auto (cuda, then mps, then cpu), cpu, cuda, cuda:N or mps."
GATES = {"lstm": 4, "gru": 3, "rnn": 1}  # stacked gate blocks per weight matrix (torch order)
# Deeper stacks of recurrent layers do not train, and each layer is one more sequential
# pass: 100,000 layers took minutes only to build. Sizes are bounded by memory instead
# (``ModelConfig.train_bytes``, checked against the machine before a model is built).
MAX_LAYERS = 64
MAX_PREVIEW = 100_000  # characters per preview (each is logged whole in metrics.jsonl)


def _require(ok: bool, message: str) -> None:
    if not ok:
        raise ConfigError(message)


def _positive_int(name: str, value: Any) -> None:
    _require(isinstance(value, int) and not isinstance(value, bool) and value > 0,
             f"{name} must be a positive integer, got {value!r}")


def _finite(name: str, value: Any) -> None:
    _require(isinstance(value, (int, float)) and not isinstance(value, bool)
             and math.isfinite(value), f"{name} must be a finite number, got {value!r}")


@dataclass
class ModelConfig:
    """Embedding -> stacked recurrent layers -> dropout -> linear head over the vocabulary."""

    vocab_size: int
    cell: str = "lstm"  # lstm | gru | rnn (tanh)
    num_layers: int = 2
    hidden_size: int = 384
    embed_size: int = 64  # a learned lookup replaces char-rnn's one-hot input
    dropout: float = 0.1  # between recurrent layers and before the head

    def __post_init__(self) -> None:
        _positive_int("vocab size", self.vocab_size)
        _require(self.cell in CELLS, f"cell must be one of {', '.join(CELLS)}, got {self.cell!r}")
        _positive_int("layers", self.num_layers)
        _require(self.num_layers <= MAX_LAYERS,
                 f"layers must be at most {MAX_LAYERS}, got {self.num_layers}")
        _positive_int("hidden size", self.hidden_size)
        _positive_int("embedding size", self.embed_size)
        _finite("dropout", self.dropout)
        _require(0 <= self.dropout < 1, f"dropout must be in [0, 1), got {self.dropout}")

    def weight_shapes(self) -> dict[str, tuple[int, ...]]:
        """Name -> shape of every parameter, matching torch's names, without torch."""
        g, h = GATES[self.cell], self.hidden_size
        shapes: dict[str, tuple[int, ...]] = {"embed.weight": (self.vocab_size, self.embed_size)}
        for i in range(self.num_layers):
            shapes[f"rnn.weight_ih_l{i}"] = (g * h, self.embed_size if i == 0 else h)
            shapes[f"rnn.weight_hh_l{i}"] = (g * h, h)
            shapes[f"rnn.bias_ih_l{i}"] = (g * h,)
            shapes[f"rnn.bias_hh_l{i}"] = (g * h,)
        shapes["head.weight"] = (self.vocab_size, h)
        shapes["head.bias"] = (self.vocab_size,)
        return shapes

    def num_params(self) -> int:
        return sum(math.prod(s) for s in self.weight_shapes().values())

    def train_bytes(self, batch_size: int, seq_len: int) -> int:
        """About what training this model needs in memory: its float32 parameters six
        times over (weights, gradients, AdamW's two moments, the weight average, the copy
        a checkpoint is written from) and what one window of batch x seq_len keeps for
        the backward pass (every layer's gates and states, the embedding, the logits)."""
        per_char = (self.num_layers * self.hidden_size * (GATES[self.cell] + 2)
                    + self.embed_size + 2 * self.vocab_size)
        return 4 * (6 * self.num_params() + 2 * batch_size * seq_len * per_char)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> ModelConfig:
        return cls(**_known_fields(cls, d))


# Peak learning rate by cell, for runs with the weight average: the LSTM's gates keep it
# stable at twice the rate that suits a GRU or tanh RNN (docs/benchmarks.md, "lr and
# average"). TrainConfig's default is the LSTM's; the CLI takes the chosen cell's.
CELL_LR = {"lstm": 1.6e-2, "gru": 8e-3, "rnn": 8e-3}


@dataclass
class TrainConfig:
    """How to train: batching, optimisation, budget and evaluation."""

    batch_size: int = 32  # B parallel streams through the corpus
    seq_len: int = 32  # T characters per chunk: the truncated-BPTT window
    lr: float = CELL_LR["lstm"]  # peak AdamW learning rate, after warm-up
    min_lr_ratio: float = 0.1  # the schedule decays to lr * min_lr_ratio at the end
    warmup_steps: int = 50
    weight_decay: float = 0.1
    grad_clip: float = 1.0  # max global gradient norm; 0 disables clipping
    ema: float = 0.995  # decay of the weight average that is validated and saved; 0: off
    max_time: float | None = None  # seconds of wall time, everything included
    max_steps: int | None = None
    epochs: float | None = None
    patience: int = 5  # stop after this many evaluations without improvement; 0: never
    eval_every: int = 0  # steps between validations; 0: automatic (time-based)
    val_fraction: float = 0.1  # tail of the text held out for validation
    val_max_chars: int = 1_000_000  # held-out chars scored per validation (spread); 0: all
    log_every: int = 20  # steps between train-loss lines in metrics.jsonl
    preview: int = 200  # characters sampled at each validation (charrnn.train.preview); 0: none
    seed: int = 1337
    device: str = "auto"
    precision: str = "auto"  # auto | fp32 | bf16: autocast for the recurrent layers
    compile: bool = False  # torch.compile the model (worth it on GPUs for long runs)

    def __post_init__(self) -> None:
        _positive_int("batch size", self.batch_size)
        _positive_int("sequence length", self.seq_len)
        for name in ("lr", "min_lr_ratio", "weight_decay", "grad_clip", "val_fraction"):
            _finite(name.replace("_", " "), getattr(self, name))
        _require(self.lr > 0, f"learning rate must be positive, got {self.lr}")
        _require(0 <= self.min_lr_ratio <= 1, "min lr ratio must be in [0, 1]")
        _require(self.weight_decay >= 0, "weight decay must be >= 0")
        _require(self.grad_clip >= 0, "gradient clip must be >= 0 (0 disables it)")
        _finite("ema", self.ema)
        _require(0 <= self.ema < 1, f"ema decay must be in [0, 1) (0 disables it), got {self.ema}")
        _require(0 <= self.val_fraction < 1, "validation fraction must be in [0, 1)")
        _require(isinstance(self.warmup_steps, int) and self.warmup_steps >= 0,
                 "warm-up steps must be >= 0")
        _require(isinstance(self.patience, int) and self.patience >= 0, "patience must be >= 0")
        _require(isinstance(self.eval_every, int) and self.eval_every >= 0,
                 "eval interval must be >= 0")
        _require(isinstance(self.val_max_chars, int) and self.val_max_chars >= 0,
                 "validation sample size must be >= 0 (0 scores the whole held-out text)")
        _positive_int("log interval", self.log_every)
        _require(isinstance(self.preview, int) and not isinstance(self.preview, bool)
                 and 0 <= self.preview <= MAX_PREVIEW,
                 f"preview length must be in 0..{MAX_PREVIEW:,}, got {self.preview!r}")
        if self.max_time is not None:
            _finite("max time", self.max_time)
            _require(self.max_time > 0, "max time must be positive")
        if self.max_steps is not None:
            _positive_int("max steps", self.max_steps)
        if self.epochs is not None:
            _finite("epochs", self.epochs)
            _require(self.epochs > 0, "epochs must be positive")
        _require(isinstance(self.seed, int) and 0 <= self.seed < 2**63,
                 f"seed must be an integer in [0, 2**63), got {self.seed!r}")
        _require(valid_device(self.device),
                 f"device must be one of {', '.join(DEVICES)} or cuda:N, got {self.device!r}")
        _require(self.precision in PRECISIONS,
                 f"precision must be one of {', '.join(PRECISIONS)}, got {self.precision!r}")

    @property
    def has_budget(self) -> bool:
        return any(v is not None for v in (self.max_time, self.max_steps, self.epochs))

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> TrainConfig:
        return cls(**_known_fields(cls, d))

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def valid_device(name: str) -> bool:
    return name in DEVICES or (name.startswith("cuda:") and name[5:].isdigit())


def _known_fields(cls: type, d: dict[str, Any]) -> dict[str, Any]:
    if not isinstance(d, dict):
        raise ConfigError(f"{cls.__name__} must be a JSON object")
    names = {f.name for f in fields(cls)}
    unknown = set(d) - names
    if unknown:
        raise ConfigError(f"unknown {cls.__name__} fields: {', '.join(sorted(unknown))}")
    return dict(d)


def parse_duration(text: str) -> float:
    """'90', '90s', '10m', '1.5h', '1h30m' -> seconds."""
    units = {"s": 1, "m": 60, "h": 3600, "d": 86400}
    s = text.strip().lower()
    total, num = 0.0, ""
    try:
        for ch in s:
            if ch.isdigit() or ch == ".":
                num += ch
            elif ch in units and num:
                total += float(num) * units[ch]
                num = ""
            else:
                raise ValueError
        if num:
            total += float(num)
    except ValueError:
        raise ConfigError(f"bad duration {text!r}: use e.g. 90s, 10m, 1.5h or 1h30m") from None
    if not s or not math.isfinite(total) or total <= 0:
        raise ConfigError(f"bad duration {text!r}: use e.g. 90s, 10m, 1.5h or 1h30m")
    return total


def memory_bytes() -> int | None:
    """This machine's physical memory (None where the system does not say)."""
    try:
        return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (ValueError, OSError, AttributeError):  # pragma: no cover - not POSIX
        return None


def gigabytes(n: float) -> str:
    return f"{n / 1e9:,.1f} GB" if n < 1e13 else f"{n / 1e12:,.0f} TB"


DEFAULT_ROOT = Path("checkpoints")  # where runs are saved, listed and served from
CHECKPOINT_SUFFIX = ".safetensors"  # of every checkpoint file (runs/checkpoint.py)
LOCK_NAME = ".lock"  # held by the run training in a folder (runs/lock.py)
RUN_MARKS = (LOCK_NAME, f"*{CHECKPOINT_SUFFIX}")  # a folder holding one is a run folder

SHORT_BUDGET = 180.0  # seconds: below this a 2x256 model learns more than a bigger one
SMALL_CORPUS = 200_000  # training characters: below this a 2x256 model, whatever the budget


def follows_machine(train_chars: int, max_time: float | None) -> bool:
    """Whether the model is worth measuring this machine for (``charrnn.train.probe``): a time
    budget on a corpus that is not small. Below ``SHORT_BUDGET`` only the dropout follows
    the machine (the size stays 2x256); from it, the hidden size too."""
    return max_time is not None and train_chars >= SMALL_CORPUS


def auto_model(train_chars: int, max_time: float | None = None) -> dict[str, Any]:
    """Capacity and regularisation for a corpus of this size and a time budget.

    Short budgets and small texts get a small, fast model; from 200k characters 2x384,
    which nearly matches 2x512 while training and sampling faster; a bigger corpus gets
    less dropout rather than a bigger model. With a time budget (``follows_machine``)
    the hidden size is chosen again from this machine's measured speed
    (``charrnn.train.probe``). The measurements behind each choice are in docs/benchmarks.md
    ("The defaults and why"). Each part is overridable with --layers, --hidden-size and
    --dropout.
    """
    if train_chars < SMALL_CORPUS or (max_time is not None and max_time < SHORT_BUDGET):
        return {"num_layers": 2, "hidden_size": 256, "dropout": 0.25}
    return {"num_layers": 2, "hidden_size": 384,
            "dropout": 0.25 if train_chars < 5_000_000 else 0.1}


def auto_batch(train_chars: int, batch_size: int, seq_len: int) -> tuple[int, int]:
    """Shrink the default batch and window so a short text still yields a few chunks."""
    seq_len = max(1, min(seq_len, (train_chars - 1) // 4))
    return max(1, min(batch_size, (train_chars - 1) // (4 * seq_len))), seq_len


@dataclass(frozen=True)
class AdaptConfig:
    """``eval --adapt`` (charrnn/adapt.py); defaults measured in docs/benchmarks.md."""

    segment: int = 50  # characters of each stream scored per update
    streams: int = 8  # parallel streams through the text (as eval's), one shared model
    burn_in: int = 128  # characters each later stream reads before scoring (as eval)
    lr: float = 1e-3  # step size in units of the gradient's running RMS
    decay: float = 0.01  # pull towards the trained weights per update
    beta: float = 0.99  # running mean of squared gradients: about 100 segments
    eps: float = 1e-8

    def __post_init__(self) -> None:
        if self.segment < 1:
            raise ConfigError(f"--adapt-segment must be at least 1, got {self.segment}")
        if self.streams < 1:
            raise ConfigError(f"--adapt-streams must be at least 1, got {self.streams}")
        if not (math.isfinite(self.lr) and self.lr >= 0):
            raise ConfigError(f"--adapt-lr must be a finite number >= 0, got {self.lr}")
        if not 0 <= self.decay <= 1:
            raise ConfigError(f"--adapt-decay must be in [0, 1], got {self.decay}")


MAX_STREAMS = 100_000  # each stream is a row of the server's batched state
MAX_SERVE_CHARS = 10_000_000  # per request: a choice's text is kept until it is sent
MAX_GRACE = 86_400.0  # seconds


@dataclass
class FlowConfig:
    """``charrnn gradients`` (score/flow.py): what it measures, and on how much text."""

    max_distance: int = 200  # K: gradients with respect to the state k = 0..K back
    windows: int = 64  # windows the gradient norms are averaged over
    burn_in: int = 128  # characters read before each window, without gradients
    context: bool = True  # also measure context use
    max_context: int = 256  # k = 1, 2, 4, ... up to this
    positions: int = 2048  # positions scored for each k (fewer: noisy, docs/inspect.md)
    max_chars: int = 200_000  # of the text, from its start


@dataclass
class ServeConfig:
    """``charrnn serve`` (charrnn/serve/runner.py): what is served, where, and its limits."""

    target: str | None = None  # one run folder or checkpoint; None: every run under root
    root: Path = DEFAULT_ROOT
    host: str = "127.0.0.1"
    port: int = 8000
    api_key: str | None = None
    max_streams: int = 128
    max_chars: int = 4096
    grace: float = 30.0  # seconds in-flight streams get to finish after SIGTERM (<= a day)
    log_level: str = "info"

    def __post_init__(self) -> None:
        if not 0 <= self.port <= 65535:
            raise ConfigError(f"port must be in 0..65535, got {self.port}")
        for name, top in (("max_streams", MAX_STREAMS), ("max_chars", MAX_SERVE_CHARS)):
            if not 1 <= getattr(self, name) <= top:
                raise ConfigError(f"--{name.replace('_', '-')} must be in 1..{top:,}, "
                                  f"got {getattr(self, name)}")
        if not (math.isfinite(self.grace) and 0 <= self.grace <= MAX_GRACE):
            raise ConfigError(f"--grace must be in 0..{MAX_GRACE:g} seconds (a day), "
                              f"got {self.grace}")
        key = self.api_key
        if key is not None and (not key or not key.isprintable() or not key.isascii()
                                or key.strip() != key):
            raise ConfigError("the API key must be printable ASCII text, without spaces at "
                              "its ends (CHARRNN_API_KEY or --api-key; an empty key would "
                              "turn authentication off)")
