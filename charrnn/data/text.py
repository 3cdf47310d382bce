"""Text in, ids out: reading a corpus safely, and the character vocabulary.

Everything here is numpy-only so the sampler never has to import torch.
"""

from __future__ import annotations

import hashlib
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import NoReturn

import numpy as np

from charrnn.errors import CharRNNError

BUILTIN_CORPUS = "builtin:pydoc"
"""Name of the default corpus: the English help topics every Python install ships."""

_UTF16_BOMS = {b"\xff\xfe": "UTF-16 LE", b"\xfe\xff": "UTF-16 BE"}
_UTF32_BOMS = {b"\xff\xfe\x00\x00": "UTF-32 LE", b"\x00\x00\xfe\xff": "UTF-32 BE"}


def normalize(text: str) -> str:
    """Drop a byte-order mark and turn CRLF / CR line endings into LF."""
    if text.startswith("\ufeff"):
        text = text[1:]
    return text.replace("\r\n", "\n").replace("\r", "\n")


def decode_utf8(data: bytes, name: str) -> str:
    """Decode bytes as UTF-8, explaining in one line why a file is not usable text."""
    check_head(data[:4], name)
    nul = data.find(b"\x00")
    if nul >= 0:
        nul_error(data[:4096], nul, name)
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as e:
        utf8_error(data[e.start], e.start, name)


def split_primes(data: bytes, name: str, nul: bool = False) -> list[str]:
    """The primes of a file: one per line, or (``nul``) separated by NUL characters, so a
    prime may hold line breaks. A final separator ends the last prime rather than
    starting an empty one; other empty primes stay (a sample from a fresh line)."""
    if nul:
        parts = [decode_utf8(part, name) for part in data.split(b"\x00")]
    else:
        parts = normalize(decode_utf8(data, name)).split("\n")
    if len(parts) > 1 and parts[-1] == "":
        parts.pop()
    if parts == [""]:
        raise CharRNNError(f"{name} holds no primes")
    return parts


def check_head(head: bytes, name: str) -> None:
    """Refuse UTF-16/UTF-32 files by their byte-order mark (the first 4 bytes suffice)."""
    for bom, enc in (_UTF32_BOMS | _UTF16_BOMS).items():
        if head.startswith(bom):
            _fail(f"{name} is {enc} text; convert it to UTF-8 first "
                  f"(for example: iconv -f {enc.replace(' ', '')} -t UTF-8)")


def nul_error(head: bytes, offset: int, name: str) -> NoReturn:
    """A NUL byte at ``offset``: UTF-16 without a BOM (judged by the first 4 KiB) or binary."""
    # UTF-16 without a BOM: every other byte of ASCII text is a NUL, and the bytes between
    # are not (a binary such as an ELF header has NULs at both parities).
    # A few bytes are no evidence either way: a lone NUL is binary, not UTF-16.
    even, odd = (part.count(0) / max(len(part), 1) for part in (head[0::2], head[1::2]))
    if head.count(0) >= 4 and max(even, odd) > 0.4 and min(even, odd) < 0.1:
        _fail(f"{name} looks like UTF-16 text; convert it to UTF-8 first "
              "(for example: iconv -f UTF-16 -t UTF-8)")
    _fail(f"{name} looks like a binary file (NUL byte at offset {offset}), not UTF-8 text")


def utf8_error(byte: int, offset: int, name: str) -> NoReturn:
    _fail(f"{name} is not valid UTF-8 (byte 0x{byte:02x} at offset {offset}); "
          "convert it to UTF-8 first")


def _fail(message: str) -> NoReturn:
    raise CharRNNError(message)


def check_file(path: str | Path) -> Path:
    """The path of an existing regular file, or a one-line error saying what is wrong."""
    p = Path(path)
    if not p.exists():
        _fail(f"no such file: {p}")
    if p.is_dir():
        _fail(f"{p} is a directory, not a text file")
    return p


def read_text(path: str | Path) -> str:
    """Read a UTF-8 text file (or the built-in corpus), normalised, refusing unusable files."""
    if str(path) == BUILTIN_CORPUS:
        return builtin_corpus()
    p = check_file(path)
    try:
        data = p.read_bytes()
    except PermissionError:
        _fail(f"cannot read {p}: permission denied")
    except OSError as e:
        _fail(f"cannot read {p}: {e.strerror or e}")
    if not data:
        _fail(f"{p} is empty")
    text = normalize(decode_utf8(data, str(p)))
    if not text.strip():
        _fail(f"{p} holds only whitespace")
    return text


def builtin_corpus() -> str:
    """The English text of Python's help topics (pydoc_data), ~460k characters, no download."""
    try:
        from pydoc_data.topics import topics
    except ImportError:  # pragma: no cover - stripped-down Python builds
        _fail("this Python has no pydoc_data module; give a text file to train on")
    return normalize("\n\n".join(topics[k].strip("\n") for k in sorted(topics)) + "\n")


def text_digest(text: str) -> str:
    """A short content hash, so eval can tell whether a corpus changed since training."""
    return hashlib.sha256(text.encode("utf-8")).hexdigest()[:16]


def _code_points(text: str) -> np.ndarray:
    return np.frombuffer(text.encode("utf-32-le"), dtype="<u4")


@dataclass(frozen=True)
class Vocab:
    """The characters of the training text, sorted by code point; id = position."""

    chars: tuple[str, ...]
    _cps: np.ndarray = field(init=False, repr=False, compare=False)  # sorted code points

    def __post_init__(self) -> None:
        cps = [ord(c) for c in self.chars]
        if not self.chars or cps != sorted(set(cps)):
            raise CharRNNError("a vocabulary must be distinct characters in code-point order")
        object.__setattr__(self, "_cps", np.asarray(cps, dtype=np.uint32))

    @classmethod
    def from_text(cls, text: str) -> Vocab:
        return cls(tuple(chr(c) for c in np.unique(_code_points(text))))

    def __len__(self) -> int:
        return len(self.chars)

    def __contains__(self, ch: object) -> bool:
        return ch in self.chars

    @property
    def dtype(self) -> np.dtype:
        """The smallest unsigned integer type that holds every id."""
        n = len(self.chars)
        return np.dtype(np.uint8 if n <= 256 else np.uint16 if n <= 65536 else np.uint32)

    def _lookup(self, text: str) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        cps = _code_points(text)
        ids = np.searchsorted(self._cps, cps)
        ids[ids == len(self._cps)] = 0
        return cps, ids, self._cps[ids] == cps

    def unknown(self, text: str) -> Counter[str]:
        """Characters of ``text`` that are not in the vocabulary, with their counts."""
        cps, _, known = self._lookup(text)
        return Counter(chr(c) for c in cps[~known])

    def encode(self, text: str) -> np.ndarray:
        """Ids of every character (compact dtype); unknown characters are an error."""
        cps, ids, known = self._lookup(text)
        if not known.all():
            missing = "".join(sorted({chr(c) for c in cps[~known]}))
            raise CharRNNError(f"characters not in the model's vocabulary: {missing!r}")
        return ids.astype(self.dtype)

    def encode_known(self, text: str) -> tuple[np.ndarray, Counter[str]]:
        """Ids of the known characters, skipping (and counting) the unknown ones."""
        cps, ids, known = self._lookup(text)
        unknown = Counter(chr(c) for c in cps[~known])
        return ids[known].astype(self.dtype), unknown

    def decode(self, ids: Sequence[int] | np.ndarray) -> str:
        chars = self.chars
        return "".join(chars[i] for i in np.asarray(ids).tolist())
