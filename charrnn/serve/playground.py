"""The playground at ``/``: one self-contained page (no external assets) that streams a
completion from this server's own API, so it works offline and shows what a client sees.
Besides temperature and top-p it offers min-p, DRY and a regex, and asks for
``logprobs: 5``: hovering a generated character shows the five likeliest characters the
model saw at that point, with their probabilities."""

PAGE = """<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>charrnn playground</title>
<style>
body{font:15px/1.45 system-ui,sans-serif;margin:0;background:#fafafa;color:#222}
main{max-width:960px;margin:0 auto;padding:18px}
h1{font-size:20px;margin:0 0 12px}
textarea{width:100%;box-sizing:border-box;font:14px/1.4 ui-monospace,monospace;
  padding:8px;border:1px solid #bbb;border-radius:4px}
.row{display:flex;flex-wrap:wrap;gap:14px;align-items:end;margin:10px 0}
label{display:flex;flex-direction:column;font-size:13px;color:#555}
input,select{font:14px system-ui,sans-serif;padding:4px;border:1px solid #bbb;
  border-radius:4px;width:110px}
select{width:200px}
button{font:15px system-ui,sans-serif;padding:6px 18px;border-radius:4px;
  border:1px solid #2b6cb0;background:#2b6cb0;color:#fff;cursor:pointer}
button:disabled{opacity:.45;cursor:default}
#stop{background:#fff;color:#2b6cb0}
#out{white-space:pre-wrap;font:14px/1.45 ui-monospace,monospace;background:#fff;
  border:1px solid #ddd;border-radius:4px;padding:12px;min-height:240px;margin:0}
#prime-echo{color:#888}
#gen{color:#111}
#status{font-size:13px;color:#555;min-height:18px;margin:6px 0}
#status.error{color:#b00020}
#gen span:hover{background:#fde68a}
#tip{position:fixed;display:none;background:#222;color:#fff;font:13px ui-monospace,monospace;
  padding:6px 9px;border-radius:4px;pointer-events:none;white-space:pre;z-index:9}
#regex{width:200px}
</style></head>
<body><main>
<h1>charrnn playground</h1>
<textarea id="prime" rows="4" placeholder="Prime: text the model continues (optional)">
</textarea>
<div class="row">
<label>model<select id="model"></select></label>
<label>temperature<input id="temperature" type="number" min="0" max="100" step="0.1"
 value="0.8"></label>
<label>top-p<input id="top_p" type="number" min="0.01" max="1" step="0.05" value="1">
</label>
<label>min-p<input id="min_p" type="number" min="0" max="1" step="0.01" value="0">
</label>
<label>DRY multiplier<input id="dry_multiplier" type="number" min="0" step="0.1" value="0">
</label>
<label>DRY allowed length<input id="dry_allowed_length" type="number" min="1" step="1"
 value="12"></label>
<label>regex<input id="regex" type="text" placeholder="every sample matches"></label>
<label>length<input id="length" type="number" min="1" step="50" value="500"></label>
<label>seed<input id="seed" type="number" min="0" step="1" placeholder="random"></label>
<label>API key<input id="key" type="password" placeholder="if required"></label>
<button id="start">Start</button><button id="stop" disabled>Stop</button>
</div>
<div id="status"></div>
<pre id="out"><span id="prime-echo"></span><span id="gen"></span></pre>
<div id="tip"></div>
</main>
<script>
"use strict";
const $ = id => document.getElementById(id);
let controller = null;
function headers() {
  const h = {"Content-Type": "application/json"};
  if ($("key").value) h.Authorization = "Bearer " + $("key").value;
  return h;
}
function status(text, error) {
  $("status").textContent = text;
  $("status").className = error ? "error" : "";
}
async function loadModels() {
  try {
    const r = await fetch("/v1/models", {headers: headers()});
    const j = await r.json();
    if (!r.ok) throw new Error(j.error ? j.error.message : r.statusText);
    $("model").replaceChildren(...j.data.map(m => new Option(m.id, m.id)));
  } catch (e) { status("cannot list models: " + e.message, true); }
}
async function start() {
  const body = {prompt: $("prime").value, max_tokens: Number($("length").value),
                temperature: Number($("temperature").value),
                top_p: Number($("top_p").value), min_p: Number($("min_p").value),
                dry_multiplier: Number($("dry_multiplier").value),
                dry_allowed_length: Number($("dry_allowed_length").value),
                logprobs: 5, stream: true};
  if ($("regex").value) body.regex = $("regex").value;
  if ($("model").value) body.model = $("model").value;
  if ($("seed").value !== "") body.seed = Number($("seed").value);
  $("prime-echo").textContent = body.prompt;
  $("gen").replaceChildren();
  $("start").disabled = true; $("stop").disabled = false;
  status("generating\\u2026");
  controller = new AbortController();
  const t0 = performance.now();
  let count = 0, reason = null;
  try {
    const r = await fetch("/v1/completions", {method: "POST", headers: headers(),
                          body: JSON.stringify(body), signal: controller.signal});
    if (!r.ok) {
      const j = await r.json().catch(() => ({}));
      throw new Error(j.error ? j.error.message : r.status + " " + r.statusText);
    }
    const reader = r.body.getReader(), decoder = new TextDecoder();
    let buf = "";
    for (;;) {
      const {value, done} = await reader.read();
      if (done) break;
      buf += decoder.decode(value, {stream: true});
      let cut;
      while ((cut = buf.indexOf("\\n\\n")) >= 0) {
        const event = buf.slice(0, cut); buf = buf.slice(cut + 2);
        if (!event.startsWith("data: ")) continue;
        const data = event.slice(6);
        if (data === "[DONE]") continue;
        const j = JSON.parse(data);
        if (j.error) throw new Error(j.error.message);
        for (const c of j.choices) {
          addText(c.text, c.logprobs); count += [...c.text].length;
          if (c.finish_reason) reason = c.finish_reason;
        }
      }
    }
    const s = (performance.now() - t0) / 1000;
    status(`done: ${count} characters in ${s.toFixed(2)} s (${reason})`);
  } catch (e) {
    if (e.name === "AbortError") status(`stopped after ${count} characters`);
    else status(e.message, true);
  } finally {
    $("start").disabled = false; $("stop").disabled = true; controller = null;
  }
}
// One span per generated character, carrying the model's five likeliest characters there.
function addText(text, logprobs) {
  if (!text) return;
  const frag = document.createDocumentFragment();
  const chars = logprobs ? logprobs.tokens : [...text];
  chars.forEach((ch, i) => {
    const span = document.createElement("span");
    span.textContent = ch;
    if (logprobs && logprobs.top_logprobs[i]) {
      span.dataset.top = JSON.stringify(logprobs.top_logprobs[i]);
      span.dataset.p = Math.exp(logprobs.token_logprobs[i]);
    }
    frag.appendChild(span);
  });
  $("gen").appendChild(frag);
}
function shown(ch) {
  return ch === "\\n" ? "\\u21b5" : ch === " " ? "\\u2423" : ch === "\\t" ? "\\u21e5" : ch;
}
$("gen").addEventListener("mouseover", e => {
  const span = e.target;
  if (!span.dataset || !span.dataset.top) return;
  const top = Object.entries(JSON.parse(span.dataset.top))
    .sort((a, b) => b[1] - a[1]).slice(0, 5);
  $("tip").textContent = `${shown(span.textContent)} was drawn: ` +
    `${(100 * span.dataset.p).toFixed(1)}%\\n` +
    top.map(([ch, lp]) => `${shown(ch)}  ${(100 * Math.exp(lp)).toFixed(1)}%`).join("\\n");
  const r = span.getBoundingClientRect();
  $("tip").style.left = `${r.left}px`; $("tip").style.top = `${r.bottom + 4}px`;
  $("tip").style.display = "block";
});
$("gen").addEventListener("mouseout", () => { $("tip").style.display = "none"; });
$("start").addEventListener("click", start);
$("stop").addEventListener("click", () => controller && controller.abort());
$("prime").addEventListener("keydown", e => {
  if (e.key === "Enter" && (e.ctrlKey || e.metaKey)) start();
});
loadModels().then(() => { document.body.dataset.ready = "1"; });
</script>
</body></html>
"""
