"""``charrnn cache``: list, prune and clear the corpus cache (data/cachedir.py)."""

from __future__ import annotations

import time
from typing import Annotated

import typer

from charrnn.cli.common import err
from charrnn.cli.output import say
from charrnn.safetext import dumps


def cache_(
    prune: Annotated[bool, typer.Option("--prune", help="Delete entries whose source is "
                     "gone or changed, then the least recently used above the cap.")] = False,
    clear: Annotated[bool, typer.Option("--clear", help="Delete every entry.")] = False,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON lines.")] = False,
) -> None:
    """List the corpus cache (encoded texts, rebuilt when needed; deleting is always safe).

    The cache is pruned after every new encoding and kept under $CHARRNN_CACHE_MAX
    (default 10G).

    Examples:

        charrnn cache

        charrnn cache --prune

        charrnn cache --clear
    """
    from charrnn.data import cachedir
    from charrnn.data.cachedir import cache_root

    if prune or clear:
        gone = cachedir.clear() if clear else cachedir.prune()
        err(f"removed {len(gone)} entries ({cachedir.human(sum(e.size for e in gone))}) "
             f"from {cache_root()}/")
        return
    found = cachedir.entries()
    if as_json:
        for e in found:
            say(dumps(e.as_dict()))
        return
    for e in reversed(found):  # most recently used first
        used = time.strftime("%Y-%m-%d %H:%M", time.localtime(e.used))
        say(f"{cachedir.human(e.size):>10}  {e.status:<7}  {used}  {e.source}")
    say(f"{cachedir.human(sum(e.size for e in found)):>10}  total in {len(found)} entries "
          f"under {cache_root()}/ (cap {cachedir.human(cachedir.cap_bytes())})")
