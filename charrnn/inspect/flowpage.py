"""The gradients command's output: the terminal tables and the page of gradient flow
through time and context use, several runs overlaid (measured by ``score.flow``)."""

from __future__ import annotations

import html
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from charrnn.files import write_page
from charrnn.inspect.charts import DASHES, PALETTE, svg_chart
from charrnn.inspect.pages import cards, page
from charrnn.score.measures import USED_WITHIN

if TYPE_CHECKING:
    from charrnn.score.context import ContextUse
    from charrnn.score.flow import RunFlow

SHOWN_DISTANCES = (0, 1, 2, 5, 10, 20, 50, 100, 150, 200, 300, 500, 1000)


def distances(k_max: int) -> list[int]:
    """The distances a table shows: a few up to K, and K itself."""
    return sorted({k for k in SHOWN_DISTANCES if k <= k_max} | {k_max})


def _series(r: RunFlow) -> list[tuple[str, int]]:
    return [(f"{r.label}:{name}", s) for s, name in enumerate(r.gradients.names)]


def _table(header: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    widths = [max(len(row[i]) for row in [header, *rows]) for i in range(len(header))]
    return "\n".join("  ".join(c.rjust(w) if i else c.ljust(w)
                               for i, (c, w) in enumerate(zip(row, widths, strict=True)))
                     for row in [header, *rows])


def gradient_table(runs: Sequence[RunFlow]) -> str:
    """Mean ||dL_t / d state_{t-k}|| at a few distances, one column per run and state."""
    cols = [(r, s, name) for r in runs for name, s in _series(r)]
    k_max = min(r.gradients.norms.shape[0] - 1 for r in runs)
    rows = [[str(k), *(f"{r.gradients.norms[k, s]:.2e}" for r, s, _ in cols)]
            for k in distances(k_max)]
    return _table(["k", *(name for _, _, name in cols)], rows)


def context_table(runs: Sequence[RunFlow]) -> str:
    """Loss (nats/char) by characters of context, and above the full state's with its
    standard error, two columns per run."""
    ctx = [r.context for r in runs if r.context is not None]
    labels = [r.label for r in runs if r.context is not None]
    if not ctx:
        return ""
    ks = max((c.contexts for c in ctx), key=len)

    def cells(c: ContextUse, i: int) -> list[str]:
        if i >= len(c.losses):
            return ["", ""]
        return [f"{c.losses[i]:.4f}", f"{c.losses[i] - c.full:+.4f}\u00b1{c.errors[i]:.4f}"]

    rows = [[str(k), *(x for c in ctx for x in cells(c, i))] for i, k in enumerate(ks)]
    rows.append(["full", *(x for c in ctx for x in (f"{c.full:.4f}", ""))])
    rows.append(["uses", *(x for r in runs if r.context for x in (_used(r), ""))])
    return _table(["context", *(x for name in labels for x in (name, "above full"))], rows)


def _used(r: RunFlow) -> str:
    used = r.context.used() if r.context else None
    return f"{used:,}" if used is not None else f"> {r.context.contexts[-1]:,}" \
        if r.context else "n/a"


def text_report(runs: Sequence[RunFlow]) -> str:
    """What the command prints on stdout."""
    g = runs[0].gradients
    out = [f"gradient norm ||dL_t/d state_(t-k)|| (mean over {g.windows} windows; h = hidden "
           "state, c = LSTM cell state; layers count from 1)", gradient_table(runs)]
    ctx = context_table(runs)
    if ctx:
        c = next(r.context for r in runs if r.context)
        out += ["", f"loss (nats/char) with the state reset k characters before each of "
                f"{c.positions:,} positions, and above the full state's (\u00b1 standard "
                "error); full: the carried state (at least "
                f"{c.full_context:,} characters read); uses: the smallest k from which the "
                f"loss stays within {USED_WITHIN:g} of full", ctx]
    return "\n".join(out)


def flow_page(runs: Sequence[RunFlow]) -> str:
    """One self-contained page: both measurements, every run overlaid."""
    lines = []
    for i, r in enumerate(runs):
        norms = r.gradients.norms
        for (name, s), dash in zip(_series(r), DASHES * 4, strict=False):
            lines.append((name, PALETTE[i % len(PALETTE)],
                          [(float(k), float(v)) for k, v in enumerate(norms[:, s])], dash))
    grad_chart = svg_chart(lines, "distance k (characters back)", "mean gradient norm",
                           width=1000, height=420, log_y=True, legend_right=True)
    ctx_lines: list[tuple] = []
    for i, r in enumerate(runs):
        if r.context is None:
            continue
        colour = PALETTE[i % len(PALETTE)]
        c = r.context
        ctx_lines.append((r.label, colour, list(zip(map(float, c.contexts), c.losses,
                                                    strict=True))))
        ctx_lines.append((f"{r.label}: full state", colour,
                          [(1.0, c.full), (float(c.contexts[-1]), c.full)], "2 3"))
    seq = sorted({r.seq_len for r in runs if r.seq_len and r.context is not None})
    if ctx_lines:
        lo = min(min(r.context.losses + [r.context.full]) for r in runs if r.context)
        hi = max(max(r.context.losses) for r in runs if r.context)
        ctx_lines += [(f"training window T = {t}", "#999", [(float(t), lo), (float(t), hi)],
                       "1 4") for t in seq]
    ctx_chart = (svg_chart(ctx_lines, "characters of context k", "loss (nats/char)",
                           width=1000, height=380, log_x=True, legend_right=True)
                 if ctx_lines else "")
    # the same, as the loss above the full state's: where each curve meets "uses"
    extra: list[tuple] = [(r.label, PALETTE[i % len(PALETTE)],
              [(float(k), loss - r.context.full) for k, loss in zip(
                  r.context.contexts, r.context.losses, strict=True)])
             for i, r in enumerate(runs) if r.context is not None]
    if extra:
        top = max(k for r in runs if r.context for k in r.context.contexts)
        extra.append((f"{USED_WITHIN:g} nats/char", "#999", [(1.0, USED_WITHIN),
                                                             (float(top), USED_WITHIN)],
                      "4 3"))
        ctx_chart += ('<h3>Above the full state (log scale; a point at or below 0 is left '
                      "out)</h3>" + svg_chart(extra, "characters of context k",
                                              "loss above the full state (nats/char)",
                                              width=1000, height=320, log_x=True,
                                              log_y=True, legend_right=True))
    summary = "".join(
        f"<tr><td>{html.escape(r.label)}</td><td>{r.cell}</td><td>{r.size}</td>"
        f'<td class="num">{r.seq_len or "n/a"}</td><td>{html.escape(r.text)}</td>'
        f'<td class="num">{r.chars:,}</td>'
        + "".join(f'<td class="num">{_at(r, k)}</td>' for k in (10, 50, 100))
        + f'<td class="num">{_used(r)}</td></tr>' for r in runs)
    g, ctx = runs[0].gradients, next((r.context for r in runs if r.context), None)
    body = (
        "<h1>Gradient flow through time and context use</h1>"
        '<div class="sub">How strongly the loss at a character depends on the state k '
        "characters earlier, and how much earlier text the model actually uses. "
        "Measured on held-out text; see docs/inspect.md.</div>"
        + cards([("runs", str(len(runs))), ("windows per run", f"{g.windows:,}"),
                 ("context positions", f"{ctx.positions:,}" if ctx else "n/a")])
        + '<h2>Runs</h2><table id="runs"><tr><th>run</th><th>cell</th><th>size</th>'
        '<th class="num">T</th><th>text</th><th class="num">chars</th>'
        '<th class="num">top h, k=10</th><th class="num">k=50</th>'
        f'<th class="num">k=100</th><th class="num">uses</th></tr>{summary}</table>'
        "<h2>Gradient flow through time</h2>"
        '<div class="sub">Mean over windows of ||&part;L<sub>t</sub> / &part;h<sub>t&minus;k'
        "</sub>||: the loss of predicting one character, differentiated with respect to "
        "each layer's state k characters earlier (total derivative: through time and the "
        "layers above), log scale. One colour per run; solid, dashed, dotted: layer 1, 2, "
        "3 of h, then the LSTM cell state c. Training cuts this gradient at the window "
        f'edge T (truncated BPTT).</div><div id="gradients">{grad_chart}</div>'
        + (("<h2>How far back it looks</h2>"
            '<div class="sub">Loss when the state is reset k characters before each scored '
            "character (the model reads exactly k characters from a zero state), on the same "
            "positions for every k; dotted: the same positions with the full carried state. "
            f'Where a curve meets its dotted line is the context it uses.</div>'
            f'<div id="context">{ctx_chart}</div>') if ctx_chart else ""))
    return page("Gradient flow and context use", body,
                script="document.body.dataset.ready='1';")


def _at(r: RunFlow, k: int) -> str:
    """The top layer's h gradient norm at distance k."""
    norms, names = r.gradients.norms, r.gradients.names
    top = max(i for i, n in enumerate(names) if n.startswith("h"))
    return f"{norms[k, top]:.2e}" if k < norms.shape[0] else "n/a"


def write(runs: Sequence[RunFlow], out: str | Path) -> Path:
    return write_page(out, flow_page(runs))
