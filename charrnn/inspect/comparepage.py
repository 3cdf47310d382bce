"""The comparison page of ``charrnn report RUN RUN ...`` and its terminal table: runs
overlaid, one colour each (data from ``inspect.compare``)."""

from __future__ import annotations

import html
from collections.abc import Sequence
from typing import Any

from charrnn.inspect.charts import PALETTE, svg_chart
from charrnn.inspect.compare import X_AXES, Run, config_rows, figures, preview_rows
from charrnn.inspect.pages import page

# (title, log kind, y field, y label, log scale)
CHARTS = (("Validation loss", "val", "loss", "loss (nats/char)", False),
          ("Training loss (mean per log interval)", "train", "loss", "loss (nats/char)", False),
          ("Learning rate", "train", "lr", "learning rate", False),
          ("Gradient norm before clipping (mean per log interval)", "train", "grad_norm",
           "gradient norm", True),
          ("Share of steps clipped (per log interval)", "train", "clipped", "share clipped",
           False))

_CSS = """
.charts{display:flex;gap:16px;flex-wrap:wrap}.charts h3{font-size:14px;margin:10px 0 2px}
#xaxis button{font:inherit;padding:3px 10px;margin-right:4px;border:1px solid #bbb;
 border-radius:4px;background:#fff;cursor:pointer}#xaxis button.on{background:#d6e8ff}
#config tr.diff td,#config tr.diff th{background:#fff3cd}#config td.mark{color:#b45309}
#figures td{white-space:nowrap}
.dot{display:inline-block;width:10px;height:10px;border-radius:5px;margin-right:6px}
#previews td{width:30%}#previews pre{margin:0}
"""

_SCRIPT = """
const axes=document.querySelectorAll('#xaxis button');
function showX(x){
  document.querySelectorAll('[data-x]').forEach(e=>{
    e.style.display=e.dataset.x===x?'':'none';});
  axes.forEach(b=>b.classList.toggle('on',b.dataset.axis===x));}
axes.forEach(b=>b.addEventListener('click',()=>showX(b.dataset.axis)));
showX('step');
document.getElementById('onlydiff').addEventListener('change',e=>{
  document.querySelectorAll('#config tr.same').forEach(r=>{
    r.style.display=e.target.checked?'none':'';});});
document.body.dataset.ready='1';
"""


def terminal_table(runs: Sequence[Run]) -> str:
    """The figures of every run, one line each, aligned (stdout)."""
    rows = [figures(r) for r in runs]
    keys = list(rows[0])
    widths = {k: max(len(k), *(len(r[k]) for r in rows)) for k in keys}
    left = ("run", "cell", "size")
    line = [("  ".join(k.ljust(widths[k]) if k in left else k.rjust(widths[k]) for k in keys))]
    for r in rows:
        line.append("  ".join(r[k].ljust(widths[k]) if k in left else r[k].rjust(widths[k])
                              for k in keys))
    return "\n".join(line)


def _colour(i: int) -> str:
    return PALETTE[i % len(PALETTE)]


def _charts(runs: Sequence[Run]) -> str:
    out = []
    for title, kind, y, ylabel, log in CHARTS:
        lacking = [r.label for r in runs if not r.curve(kind, "step", y)]
        if len(lacking) == len(runs):
            continue  # no run logged it (runs from an earlier version)
        note = (f'<div class="sub">not in the log of {html.escape(", ".join(lacking))} '
                "(an earlier version)</div>" if lacking else "")
        for x, xlabel in X_AXES.items():
            series = [(r.label, _colour(i), r.curve(kind, x, y)) for i, r in enumerate(runs)]
            out.append(f'<div class="chart" data-x="{x}"><h3>{html.escape(title)}</h3>'
                       + svg_chart(series, xlabel, ylabel, "s" if x == "time" else "",
                                   log_y=log) + note + "</div>")
    return "".join(out)


def _figures(runs: Sequence[Run]) -> str:
    rows = [figures(r) for r in runs]
    head = "".join(f"<th{'' if k in ('run', 'cell', 'size') else ' class=num'}>"
                   f"{html.escape(k)}</th>" for k in rows[0])
    body = "".join(
        "<tr>" + "".join(
            (f'<td><span class="dot" style="background:{_colour(i)}"></span>'
             f"{html.escape(v)}</td>") if k == "run" else
            f"<td{'' if k in ('cell', 'size') else ' class=num'}>{html.escape(v)}</td>"
            for k, v in row.items()) + "</tr>" for i, row in enumerate(rows))
    notes = "".join(f'<div class="sub">{html.escape(r.label)}: no held-out eval '
                    f"({html.escape(r.eval_note)})</div>" for r in runs if r.eval_note)
    return f'<table id="figures"><tr>{head}</tr>{body}</table>{notes}'


def _config(runs: Sequence[Run]) -> str:
    rows = config_rows(runs)
    differ = sum(d for _, _, d in rows)
    head = "".join(f"<th>{html.escape(r.label)}</th>" for r in runs)
    body = "".join(
        f'<tr class="{"diff" if d else "same"}"><td class="mark">{"&ne;" if d else ""}</td>'
        f"<th>{html.escape(k)}</th>" + "".join(f"<td>{html.escape(v)}</td>" for v in values)
        + "</tr>" for k, values, d in rows)
    return (f'<div class="sub">{differ} of {len(rows)} settings differ (marked &ne;). '
            '<label><input type="checkbox" id="onlydiff"> only the differences</label></div>'
            f'<table id="config"><tr><td></td><th>setting</th>{head}</tr>{body}</table>')


def _preview_cell(p: dict[str, Any] | None) -> str:
    if p is None:
        return '<td class="sub">no previews logged</td>'
    val = f", val {p['val']:.4f}" if isinstance(p.get("val"), (int, float)) else ""
    return (f'<td><div class="sub">step {p["step"]:,}{val}</div>'
            f"<pre>{html.escape(p['text'])}</pre></td>")


def _previews(runs: Sequence[Run]) -> str:
    rows = preview_rows(runs)
    if not rows:
        return '<p class="sub">No run logged previews.</p>'
    head = "".join(f"<th>{html.escape(r.label)}</th>" for r in runs)
    body = "".join(f"<tr><th>{html.escape(label)}</th>{''.join(map(_preview_cell, cells))}"
                   "</tr>" for label, cells in rows)
    return ('<div class="sub">Each run\'s preview (sampled at a validation, its own seed, '
            "temperature 0.8) nearest to the same number of characters seen.</div>"
            f'<table id="previews"><tr><th></th>{head}</tr>{body}</table>')


def compare_page(runs: Sequence[Run]) -> str:
    title = ", ".join(r.label for r in runs)
    buttons = "".join(f'<button data-axis="{x}">{html.escape(label)}</button>'
                      for x, label in X_AXES.items())
    body = (f"<h1>Runs compared: {html.escape(title)}</h1>"
            '<div class="sub">Best validation loss as training logged it; held-out eval: '
            "the best checkpoint on the held-out split as <code>charrnn eval</code> scores "
            "it (the state carried), and in windows of 256 characters each from a fresh "
            "state (nanoGPT's protocol, <code>eval --window 256</code>). Losses in "
            f"nats/char.</div><h2>Figures</h2>{_figures(runs)}"
            f'<h2>Curves</h2><div id="xaxis">against: {buttons}</div>'
            f'<div class="charts" id="curves">{_charts(runs)}</div>'
            f"<h2>Samples as they trained</h2>{_previews(runs)}"
            f"<h2>Configuration</h2>{_config(runs)}")
    return page(f"Runs compared: {title}", body, _CSS, _SCRIPT)
