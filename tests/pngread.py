"""A tiny PNG reader (8-bit RGB/RGBA, not interlaced) for checking browser screenshots.

Enough for the screenshots headless Chromium writes, so the tests need no imaging library.
"""

from __future__ import annotations

import struct
import zlib
from pathlib import Path

import numpy as np


def read_png(path: Path) -> np.ndarray:
    """(H, W, C) uint8 pixels."""
    data = Path(path).read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n", "not a PNG file"
    pos, idat, header = 8, b"", None
    while pos < len(data):
        (n,) = struct.unpack(">I", data[pos : pos + 4])
        kind, body = data[pos + 4 : pos + 8], data[pos + 8 : pos + 8 + n]
        if kind == b"IHDR":
            header = struct.unpack(">IIBBBBB", body)
        elif kind == b"IDAT":
            idat += body
        pos += 12 + n
    w, h, depth, colour, _, _, interlace = header
    assert depth == 8 and colour in (2, 6) and not interlace, f"unsupported PNG {header}"
    c = 3 if colour == 2 else 4
    raw = zlib.decompress(idat)
    stride = w * c
    out = np.zeros((h, stride), np.uint8)
    prev = np.zeros(stride, np.int32)
    for y in range(h):
        f = raw[y * (stride + 1)]
        line = np.frombuffer(raw, np.uint8, stride, y * (stride + 1) + 1).astype(np.int32)
        if f == 0:
            cur = line
        elif f == 1:  # Sub: running sum along the row, per channel
            cur = np.cumsum(line.reshape(w, c), axis=0).reshape(-1) & 255
        elif f == 2:  # Up
            cur = (line + prev) & 255
        elif f == 3:  # Average: sequential along the row
            cur = line.tolist()
            up = prev.tolist()
            for i in range(stride):
                left = cur[i - c] if i >= c else 0
                cur[i] = (cur[i] + ((left + up[i]) >> 1)) & 255
            cur = np.array(cur, np.int32)
        elif f == 4:  # Paeth: sequential along the row
            cur = line.tolist()
            up = prev.tolist()
            for i in range(stride):
                a = cur[i - c] if i >= c else 0
                b, d = up[i], up[i - c] if i >= c else 0
                p = a + b - d
                pa, pb, pc = abs(p - a), abs(p - b), abs(p - d)
                pred = a if pa <= pb and pa <= pc else b if pb <= pc else d
                cur[i] = (cur[i] + pred) & 255
            cur = np.array(cur, np.int32)
        else:
            raise AssertionError(f"bad PNG filter {f}")
        out[y] = cur
        prev = cur
    return out.reshape(h, w, c)
