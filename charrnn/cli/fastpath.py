"""The sample command's options parsed without Typer, for a fast start."""

from __future__ import annotations

from collections.abc import Callable

_NUMBER = {int: r"[+-]?\d+", float: r"[+-]?(\d+\.?\d*|\.\d+)([eE][+-]?\d+)?"}


def sample_options(sample: Callable[..., None], args: list[str]) -> dict | None:
    """The sample command's options parsed without Typer, or None to let Typer do it.

    Typer builds a pydantic validator for each option before a command runs, a large
    share of ``charrnn sample``'s start-up (docs/sampling.md). Here plain,
    valid options are read from the same declarations (``sample``'s signature); help,
    anything unknown, malformed or out of range returns None, so Typer parses it and
    reports any error exactly as for the other commands.
    """
    if args[:1] != ["sample"]:
        return None
    import re
    from typing import get_args

    from typer.utils import get_params_from_function

    params = get_params_from_function(sample)
    values = {name: p.default.default for name, p in params.items()}
    options = {}  # option string -> (parameter name, flag value or None)
    for name, p in params.items():
        for decl in p.default.param_decls:
            on, _, off = decl.partition("/")
            is_flag = p.annotation is bool
            options[on] = (name, True if is_flag else None)
            if off:
                options[off] = (name, False)
    rest = args[1:]
    while rest:
        arg, rest = rest[0], rest[1:]
        opt, eq, value = arg.partition("=") if arg.startswith("--") else (arg, "", "")
        if opt not in options and arg[:2] in options and not arg.startswith("--"):
            opt, eq, value = arg[:2], "=", arg[2:]  # -n500
        if opt not in options:
            return None
        name, flag = options[opt]
        if flag is not None:
            if eq:
                return None
            values[name] = flag
            continue
        if not eq:
            if not rest:
                return None
            value, rest = rest[0], rest[1:]
        kind = next((t for t in (params[name].annotation, *get_args(params[name].annotation))
                     if t in (int, float, str, list[str])), None)
        if kind in _NUMBER:
            if not re.fullmatch(_NUMBER[kind], value):
                return None
            number, info = kind(value), params[name].default
            if (info.min is not None and number < info.min) or (
                    info.max is not None and number > info.max):
                return None
            values[name] = number
        elif kind is str:
            values[name] = value
        elif kind == list[str]:
            values[name] = [*(values[name] or ()), value]
        else:
            return None
    return values
