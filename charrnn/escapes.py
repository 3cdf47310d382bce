"""Escapes both ways: option text to characters (``\\n`` in ``--stop '\\n\\n'``), and any
text to one printable line (a preview in a log, a sample in a report)."""

from __future__ import annotations

import re

_ESCAPES = {"n": "\n", "t": "\t", "0": "\0", "\\": "\\"}
_SHORT = {"\\": "\\\\", "\n": "\\n", "\t": "\\t", "\r": "\\r"}


def unescape(text: str) -> str:
    """Turn \\n, \\t, \\0 and \\\\ into the characters; leave other backslashes alone."""
    return re.sub(r"\\([nt0\\])", lambda m: _ESCAPES[m[1]], text)


def escape(text: str, keep: str = "") -> str:
    """``text`` with backslashes, line breaks and unprintable characters written as
    escapes (``\\n``, ``\\x1b``, ``\\u2028``), so it cannot break a line or drive a
    terminal; characters in ``keep`` (e.g. newline and tab) stay as they are."""
    def one(ch: str) -> str:
        if ch in keep:
            return ch
        if ch in _SHORT:
            return _SHORT[ch]
        if ch.isprintable() or ch == " ":
            return ch
        code = ord(ch)
        return f"\\x{code:02x}" if code < 0x100 else (
            f"\\u{code:04x}" if code < 0x10000 else f"\\U{code:08x}")
    return "".join(map(one, text))
