"""What every command module shares: one-line errors, the checkpoint option, option panels,
and commands built from declarations (train's ``TrainOptions``, sample's ``Decoding``)."""

from __future__ import annotations

import inspect
import sys
from collections.abc import Callable
from dataclasses import MISSING, fields
from enum import Enum
from functools import wraps
from typing import Annotated, Any, get_type_hints

import typer

from charrnn.errors import ConfigError
from charrnn.escapes import escape, unescape
from charrnn.generate.decoding import Decoding, kind, spec
from charrnn.safetext import shown
from charrnn.train.options import CKPT

OUTPUT, SAMPLING, NOVELTY, ADAPT, SERVING = (
    "Output", "Sampling", "Copies of the training text", "Dynamic evaluation", "Serving")


def err(message: str) -> None:
    """One line on stderr (a name that is not UTF-8 shown as \\xNN)."""
    print(f"charrnn: {shown(message)}", file=sys.stderr, flush=True)


CheckpointOpt = Annotated[
    str | None,
    typer.Option("--checkpoint", "-c", rich_help_panel=CKPT,
                 help="A .safetensors checkpoint or a run folder (its best checkpoint). "
                      "Default: the newest run under checkpoints/."),
]


def one_checkpoint(argument: str | None, option: str | None) -> str | None:
    """The checkpoint a command was given, as an argument or with -c (not two different
    ones): every command that reads a checkpoint takes -c."""
    if argument is not None and option is not None and argument != option:
        raise ConfigError(f"two checkpoints given ({argument} and -c {option}); give one")
    return option if option is not None else argument


def from_options(cls: type, func: Callable[[Any], None]) -> Callable[..., None]:
    """A Typer command whose parameters are the fields of the options dataclass ``cls``
    (see charrnn.train.options), calling ``func`` with an instance of it."""
    hints, params = get_type_hints(cls), []
    for f in fields(cls):
        m, annotation, default = f.metadata["cli"], hints[f.name], f.default
        assert default is not MISSING
        if m["choices"]:  # an Enum, so Typer lists the choices
            choices = Enum(f.name.title(), {c: c for c in m["choices"]}, type=str)  # type: ignore[misc]
            annotation = choices if default is not None else choices | None
            default = default if default is None else choices(default)
        if m["argument"]:
            info = typer.Argument(help=m["help"], show_default=m["show_default"])
        else:
            info = typer.Option(*m["flags"], help=m["help"], rich_help_panel=m["panel"],
                                min=m["min"], max=m["max"], show_default=m["show_default"])
        params.append(inspect.Parameter(f.name, inspect.Parameter.KEYWORD_ONLY,
                                        default=default, annotation=Annotated[annotation, info]))

    def command(**values: Any) -> None:
        func(cls(**{k: v.value if isinstance(v, Enum) else v for k, v in values.items()}))

    command.__name__, command.__doc__ = func.__name__, func.__doc__
    command.__signature__ = inspect.Signature(params)  # type: ignore[attr-defined]
    command.__annotations__ = {p.name: p.annotation for p in params}
    return command


def with_controls(func: Callable[..., None], panel: str) -> Callable[..., None]:
    """``func`` with its ``decoding`` parameter offered as one option per control that has
    flags (see charrnn.generate.decoding), called with the ``Decoding`` they make. Text
    controls marked ``escapes`` understand \\n, \\t, \\0 and \\\\ as --stop does."""
    offered = [f for f in fields(Decoding) if f.metadata["spec"].flags]
    types = {"int": int, "float": float, "str": str, "str | None": str | None}

    def param(f: Any) -> inspect.Parameter:
        s = f.metadata["spec"]
        text = kind(f.name) is str
        info = typer.Option(*s.flags, help=s.help, rich_help_panel=panel,
                            min=None if text else s.min, max=None if text else s.max,
                            show_default=escape(f.default) if text and f.default else not text)
        return inspect.Parameter(f.name, inspect.Parameter.KEYWORD_ONLY, default=f.default,
                                 annotation=Annotated[types[str(f.type)], info])

    signature, hints = inspect.signature(func), get_type_hints(func, include_extras=True)
    params = []
    for p in signature.parameters.values():
        params += [param(f) for f in offered] if p.name == "decoding" else [
            p.replace(kind=inspect.Parameter.KEYWORD_ONLY, annotation=hints[p.name])]

    @wraps(func)
    def command(**values: Any) -> None:
        controls = {f.name: values.pop(f.name) for f in offered}
        for name, value in controls.items():
            if spec(name).escapes and isinstance(value, str):
                controls[name] = unescape(value)
        func(**values, decoding=Decoding(**controls))

    command.__signature__ = signature.replace(parameters=params)  # type: ignore[attr-defined]
    command.__annotations__ = {p.name: p.annotation for p in params}
    return command
