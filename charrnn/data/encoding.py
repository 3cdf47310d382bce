"""Text files to ids in bounded memory: UTF-8 read in blocks, checked, normalised, encoded.

``stream_blocks`` yields normalised UTF-8 blocks that end on character boundaries (a
UTF-8 sequence or a CR cut by the block edge is carried over, so CRLF and multi-byte
characters come out whole), with the one-line errors of ``text.read_text`` and byte
offsets into the whole file. ``encode_file`` makes two streaming passes over a file:
vocabulary, content hash and length first, then the ids in the smallest dtype the
vocabulary allows. The result is exactly ``Vocab.from_text(read_text(path))`` and its
``encode``. Work is vectorised per block: pure-ASCII blocks never become Python strings.
"""

from __future__ import annotations

import hashlib
import sys
from collections.abc import Iterator
from pathlib import Path

import numpy as np

from charrnn.data.text import Vocab, check_head, nul_error, utf8_error
from charrnn.errors import CharRNNError
from charrnn.files import replacing

BLOCK_SIZE = 8 << 20  # bytes read at a time: bounds memory, amortises per-block overhead
_BOM = b"\xef\xbb\xbf"
_CONTINUATION = bytes(range(0x80, 0xC0))  # UTF-8 bytes that do not start a character


def progress_bar(total: int, desc: str):
    """A byte-count bar on stderr for an encoding (hidden when stderr is not a terminal)."""
    from tqdm import tqdm

    return tqdm(total=total, unit="B", unit_scale=True, desc=desc, file=sys.stderr,
                disable=None, leave=False)


def encode_file(src: Path, ids_path: Path, block_size: int = BLOCK_SIZE,
                progress: bool = True, check_utf8: bool = True, mode: int | None = None,
                expect: str | None = None) -> dict | str:
    """Two streaming passes: vocabulary + hash + length, then ids into ``ids_path``
    (permission bits ``mode``). ``expect``: a digest the text must have, else nothing is
    written and the digest found is returned instead of the record."""
    size = src.stat().st_size
    if size == 0:
        raise CharRNNError(f"{src} is empty")
    bar = progress_bar(2 * size, f"encoding {src.name}") if progress else None
    try:
        # ---- pass 1: check the text; which characters occur, how many; the content hash
        seen = np.zeros(0x110000, bool)
        known_ascii = b""  # bytes already in the vocabulary: deleted before looking further
        digest, chars = hashlib.sha256(), 0
        for block in file_blocks(src, block_size, bar, check_utf8=check_utf8):
            digest.update(block)
            chars += len(block)
            rest = np.frombuffer(block.translate(None, known_ascii), np.uint8)
            if len(rest):  # every non-ASCII byte, and ASCII not seen before
                seen[rest[rest < 0x80]] = True
                if rest.max() >= 0x80:
                    _, cps, extra = multibyte(rest)
                    seen[cps] = True
                    chars -= int(extra.sum())  # continuation bytes are not characters
                known_ascii = bytes(np.flatnonzero(seen[:128]).astype(np.uint8))
        found = tuple(chr(c) for c in np.flatnonzero(seen))
        if all(c.isspace() for c in found):
            raise CharRNNError(f"{src} holds only whitespace")
        if expect is not None and digest.hexdigest()[:16] != expect:
            return digest.hexdigest()[:16]
        vocab = Vocab(found)

        # ---- pass 2: ids, written block by block into a temporary file, then renamed
        lookup = Lookup(np.flatnonzero(seen).astype(np.uint32), vocab.dtype)
        with replacing(ids_path, mode) as out:
            for block in file_blocks(src, block_size, bar, check_utf8=False):
                ids = lookup.ids(block)
                out.write(ids if isinstance(ids, bytes) else ids.data)
    finally:
        if bar is not None:
            bar.close()
    return {"vocab": list(vocab.chars), "chars": chars, "digest": digest.hexdigest()[:16],
            "dtype": vocab.dtype.name}


def multibyte(a: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Positions, code points and continuation-byte counts of the multi-byte characters.

    Vectorised UTF-8 decoding of bytes ``a``: for ASCII-heavy text far faster than
    bytes -> str -> UTF-32, as only the few multi-byte characters are ever touched.
    """
    lead = np.flatnonzero(a >= 0xC0)
    b0 = a[lead].astype(np.uint32)
    extra = np.where(b0 < 0xE0, 1, np.where(b0 < 0xF0, 2, 3))
    c1, c2, c3 = (a[np.minimum(lead + k, len(a) - 1)].astype(np.uint32) & 0x3F
                  for k in (1, 2, 3))
    cps = np.where(b0 < 0xE0, ((b0 & 0x1F) << 6) | c1,
                   np.where(b0 < 0xF0, ((b0 & 0x0F) << 12) | (c1 << 6) | c2,
                            ((b0 & 0x07) << 18) | (c1 << 12) | (c2 << 6) | c3))
    return lead, cps, extra


class Lookup:
    """Code point -> id for one vocabulary (sorted code points ``cps``), by whole blocks."""

    def __init__(self, cps: np.ndarray, dtype: np.dtype) -> None:
        self.cps, self.dtype = cps, dtype
        table = np.zeros(256, np.uint8)  # ASCII byte -> id, applied by bytes.translate
        if dtype == np.uint8:
            ascii_cps = cps[cps < 128]
            table[ascii_cps] = np.searchsorted(cps, ascii_cps)
        self.table = table.tobytes()
        self.bmp = np.zeros(0x10000, dtype)  # code points below 0x10000: a direct table
        in_bmp = cps < 0x10000
        self.bmp[cps[in_bmp]] = np.flatnonzero(in_bmp)

    def of(self, cps: np.ndarray) -> np.ndarray:
        if len(cps) and cps.max() >= 0x10000:
            return np.searchsorted(self.cps, cps).astype(self.dtype)
        return self.bmp[cps]

    def ids(self, block: bytes) -> bytes | np.ndarray:
        """The ids of a block of UTF-8 text (bytes, or an array of the id dtype)."""
        if block.isascii() and self.dtype == np.uint8:
            return block.translate(self.table)  # a byte-to-byte table: no numpy at all
        # one byte per character: continuation bytes dropped, ASCII mapped to ids
        if self.dtype == np.uint8:
            ids = np.frombuffer(bytearray(block.translate(self.table, _CONTINUATION)), np.uint8)
        else:
            ids = self.bmp[np.frombuffer(block.translate(None, _CONTINUATION), np.uint8)]
        if not block.isascii():  # the multi-byte characters, where their lead bytes were
            lead, cps, extra = multibyte(np.frombuffer(block, np.uint8))
            ids[lead - (np.cumsum(extra) - extra)] = self.of(cps)
        return ids


def file_blocks(src: Path, block_size: int = BLOCK_SIZE, bar=None,
                check_utf8: bool = True) -> Iterator[bytes]:
    """Normalised UTF-8 blocks that end on character boundaries, checked like read_text.

    A UTF-8 sequence or a CR cut by the block edge is carried over to the next block, so
    CRLF and multi-byte characters come out whole; error offsets count bytes of the whole
    file. ``check_utf8=False`` skips the (costlier) UTF-8 check on a second pass.
    """
    try:
        f = src.open("rb")
    except PermissionError:
        raise CharRNNError(f"cannot read {src}: permission denied") from None
    except OSError as e:
        raise CharRNNError(f"cannot read {src}: {e.strerror or e}") from None
    with f:
        yield from stream_blocks(f, str(src), block_size, bar, check_utf8)


def stream_blocks(f, name: str, block_size: int = BLOCK_SIZE, bar=None,
                  check_utf8: bool = True) -> Iterator[bytes]:
    """``file_blocks`` over an open binary file or pipe (read once, never seeked)."""
    head = _read(f, 4096, name)  # judged first, and again by nul_error
    check_head(head, name)
    pos, carry = 0, b""  # pos: offset of carry's first byte
    for raw in _raw_reads(f, head, block_size, name):
        if bar is not None:
            bar.update(len(raw))
        buf = carry + raw if carry else raw
        cut = len(buf) if not raw else _whole(buf)
        block, carry = buf[:cut], buf[cut:]
        if block:
            nul = block.find(b"\x00")
            if nul >= 0:
                nul_error(head, pos + nul, name)
            if check_utf8 and not block.isascii():
                try:
                    block.decode("utf-8")
                except UnicodeDecodeError as e:
                    _nul_after(f, pos + len(buf), head, name)  # NUL errors come first
                    utf8_error(block[e.start], pos + e.start, name)
            if pos == 0 and block.startswith(_BOM):
                block = block[3:]
            if b"\r" in block:
                block = block.replace(b"\r\n", b"\n").replace(b"\r", b"\n")
            pos += cut
            if block:
                yield block


def _read(f, n: int, name: str) -> bytes:
    try:
        return f.read(n)
    except OSError as e:
        raise CharRNNError(f"cannot read {name}: {e.strerror or e}") from None


def _raw_reads(f, head: bytes, block_size: int, name: str) -> Iterator[bytes]:
    """The bytes of ``head`` and then the rest of ``f`` in reads of ``block_size``; the
    last one empty (the end)."""
    while len(head) >= block_size:
        yield head[:block_size]
        head = head[block_size:]
    raw = head + _read(f, block_size - len(head), name) if head else _read(f, block_size, name)
    while raw:
        yield raw
        raw = _read(f, block_size, name)
    yield b""


def _whole(buf: bytes) -> int:
    """Where to cut ``buf`` so that no UTF-8 sequence and no CR(LF) is split."""
    cut = len(buf)
    for k in range(1, min(4, len(buf)) + 1):
        b = buf[-k]
        if b & 0xC0 == 0x80:  # a continuation byte: look further back for the lead
            continue
        if b >= 0xC0:
            need = 2 if b < 0xE0 else 3 if b < 0xF0 else 4
            if need > k:
                cut = len(buf) - k
        break
    if cut and buf[cut - 1] == 0x0D:  # a CR: the next block may start with its LF
        cut -= 1
    return cut


def _nul_after(f, offset: int, head: bytes, name: str) -> None:
    """Look for a NUL in the rest of the file, so errors come in read_text's order."""
    if offset < len(head):  # the head is read ahead: its unread part comes first
        nul = head.find(b"\x00", offset)
        if nul >= 0:
            nul_error(head, nul, name)
        offset = len(head)
    while chunk := f.read(BLOCK_SIZE):
        nul = chunk.find(b"\x00")
        if nul >= 0:
            nul_error(head, offset + nul, name)
        offset += len(chunk)
