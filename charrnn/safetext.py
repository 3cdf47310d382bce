"""Text from outside, and text going out: the one way charrnn reads untrusted text and
names, and the one JSON encoder.

On Linux a file name is bytes, not text: ``$'\\xff.txt'`` is a valid name that is not
UTF-8. Python hands it over as a str holding a lone surrogate (``'\\udcff.txt'``, the
"surrogateescape" of the byte), which the OS functions take back exactly, but which
cannot be written as UTF-8. A JSON request can hold a lone surrogate too
(``"\\ud800"``). So:

- a **name** (a path from the command line, a folder walk or a checkpoint) is kept as it
  came, for the OS; it is shown as ``shown(name)`` (each undecodable byte as ``\\xff``,
  other lone surrogates as ``\\ud800``: always valid UTF-8, one line per name), and
  stored (``dumps(..., exact=True)``) as ``\\udcff`` escapes that read back to the same
  str;
- **text** (a prime, a stop string, a separator, a request's prompt) must be real text:
  ``check_text`` refuses a lone surrogate with one line naming the option or field;
- **JSON** is written by ``dumps`` only: always valid JSON (a NaN or an infinity becomes
  null, a name its shown form), whatever a damaged checkpoint or a diverged score holds.
"""

from __future__ import annotations

import json
import math
import re
from typing import Any

from charrnn.errors import ConfigError

_SURROGATE = re.compile("[\ud800-\udfff]")


def _show(m: re.Match[str]) -> str:
    code = ord(m[0])
    return f"\\x{code - 0xDC00:02x}" if 0xDC80 <= code <= 0xDCFF else f"\\u{code:04x}"


def shown(text: str) -> str:
    """``text`` as valid UTF-8 text: a name's undecodable bytes as ``\\xNN``, any other lone
    surrogate as ``\\uNNNN``; anything else unchanged."""
    return text if text.isascii() else _SURROGATE.sub(_show, text)


def check_text(value: str, what: str, field: str | None = None) -> str:
    """``value`` if it is real text; else a ConfigError (a usage error, exit 2; a 400 from
    the server) saying where it is not: an option's undecodable byte, or a lone surrogate
    from a JSON escape. ``field`` names the setting (the server's ``param``)."""
    m = _SURROGATE.search(value)
    if m is None:
        return value
    code = ord(m[0])
    where = (f"byte 0x{code - 0xDC00:02x} at character {m.start()}" if 0xDC80 <= code <= 0xDCFF
             else f"a lone surrogate \\u{code:04x} at character {m.start()}")
    raise ConfigError(f"{what} is not valid UTF-8 text ({where})", field=field)


def _clean(obj: Any, exact: bool) -> Any:
    if isinstance(obj, float):
        return obj if math.isfinite(obj) else None
    if isinstance(obj, str):
        return obj if exact else shown(obj)
    if isinstance(obj, dict):
        return {_clean(k, exact) if isinstance(k, str) else k: _clean(v, exact)
                for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_clean(v, exact) for v in obj]
    return obj


def dumps(obj: Any, *, exact: bool = False, **kw: Any) -> str:
    """The one JSON encoder: always valid JSON (``json.dumps`` keywords pass through;
    non-ASCII text is written as itself unless ``ensure_ascii=True``).

    A NaN or an infinity becomes null. A string with lone surrogates (a name that is not
    UTF-8) is written as ``shown`` shows it; with ``exact`` (files charrnn reads back: a
    checkpoint's metadata, the cache's records) as ``\\udcff`` escapes, which ``json.loads``
    turns back into the same str, so the name still opens the same file."""
    kw.setdefault("ensure_ascii", False)
    text = json.dumps(_clean(obj, exact), allow_nan=False, **kw)
    return _SURROGATE.sub(lambda m: f"\\u{ord(m[0]):04x}", text) if exact else text
