"""The README's option tables agree with the code: every option listed, every default true."""

from __future__ import annotations

import re
from enum import Enum
from pathlib import Path

import pytest
import typer

from charrnn.cli import app

README = Path(__file__).resolve().parents[1] / "README.md"


def readme_rows(command: str) -> list[tuple[list[str], str]]:
    """(long options, default cell) of each row of the table under ``### `charrnn CMD``."""
    text = README.read_text(encoding="utf-8")
    match = re.search(rf"^### `charrnn {command}\b.*?$(.*?)(?=^##)", text, re.M | re.S)
    assert match, f"README has no section for charrnn {command}"
    rows = []
    for line in match.group(1).splitlines():
        cells = [c.strip() for c in re.split(r"(?<!\\)\|", line.strip())[1:-1]]
        if len(cells) >= 3 and cells[0].startswith("`"):
            rows.append((re.findall(r"--[a-z][a-z0-9-]*", cells[0]), cells[1]))
    return rows


def code_options(command: str) -> tuple[dict[str, object], dict[str, object]]:
    """From the real command: {first long option of each parameter: default} (these must
    be listed) and {every long option, aliases and --no-x included: default}."""
    cmd = typer.main.get_command(app).commands[command]  # type: ignore[attr-defined]
    primary, every = {}, {}
    for p in cmd.params:
        longs = [o for o in p.opts if o.startswith("--")]
        if p.param_type_name == "option" and longs and longs[0] != "--help":
            default = p.default.value if isinstance(p.default, Enum) else p.default
            primary[longs[0]] = default
            for o in longs + [o for o in p.secondary_opts if o.startswith("--")]:
                every[o] = default
    return primary, every


def flag_pair(flags: list[str]) -> bool:
    """``--echo / --no-echo`` or ``--temp``, ``--temperature``: one option, two names."""
    return len(flags) == 2 and (flags[1] == "--no-" + flags[0][2:] or flags[1].startswith(flags[0]))


def agrees(default: object, cell: str) -> bool:
    """Whether a README default cell states the code's default."""
    shown = cell.replace("`", "").strip()
    if default is None:  # chosen at run time or off: described in words, or blank
        return True
    if isinstance(default, bool):
        return (shown not in ("", "off")) == default
    if isinstance(default, (int, float)):
        number = re.match(r"[+-]?(\d[\d,]*\.?\d*|\.\d+)([eE][+-]?\d+)?", shown)
        return bool(number) and float(number.group(0).replace(",", "")) == float(default)
    return shown.split(" ")[0] == str(default)


@pytest.mark.parametrize("command", ["train", "sample", "eval", "export"])
def test_readme_option_table_matches_the_code(command):
    primary, options = code_options(command)
    rows = readme_rows(command)
    listed = {o for flags, _ in rows for o in flags}
    assert not (set(primary) - listed), f"options missing from the README: {set(primary) - listed}"
    assert not (listed - set(options)), f"README lists unknown options: {listed - set(options)}"
    for flags, cell in rows:
        for flag in flags[:1] if flag_pair(flags) else flags:
            assert agrees(options[flag], cell), (
                f"README says {flag} defaults to {cell!r}; the code says {options[flag]!r}")


def test_the_check_catches_a_wrong_default():
    assert agrees(32, "32") and agrees(0.004, "4e-3") and agrees(1_000_000, "1000000")
    assert not agrees(32, "64") and not agrees(True, "") and not agrees(False, "on")
    assert agrees("lstm", "`lstm`") and not agrees("lstm", "`gru`")
