"""How the next character is chosen, declared once: the decoding controls, and a sample's
settings around them.

``Decoding`` holds every control that shapes the distribution a character is drawn from
(temperature, top-k, top-p). Each field declares its default, its bounds, its command-line
flags and its help, and the surfaces read those declarations: ``charrnn sample`` builds
its options from them, the Python API takes them as keywords, the HTTP server parses
the request fields of the same names, and the bounds are checked here, once, for all of
them. Adding a control is a field here and its effect in ``pick.py``; the CLI option,
the API keyword and the HTTP field follow (the README's code map has the recipe).

No numpy here: ``charrnn sample`` reads these declarations before numpy loads (its BLAS
threads are chosen first).
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field, fields
from typing import Any

from charrnn.errors import ConfigError
from charrnn.safetext import check_text


@dataclass(frozen=True)
class Spec:
    """How a control is offered and bounded (the metadata of a ``Decoding`` field)."""

    help: str
    flags: tuple[str, ...]  # command-line flags; the first is the option's name
    min: float | None = None
    max: float | None = None
    min_open: bool = False  # min itself is refused: (min, max]
    zero: str | None = None  # what 0 means for an int control ("all"), 0 is then allowed

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
            max: float | None = None, min_open: bool = False, zero: str | None = None) -> Any:
    """A ``Decoding`` field that also says how it is offered and bounded."""
    return field(default=default, metadata={"spec": Spec(help, flags, min, max, min_open, zero)})


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

    def __post_init__(self) -> None:
        for f in fields(self):
            object.__setattr__(self, f.name, check(f.name, getattr(self, f.name)))

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


CONTROLS = {f.name: f for f in fields(Decoding)}
"""Every control by name: the API keywords and the HTTP fields."""


def spec(name: str) -> Spec:
    return CONTROLS[name].metadata["spec"]


def kind(name: str) -> type:
    """int or float: the type of a control's values."""
    return {"int": int, "float": float}[str(CONTROLS[name].type)]


def check(name: str, value: Any) -> Any:
    """``value`` for control ``name`` if it is of the right type and within its bounds
    (an int is taken for a float control), else a ConfigError naming the control."""
    s, k = spec(name), kind(name)
    label = name.replace("_", "-")
    number = isinstance(value, (int, float)) and not isinstance(value, bool)
    ok = number and (isinstance(value, int) if k is int else math.isfinite(value))
    if ok and s.min is not None:
        ok = value > s.min if s.min_open else value >= s.min
    if ok and s.max is not None:
        ok = value <= s.max
    if not ok:
        raise ConfigError(f"{label} must be {s.rule(k)}, got {value!r}", field=name)
    return float(value) if k is float else value


@dataclass(frozen=True)
class SampleConfig:
    """What to generate: how much, from which random numbers, when to stop, how many at
    once, and how each character is chosen."""

    length: int = 1000  # characters to generate after the prime, at most
    seed: int | None = None  # sample i uses seed + i; None: a fresh random seed
    stop: str | tuple[str, ...] = ()  # a sample ends right after producing any of these
    num_samples: int = 1  # independent samples, generated as one batch
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
