"""How the next character is chosen, declared once: the decoding controls, and a sample's
settings around them.

``Decoding`` holds every control that shapes the distribution a character is drawn from:
temperature, top-k, top-p and min-p (``pick.py``), and the controls that act on the logits
before them and may need the text so far: ``logit_bias`` and ``ban``, the DRY repetition
penalty and a ``regex`` every sample must match (``steer.py``). Each field declares its
default, its bounds, its command-line flags and its help, and the surfaces read those
declarations: ``charrnn sample`` builds its options from them, the Python API takes them
as keywords, the HTTP server parses the request fields of the same names, and the values
are checked here, once, for all of them. Adding a control is a field here and its effect
in ``pick.py`` (or ``steer.py``); the CLI option, the API keyword and the HTTP field
follow (the README's code map has the recipe).

No numpy here: ``charrnn sample`` reads these declarations before numpy loads (its BLAS
threads are chosen first).
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field, fields
from typing import Any

from charrnn.errors import ConfigError
from charrnn.safetext import check_text

MAX_TEXT = 10_000  # characters in a text control (a regex, the banned characters)
MAX_BIAS = 100.0  # |logit_bias| as OpenAI's API bounds it; -100 bans in practice


@dataclass(frozen=True)
class Spec:
    """How a control is offered and bounded (the metadata of a ``Decoding`` field)."""

    help: str
    flags: tuple[str, ...]  # command-line flags; the first is the option's name; none: API only
    min: float | None = None
    max: float | None = None
    min_open: bool = False  # min itself is refused: (min, max]
    zero: str | None = None  # what 0 means for an int control ("all"), 0 is then allowed
    escapes: bool = False  # a text control whose CLI value understands \n, \t, \0, \\

    def rule(self, kind: type) -> str:
        """The bound in words, for the one-line error: 'in (0, 1]', '>= 1 (or 0 for all)'."""
        if self.max is not None:
            return f"in {'(' if self.min_open else '['}{self.min:g}, {self.max:g}]"
        if kind is int:
            assert self.min is not None
            low = int(self.min) + (1 if self.zero else 0)
            return f">= {low}" + (f" (or {int(self.min)} for {self.zero})" if self.zero else "")
        return f"a finite number >= {self.min:g}"


def control(default: Any, help: str, *flags: str, min: float | None = None,
            max: float | None = None, min_open: bool = False, zero: str | None = None,
            escapes: bool = False) -> Any:
    """A ``Decoding`` field that also says how it is offered and bounded."""
    return field(default=default, metadata={
        "spec": Spec(help, flags, min, max, min_open, zero, escapes)})


@dataclass(frozen=True)
class Decoding:
    """The controls that shape each next character's distribution (hashable: the server
    groups its streams by it)."""

    temperature: float = control(
        1.0, "Sampling temperature; 0 is greedy.", "--temp", "--temperature", min=0.0)
    top_k: int = control(
        0, "Sample only among the k likeliest characters; 0 means all.", "--top-k", min=0,
        zero="all")
    top_p: float = control(
        1.0, "Nucleus sampling: only the fewest likeliest characters whose probability adds "
        "up to this; 1 means all.", "--top-p", min=0.0, max=1.0, min_open=True)
    min_p: float = control(
        0.0, "Keep only characters whose probability (after temperature) is at least this "
        "share of the likeliest one's; after top-k and top-p. 0 is off; 0.05 is llama.cpp's "
        "default.", "--min-p", min=0.0, max=1.0)
    dry_multiplier: float = control(
        0.0, "DRY repetition penalty: a character that would extend a repeat of earlier "
        "text loses multiplier * base^(repeat length - allowed length) from its logit. 0 "
        "is off; 0.8 is recommended (docs/sampling.md).", "--dry-multiplier", min=0.0)
    dry_base: float = control(
        1.75, "DRY: how fast the penalty grows with the repeat's length.", "--dry-base",
        min=1.0)
    dry_allowed_length: int = control(
        20, "DRY: repeats up to this many characters go unpenalised.",
        "--dry-allowed-length", min=1)
    dry_breakers: str = control(
        "\n", "DRY: characters a repeat may not span (\\n, \\t, \\0, \\\\ escapes).",
        "--dry-breakers", escapes=True)
    regex: str | None = control(
        None, "Every sample (from the end of the prime) fully matches this regular "
        "expression; a --stop string may end it where it has matched.", "--regex")
    ban: str = control(
        "", "Characters never to generate (\\n, \\t, \\0, \\\\ escapes).", "--ban",
        escapes=True)
    logit_bias: tuple[tuple[str, float], ...] = control(
        (), "Added to the logit of each character: {character: bias in [-100, 100]}.")

    def __post_init__(self) -> None:
        for f in fields(self):
            object.__setattr__(self, f.name, check(f.name, getattr(self, f.name)))

    def as_dict(self) -> dict[str, Any]:
        return {**asdict(self), "logit_bias": dict(self.logit_bias)}


CONTROLS = {f.name: f for f in fields(Decoding)}
"""Every control by name: the API keywords and the HTTP fields."""


def spec(name: str) -> Spec:
    return CONTROLS[name].metadata["spec"]


def kind(name: str) -> type:
    """The type of a control's values: int, float, str (a text, perhaps optional) or
    dict (characters to numbers)."""
    t = str(CONTROLS[name].type)
    return {"int": int, "float": float}.get(t, str if t.startswith("str") else dict)


def check(name: str, value: Any) -> Any:
    """``value`` for control ``name`` if it is of the right type and within its bounds
    (an int is taken for a float control), else a ConfigError naming the control."""
    s, k = spec(name), kind(name)
    label = name.replace("_", "-")
    if k is str:
        return _text(name, label, value)
    if k is dict:
        return _bias(label, name, value)
    number = isinstance(value, (int, float)) and not isinstance(value, bool)
    ok = number and (isinstance(value, int) if k is int else math.isfinite(value))
    if ok and s.min is not None:
        ok = value > s.min if s.min_open else value >= s.min
    if ok and s.max is not None:
        ok = value <= s.max
    if not ok:
        raise ConfigError(f"{label} must be {s.rule(k)}, got {value!r}", field=name)
    return float(value) if k is float else value


def _text(name: str, label: str, value: Any) -> str | None:
    if value is None and CONTROLS[name].default is None:
        return None
    if name == "dry_breakers" and isinstance(value, (list, tuple)) and all(
            isinstance(v, str) and len(v) == 1 for v in value):
        value = "".join(value)  # llama.cpp's form: a list of (here one-character) strings
    if not isinstance(value, str) or len(value) > MAX_TEXT:
        raise ConfigError(f"{label} must be a text of at most {MAX_TEXT:,} characters, "
                          f"got {value!r:.60}", field=name)
    if name == "regex":
        try:
            re.compile(value)
        except (re.error, RecursionError, OverflowError) as e:
            raise ConfigError(f"regex {value!r:.60} is not a regular expression: {e}",
                              field=name) from None
    return value


def _bias(label: str, name: str, value: Any) -> tuple[tuple[str, float], ...]:
    """A mapping (or pairs) of single characters to finite numbers in [-100, 100], as
    sorted pairs (hashable)."""
    try:
        pairs = list(value.items() if isinstance(value, Mapping) else value)
        ok = all(isinstance(c, str) and len(c) == 1 and isinstance(b, (int, float))
                 and not isinstance(b, bool) and math.isfinite(b) and abs(b) <= MAX_BIAS
                 for c, b in pairs)
    except (TypeError, ValueError):
        ok = False
    if not ok or isinstance(value, (str, bytes)) or len({c for c, _ in pairs}) != len(pairs):
        raise ConfigError(f"{label} must map single characters to numbers in "
                          f"[-{MAX_BIAS:g}, {MAX_BIAS:g}], got {value!r:.60}", field=name)
    return tuple(sorted((c, float(b)) for c, b in pairs))


@dataclass(frozen=True)
class SampleConfig:
    """What to generate: how much, from which random numbers, when to stop, how many at
    once, and how each character is chosen."""

    length: int = 1000  # characters to generate after the prime, at most
    seed: int | None = None  # sample i uses seed + i; None: a fresh random seed
    stop: str | tuple[str, ...] = ()  # a sample ends right after producing any of these
    num_samples: int = 1  # independent samples (per prime), generated as one batch
    decoding: Decoding = Decoding()

    def __post_init__(self) -> None:
        if not isinstance(self.length, int) or self.length < 0:
            raise ConfigError(f"length must be >= 0, got {self.length!r}")
        if self.seed is not None and (not isinstance(self.seed, int) or self.seed < 0):
            raise ConfigError(f"seed must be an integer >= 0, got {self.seed!r}")
        if not isinstance(self.num_samples, int) or self.num_samples < 1:
            raise ConfigError(f"number of samples must be >= 1, got {self.num_samples!r}")
        stop = (self.stop,) if isinstance(self.stop, str) else tuple(self.stop)
        if any(not isinstance(s, str) or not s for s in stop):
            raise ConfigError("a stop string must not be empty")
        for s in stop:
            check_text(s, "a stop string", "stop")
        object.__setattr__(self, "stop", stop)
        if not isinstance(self.decoding, Decoding):
            raise ConfigError(f"decoding must be a Decoding, got {self.decoding!r}")
