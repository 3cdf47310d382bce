"""Self-contained HTML pages: surprisal of a text, hidden-unit activations, a run's report.

Every page is one file with inline CSS, inline SVG and a little inline JavaScript: no
network, no external assets, so it opens from a file:// URL, an e-mail attachment or
a CI artifact. Per-character data travels as compact JSON inside the page; the text
itself is a <span> per character so the browser can colour and hover it.
"""

from __future__ import annotations

import html
import json
import math
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import numpy as np

from charrnn.inspect.charts import svg_chart
from charrnn.inspect.runinfo import Section, visible
from charrnn.inspect.trace import Activations, Surprisal

if TYPE_CHECKING:
    from charrnn.inspect.units import UnitScore

# Surprisal colour bins: upper edges in bits; the last bin is open-ended.
BIT_EDGES = (0.25, 0.5, 1.0, 1.5, 2.0, 3.0, 4.0, 5.0, 6.5)

_BASE_CSS = """
body{font:14px/1.45 system-ui,-apple-system,"Segoe UI",sans-serif;margin:24px auto;
 max-width:1100px;padding:0 16px;color:#1d1d1f;background:#fff}
h1{font-size:22px;margin:0 0 4px}h2{font-size:17px;margin:28px 0 8px}
.sub{color:#666;margin-bottom:16px}
table{border-collapse:collapse;margin:4px 0}
td,th{padding:3px 10px 3px 0;text-align:left;vertical-align:top}
th{color:#555;font-weight:600}
.num{text-align:right;font-variant-numeric:tabular-nums}
.text{font:13px/1.6 ui-monospace,SFMono-Regular,Menlo,Consolas,monospace;
 white-space:pre-wrap;word-break:break-all;border:1px solid #ddd;border-radius:6px;
 padding:12px;background:#fff}
.text span{border-radius:2px}
pre{font:13px/1.5 ui-monospace,Menlo,Consolas,monospace;white-space:pre-wrap;
 background:#f6f6f6;border-radius:6px;padding:10px;margin:4px 0}
.cards{display:flex;gap:12px;flex-wrap:wrap}
.card{border:1px solid #ddd;border-radius:8px;padding:8px 14px;min-width:120px}
.card b{display:block;font-size:20px}
.card small{color:#666}
#tip{position:fixed;display:none;pointer-events:none;background:#222;color:#fff;
 border-radius:6px;padding:8px 10px;font:12px/1.4 ui-monospace,Menlo,monospace;z-index:9}
#tip table td{padding:0 8px 0 0;color:#fff}
.bar{display:inline-block;height:8px;background:#6cf;vertical-align:middle}
a{color:#0b63c5}
"""


def script_json(data: Any) -> str:
    """JSON that is safe inside a <script> element: no "<" at all, so no </script> or <!--."""
    return json.dumps(data, ensure_ascii=True, separators=(",", ":")).replace("<", "\\u003c")


def page(title: str, body: str, css: str = "", script: str = "") -> str:
    return (f'<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">'
            f'<meta name="viewport" content="width=device-width,initial-scale=1">'
            f"<title>{html.escape(title)}</title><style>{_BASE_CSS}{css}</style></head>"
            f"<body>\n{body}\n<script>{script}</script></body></html>\n")


def _char(ch: str) -> str:
    """One character's markup inside a .text block: newline shows as a visible arrow."""
    return "\u21b5" if ch == "\n" else html.escape(ch)


def cards(items: Sequence[tuple[str, str]]) -> str:
    return '<div class="cards">' + "".join(
        f'<div class="card"><b>{html.escape(v)}</b><small>{html.escape(k)}</small></div>'
        for k, v in items) + "</div>"


def sections_html(sections: Sequence[Section]) -> str:
    out = []
    for title, rows in sections:
        body = "".join(f"<tr><th>{html.escape(k)}</th><td>{html.escape(v)}</td></tr>"
                       for k, v in rows)
        out.append(f"<h2>{html.escape(title)}</h2><table>{body}</table>")
    return "".join(out)


# ----------------------------------------------------------------------------- surprisal
def _heat(t: float) -> str:
    """White -> yellow -> red -> dark red for t in [0, 1]."""
    stops = [(255, 255, 255), (255, 236, 150), (250, 150, 70), (215, 48, 39), (120, 0, 30)]
    x = min(max(t, 0.0), 1.0) * (len(stops) - 1)
    i = min(int(x), len(stops) - 2)
    f = x - i
    r, g, b = (round(a + (c - a) * f) for a, c in zip(stops[i], stops[i + 1], strict=True))
    return f"rgb({r},{g},{b})"


def bit_bins(bits: np.ndarray) -> np.ndarray:
    """Colour bin 0..len(BIT_EDGES) of each surprisal; -1 where nothing was predicted."""
    b = np.searchsorted(np.asarray(BIT_EDGES), np.nan_to_num(bits, nan=0.0), side="right")
    return np.where(np.isnan(bits), -1, b)


_SURPRISAL_JS = """
const V=DATA.vocab,B=DATA.bits,T=DATA.top,P=DATA.prob,K=DATA.k;
const tip=document.getElementById('tip');
const spans=document.querySelectorAll('#text > span');
spans.forEach((s,i)=>{s.dataset.i=i;});
function vis(c){return c=='\\n'?'\\u21b5':c==' '?'\\u2423':c=='\\t'?'\\u21e5':c;}
function esc(s){return s.replace(/&/g,'&amp;').replace(/</g,'&lt;');}
document.getElementById('text').addEventListener('mousemove',e=>{
  const s=e.target.closest('#text > span');
  if(!s){tip.style.display='none';return;}
  const i=+s.dataset.i, ch=DATA.text[i];
  let h='<b>'+esc(vis(ch))+'</b> at '+(DATA.offset+i)+': ';
  if(B[i]===null){h+='first character, nothing predicted';}
  else{
    h+=B[i].toFixed(2)+' bits<table>';
    for(let j=0;j<K;j++){const id=T[i*K+j]; if(id<0)break; const p=P[i*K+j]/1e4;
      const me=V[id]===ch?' style="color:#ffd54f"':'';
      h+='<tr'+me+'><td>'+esc(vis(V[id]))+'</td><td>'+(100*p).toFixed(1)+
        '%</td><td><span class="bar" style="width:'+Math.max(1,Math.round(80*p))+
        'px"></span></td></tr>';}
    h+='</table>';}
  tip.innerHTML=h; tip.style.display='block';
  const x=Math.min(e.clientX+14,innerWidth-tip.offsetWidth-8);
  const y=e.clientY+18+tip.offsetHeight>innerHeight?e.clientY-tip.offsetHeight-10:e.clientY+18;
  tip.style.left=x+'px'; tip.style.top=y+'px';});
document.getElementById('text').addEventListener('mouseleave',()=>{tip.style.display='none';});
document.body.dataset.ready='1';
"""


def surprisal_page(s: Surprisal, vocab: Sequence[str], title: str,
                   summary: Sequence[tuple[str, str]], offset: int = 0,
                   passages: int = 8, passage_width: int = 40) -> str:
    """The text coloured by surprisal, with the top-k predictions of each character on hover.

    ``summary`` adds cards (e.g. the whole file's bits/char) before the excerpt's own."""
    text = "".join(vocab[i] for i in s.ids.tolist())
    n = len(text)
    bins = bit_bins(s.bits)
    ppl = 2.0 ** s.mean_bits if n > 1 else float("nan")
    shown = [*summary,
             ("characters shown", f"{n:,}"),
             ("bits/char (shown)", f"{s.mean_bits:.3f}"),
             ("perplexity (shown)", f"{ppl:.2f}")]
    hard = s.hardest(passage_width, passages) if n > 1 else []
    anchors = {start for start, _, _ in hard}
    spans = []
    for p, ch in enumerate(text):
        cls = f' class="s{bins[p]}"' if bins[p] >= 0 else ""
        anchor = f' id="p{p}"' if p in anchors else ""
        spans.append(f"<span{anchor}{cls}>{_char(ch)}</span>" + ("\n" if ch == "\n" else ""))
    n_bins = len(BIT_EDGES) + 1
    css = "".join(f".s{b}{{background:{_heat(b / (n_bins - 1))}}}" for b in range(n_bins))
    css += "".join(f".s{b}{{color:#fff}}" for b in range(n_bins - 3, n_bins))
    edges = (0.0, *BIT_EDGES)
    legend = "".join(
        f'<span class="s{b}" style="padding:1px 6px">'
        f'{edges[b]:g}{"+" if b == n_bins - 1 else "-" + format(edges[b + 1], "g")}</span>'
        for b in range(n_bins))
    rows = "".join(
        f'<tr><td class="num">{m:.2f}</td><td><a href="#p{a}">{offset + a:,}</a></td>'
        f'<td><pre style="margin:0;padding:2px 6px">'
        + "".join(f'<span class="s{max(bins[p], 0)}">{_char(text[p])}</span>'
                  for p in range(a, b))
        + "</pre></td></tr>" for a, b, m in hard)
    body = (f"<h1>Surprisal: {html.escape(title)}</h1>"
            f'<div class="sub">Each character is coloured by how surprised the model was to '
            f"see it (&minus;log<sub>2</sub> of the probability it gave that character, in bits). "
            f"Hover a character for the model's top-{s.top_ids.shape[1]} predictions at that "
            f"point.</div>{cards(shown)}"
            f'<h2>Colour scale (bits)</h2><div class="text" style="padding:6px">{legend}</div>'
            f"<h2>Most surprising passages ({passage_width} characters)</h2>"
            f'<table><tr><th class="num">bits/char</th><th>at</th><th>text</th></tr>{rows}'
            f"</table><h2>Text</h2>"
            f'<div class="text" id="text">{"".join(spans)}</div><div id="tip"></div>')
    k = s.top_ids.shape[1]
    data = {"vocab": list(vocab), "text": text, "offset": offset, "k": k,
            "bits": [None if math.isnan(b) else round(float(b), 3) for b in s.bits],
            "top": s.top_ids.reshape(-1).tolist(),
            "prob": np.rint(s.top_probs.reshape(-1) * 1e4).astype(int).tolist()}
    script = f"const DATA={script_json(data)};{_SURPRISAL_JS}"
    return page(f"Surprisal: {title}", body, css, script)


# ----------------------------------------------------------------------------- neurons
_NEURONS_JS = """
const spans=document.querySelectorAll('#text > span');
spans.forEach((s,i)=>{s.dataset.i=i;});
function colour(a){ // a in [-1,1]: blue for negative, red for positive
  const t=Math.min(1,Math.abs(a));
  return a>=0?`rgb(255,${Math.round(255-190*t)},${Math.round(255-200*t)})`
             :`rgb(${Math.round(255-200*t)},${Math.round(255-150*t)},255)`;}
function show(key){
  const a=DATA.acts[key];
  spans.forEach((s,i)=>{s.style.backgroundColor=colour(a[i]/100);});
  document.querySelectorAll('[data-unit]').forEach(r=>r.classList.toggle('on',r.dataset.unit===key));
  document.getElementById('current').textContent=DATA.labels[key];}
document.querySelectorAll('[data-unit]').forEach(r=>r.addEventListener('click',()=>show(r.dataset.unit)));
const tip=document.getElementById('tip');
document.getElementById('text').addEventListener('mousemove',e=>{
  const s=e.target.closest('#text > span'); const cur=document.querySelector('tr.on');
  if(!s||!cur){tip.style.display='none';return;}
  const i=+s.dataset.i, key=cur.dataset.unit;
  tip.textContent=DATA.labels[key]+' = '+(DATA.acts[key][i]*DATA.scales[key]/100).toFixed(2);
  tip.style.display='block';
  tip.style.left=(e.clientX+14)+'px'; tip.style.top=(e.clientY+18)+'px';});
document.getElementById('text').addEventListener('mouseleave',()=>{tip.style.display='none';});
show(DATA.first);
document.body.dataset.ready='1';
"""


def neurons_page(text: str, acts: Activations, table: dict[str, np.ndarray],
                 ranked: Sequence[UnitScore], feats: dict[str, np.ndarray], title: str,
                 summary: Sequence[tuple[str, str]], per_feature: int = 3) -> str:
    """The text coloured by one hidden unit at a time; units ranked by how well they follow
    structure, each clickable; the structural features themselves for comparison."""
    # Values travel as integers -100..100 (value / scale); the tooltip multiplies back.
    acts_js: dict[str, list[int]] = {}
    scales: dict[str, float] = {}
    labels: dict[str, str] = {}
    for sc in ranked:
        v = acts.values[:, sc.unit].astype(np.float64)
        scale = 1.0 if sc.name.startswith("h") else max(float(np.abs(v).max()), 1e-6)
        acts_js[sc.name] = np.rint(np.clip(v / scale, -1, 1) * 100).astype(int).tolist()
        scales[sc.name] = scale
        labels[sc.name] = (f"unit {sc.name}" + ("" if scale == 1.0 else
                                                 f" (colour scaled by 1/{scale:.3g})"))
    for name, f in feats.items():
        key = f"feature:{name}"
        scales[key] = max(float(np.abs(f).max()), 1e-6)
        acts_js[key] = np.rint(f / scales[key] * 100).astype(int).tolist()
        labels[key] = f"feature: {name}"
    unit_rows = "".join(
        f'<tr data-unit="{html.escape(sc.name)}"><td class="num">{i + 1}</td>'
        f"<td>{html.escape(sc.name)}</td><td>{html.escape(sc.feature)}</td>"
        f'<td class="num">{sc.r:+.3f}</td></tr>' for i, sc in enumerate(ranked))
    feat_rows = []
    for name, r in table.items():
        order = np.argsort(-np.nan_to_num(np.abs(r), nan=-1.0), kind="stable")[:per_feature]
        cells = ", ".join(f"{acts.names[u]} ({r[u]:+.2f})" for u in order)
        feat_rows.append(f'<tr data-unit="feature:{html.escape(name)}"><td>'
                         f"{html.escape(name)}</td><td>{html.escape(cells)}</td></tr>")
    spans = "".join(f"<span>{_char(ch)}</span>" + ("\n" if ch == "\n" else "") for ch in text)
    css = ("tr[data-unit]{cursor:pointer}tr[data-unit]:hover{background:#eef5ff}"
           "tr.on{background:#d6e8ff}.cols{display:flex;gap:24px;flex-wrap:wrap}"
           ".scroll{max-height:340px;overflow:auto}")
    body = (f"<h1>Hidden units: {html.escape(title)}</h1>"
            f'<div class="sub">Units are ranked by the strength (|Pearson r|) of their '
            f"correlation with structural features of the text. Click a unit (or a feature) "
            f"to colour the text by it: red positive, blue negative. h = hidden state, "
            f"c = LSTM cell state; layers count from 1.</div>{cards(summary)}"
            f'<div class="cols"><div><h2>Units that follow structure</h2><div class="scroll">'
            f'<table id="units"><tr><th class="num">#</th><th>unit</th><th>feature</th>'
            f'<th class="num">r</th></tr>{unit_rows}</table></div></div>'
            f"<div><h2>Strongest units per feature</h2><table id=\"features\"><tr><th>feature"
            f"</th><th>units (r)</th></tr>{''.join(feat_rows)}</table></div></div>"
            f'<h2>Text coloured by <span id="current"></span></h2>'
            f'<div class="text" id="text">{spans}</div><div id="tip"></div>')
    first = ranked[0].name if ranked else next(iter(acts_js))
    data = {"acts": acts_js, "scales": scales, "labels": labels, "first": first}
    return page(f"Hidden units: {title}", body, css,
                f"const DATA={script_json(data)};{_NEURONS_JS}")


# ----------------------------------------------------------------------------- run report
def _preview_table(rows: Sequence[tuple[int, float | None, str]], note: str) -> str:
    """The samples of successive validations, one row each: how the text took shape."""
    if not rows:
        return ""
    cells = "".join(
        f'<tr><td class="num">{step:,}</td><td class="num">'
        f'{f"{val:.4f}" if val is not None else "n/a"}</td>'
        f"<td><pre>{html.escape(text)}</pre></td></tr>" for step, val, text in rows)
    return (f'<h2>Samples as it trained</h2><div class="sub">{html.escape(note)}</div>'
            f'<table id="previews"><tr><th>step</th><th>val loss</th><th>sample</th></tr>'
            f"{cells}</table>")


def run_page(title: str, sections: Sequence[Section], metrics: Sequence[dict[str, Any]],
             vocab: Sequence[str], samples: Sequence[tuple[float, str]],
             summary: Sequence[tuple[str, str]], sample_note: str = "",
             previews: Sequence[tuple[int, float | None, str]] = (), preview_note: str = ""
             ) -> str:
    """A run's report: loss curves against characters seen and wall time, the gradient
    norm before clipping and the share of steps clipped (when logged), the samples
    previewed as it trained (step, validation loss, text), the model and training
    configuration, the vocabulary and samples at several temperatures."""
    def curve(kind: str, x: str, y: str = "loss") -> list[tuple[float, float]]:
        return [(float(r[x]), float(r[y])) for r in metrics
                if r.get("kind") == kind and r.get(y) is not None and x in r]

    charts = []
    for x, label, unit in (("chars", "characters seen", ""), ("time", "wall time", "s")):
        series = [("train", "#1f77b4", curve("train", x)), ("validation", "#ff7f0e",
                                                             curve("val", x))]
        charts.append(svg_chart(series, label, "loss (nats/char)", unit))
    # explosions and clipping; a log from an earlier version has neither: left out
    norm, top, clipped = (curve("train", "step", y) for y in ("grad_norm", "grad_norm_max",
                                                             "clipped"))
    if norm:
        charts.append(svg_chart([("mean", "#1f77b4", norm), ("largest", "#9467bd", top,
                                                             "4 3")],
                                "step", "gradient norm before clipping", log_y=True))
        charts.append(svg_chart([("clipped", "#d62728", clipped)], "step",
                                "share of steps clipped"))
    vocab_cells = "".join(
        f'<span title="U+{ord(c):04X}">{html.escape(visible(c))}</span>' for c in vocab)
    sample_html = "".join(
        f"<h3>temperature {t:g}</h3><pre>{html.escape(text)}</pre>" for t, text in samples)
    css = (".vocab span{display:inline-block;min-width:1.6em;text-align:center;margin:2px;"
           "padding:2px;border:1px solid #ddd;border-radius:4px;font-family:monospace}"
           "h3{font-size:14px;margin:12px 0 2px}.charts{display:flex;gap:16px;flex-wrap:wrap}")
    body = (f"<h1>Run report: {html.escape(title)}</h1>{cards(summary)}"
            f'<h2>Training curves</h2><div class="charts" id="curves">{"".join(charts)}</div>'
            f"{_preview_table(previews, preview_note)}"
            f"{sections_html(sections)}"
            f'<h2>Vocabulary ({len(vocab)} characters)</h2><div class="vocab">{vocab_cells}'
            f'</div><h2>Samples</h2><div class="sub">{html.escape(sample_note)}</div>'
            f'<div id="samples">{sample_html}</div>')
    return page(f"Run report: {title}", body, css, "document.body.dataset.ready='1';")
