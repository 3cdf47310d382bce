"""Line charts as inline SVG for the pages: linear or log axes, several series, no script.

A series is ``(name, colour, [(x, y), ...])`` or with a fourth item, an SVG dash pattern
(``"5 3"``). Points that are not finite (or not positive on a log axis) are left out, so
a run without some series draws nothing rather than failing.
"""

from __future__ import annotations

import html
import math
from collections.abc import Sequence
from typing import Any

# Colours for the runs of a comparison, in order (the matplotlib/TensorBoard palette).
PALETTE = ("#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2",
           "#7f7f7f", "#bcbd22", "#17becf")
DASHES = ("", "6 3", "2 2", "8 3 2 3")  # series of one run: layers, states


def nice_ticks(lo: float, hi: float, count: int = 5) -> list[float]:
    if not (math.isfinite(lo) and math.isfinite(hi)) or hi <= lo:
        return [lo]
    raw = (hi - lo) / count
    mag = 10 ** math.floor(math.log10(raw))
    step = next(m * mag for m in (1, 2, 2.5, 5, 10) if m * mag >= raw)
    first = math.ceil(lo / step) * step
    return [first + i * step for i in range(int((hi - first) / step + 1e-9) + 1)]


def log_ticks(lo: float, hi: float) -> list[float]:
    """Ticks between 10**lo and 10**hi (exponents): decades (every n-th of many), and 2
    and 5 between them when the range spans fewer than three decades."""
    steps = (1, 2, 5) if hi - lo < 3 else (1,)
    every = next(n for n in (1, 2, 5, 10, 20, 50, 100, 1000) if n >= (hi - lo) / 8)
    out = [m * 10.0 ** e for e in range(math.floor(lo), math.ceil(hi) + 1)
           if e % every == 0 for m in steps]
    return [t for t in out if lo - 1e-9 <= math.log10(t) <= hi + 1e-9] or [10.0 ** lo]


def fmt(x: float, unit: str) -> str:
    if unit == "s":
        return f"{x / 60:g}m" if x >= 120 and x % 60 == 0 else f"{x:g}s"
    if x and (abs(x) < 1e-3 or abs(x) >= 1e12):
        return f"{x:.0e}"
    for div, suffix in ((1e9, "G"), (1e6, "M"), (1e3, "k")):
        if abs(x) >= div:
            return f"{x / div:g}{suffix}"
    return f"{x:g}"


def svg_chart(series: Sequence[Sequence[Any]], xlabel: str, ylabel: str, xunit: str = "",
              width: int = 520, height: int = 300, log_x: bool = False,
              log_y: bool = False, legend_right: bool = False, zero_x: bool = True) -> str:
    """A line chart as inline SVG: series are (name, colour, [(x, y), ...][, dash]).

    ``legend_right`` puts the legend beside the plot (for many series); ``zero_x``
    starts a linear x axis at 0."""
    def ok(x: float, y: float) -> bool:
        return (math.isfinite(x) and math.isfinite(y) and (x > 0 or not log_x)
                and (y > 0 or not log_y))

    def tx(x: float) -> float:
        return math.log10(x) if log_x else x

    def ty(y: float) -> float:
        return math.log10(y) if log_y else y

    pts = [(tx(x), ty(y)) for s in series for x, y in s[2] if ok(x, y)]
    if not pts:
        return '<p class="sub">no data yet</p>'
    x0, x1 = min(p[0] for p in pts), max(p[0] for p in pts)
    y0, y1 = min(p[1] for p in pts), max(p[1] for p in pts)
    if zero_x and not log_x:
        x0 = min(x0, 0.0)
    if x1 <= x0:
        x1 = x0 + 1
    pad = (y1 - y0) * 0.05 or 0.1
    y0, y1 = y0 - pad, y1 + pad
    legend_w = 170 if legend_right else 0
    left, right, top, bottom = 56, 12 + legend_w, 12, 40
    w, h = width - left - right, height - top - bottom

    def sx(x: float) -> float:
        return left + (x - x0) / (x1 - x0) * w

    def sy(y: float) -> float:
        return top + (y1 - y) / (y1 - y0) * h

    parts = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" '
             f'viewBox="0 0 {width} {height}" font-family="sans-serif" font-size="11" '
             f'role="img" aria-label="{html.escape(ylabel)} against {html.escape(xlabel)}">',
             f'<rect x="{left}" y="{top}" width="{w}" height="{h}" fill="#fafafa" '
             f'stroke="#ccc"/>']
    yticks = ([(math.log10(t), fmt(t, "")) for t in log_ticks(y0, y1)] if log_y
              else [(t, f"{t:g}") for t in nice_ticks(y0, y1)])
    xticks = ([(math.log10(t), fmt(t, xunit)) for t in log_ticks(x0, x1)] if log_x
              else [(t, fmt(t, xunit)) for t in nice_ticks(x0, x1)])
    for t, label in yticks:
        parts.append(f'<line x1="{left}" x2="{left + w}" y1="{sy(t):.1f}" y2="{sy(t):.1f}" '
                     f'stroke="#e4e4e4"/><text x="{left - 6}" y="{sy(t) + 4:.1f}" '
                     f'text-anchor="end">{label}</text>')
    for t, label in xticks:
        parts.append(f'<line y1="{top}" y2="{top + h}" x1="{sx(t):.1f}" x2="{sx(t):.1f}" '
                     f'stroke="#e4e4e4"/><text x="{sx(t):.1f}" y="{top + h + 16}" '
                     f'text-anchor="middle">{label}</text>')
    parts.append(f'<text x="{left + w / 2}" y="{height - 6}" text-anchor="middle">'
                 f"{html.escape(xlabel)}</text>")
    parts.append(f'<text transform="translate(14 {top + h / 2}) rotate(-90)" '
                 f'text-anchor="middle">{html.escape(ylabel)}</text>')
    for i, s in enumerate(series):
        name, colour, line = s[0], s[1], s[2]
        dash = f' stroke-dasharray="{s[3]}"' if len(s) > 3 and s[3] else ""
        good = [(tx(x), ty(y)) for x, y in line if ok(x, y)]
        if good:
            d = " ".join(f"{sx(x):.1f},{sy(y):.1f}" for x, y in good)
            parts.append(f'<polyline class="series" data-name="{html.escape(name)}" '
                         f'fill="none" stroke="{colour}" stroke-width="1.8"{dash} '
                         f'points="{d}"/>')
            if len(good) < 60:
                parts += [f'<circle cx="{sx(x):.1f}" cy="{sy(y):.1f}" r="2.5" fill="{colour}"/>'
                          for x, y in good]
        lx = left + w + 12 if legend_right else left + w - 90
        ly = top + 14 + 16 * i
        parts.append(f'<line x1="{lx}" x2="{lx + 20}" y1="{ly}" y2="{ly}" stroke="{colour}" '
                     f'stroke-width="3"{dash}/><text x="{lx + 26}" y="{ly + 4}">'
                     f"{html.escape(name)}</text>")
    parts.append("</svg>")
    return "".join(parts)
