"""The figures behind docs/export.md: page sizes, float16's effect on the probabilities,
and the JavaScript engine's speed in headless Chromium.

1. Sizes: `charrnn export --web` (float16 and float32), `--web-dir`, `--onnx` and `--hf`
   for 2-layer LSTM, GRU and RNN models of 256 and 384 units (vocabulary 65, embedding
   64; untrained: the size does not depend on training).
2. float16: a trained model's float32 weights against the same weights rounded to
   float16 (what the page computes with), both run by the numpy engine (the JavaScript
   engine agrees with it to ~1e-8, tests/test_export_browser.py) over held-out text:
   largest and mean difference of a next-character probability, KL divergence,
   bits/char, how often the likeliest character changes, and how long greedy text stays
   the same. The model: --checkpoint, else one trained here for --steps steps (2x256
   LSTM on Tiny Shakespeare, one thread; about a minute).
3. Speed: each page opened in headless Chromium (--dump-dom, a script appended to the
   page times ``model.sample`` at batch 1, temperature 1, sampling included): one
   warm-up run, then --repeats runs of --chars characters, WebAssembly SIMD and plain
   JavaScript turn about; medians.

Run from the repository root (a few minutes on 2 cores; --quick: well under one):

    python bench/export_web.py
    python bench/export_web.py --checkpoint checkpoints/shakespeare --quick
"""

from __future__ import annotations

import argparse
import contextlib
import io
import json
import os
import platform
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import benchpaths
import numpy as np

from charrnn.cli import main as charrnn
from charrnn.config import ModelConfig
from charrnn.data.text import Vocab, read_text
from charrnn.model.infer import NumpyRNN
from charrnn.runs import checkpoint as ckpt

CHROMIUM = next((p for p in map(shutil.which, ("chromium", "chromium-browser",
                                               "google-chrome")) if p), None)
FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync"]
VOCAB = Vocab(tuple(sorted("\n !$&',-.3:;?" + "ABCDEFGHIJKLMNOPQRSTUVWXYZ"
                           + "abcdefghijklmnopqrstuvwxyz")))  # Tiny Shakespeare's 65


def machine() -> str:
    name = next((line.split(":", 1)[1].strip() for line in
                 Path("/proc/cpuinfo").read_text().splitlines()
                 if line.startswith("model name")), platform.processor())
    return f"{name}, {os.cpu_count()} CPUs"


def untrained(folder: Path, cell: str, hidden: int) -> Path:
    config = ModelConfig(vocab_size=len(VOCAB), cell=cell, num_layers=2, hidden_size=hidden)
    rng = np.random.default_rng(0)
    weights = {k: (rng.standard_normal(s) / np.sqrt(s[-1])).astype(np.float32)
               for k, s in config.weight_shapes().items()}
    path = folder / f"{cell}-2x{hidden}" / "best.safetensors"
    ckpt.write(path, weights, ckpt.build_meta(config, VOCAB))
    return path


def quietly(args: list[str]) -> int:
    """Run a charrnn command, its stderr kept back (shown only if it fails)."""
    with contextlib.redirect_stderr(io.StringIO()) as said:
        code = charrnn(args)
    if code != 0:
        raise SystemExit(f"charrnn {' '.join(args)} failed: {said.getvalue()[-2000:]}")
    return code


def export(path: Path, *args: str) -> None:
    quietly(["export", str(path), *args])


def sizes(tmp: Path) -> dict[tuple[str, int], Path]:
    print("\n## sizes (MB; vocabulary 65, embedding 64)")
    print("| model | parameters | --web float16 | --web float32 | --web-dir float16 | "
          "--onnx | --hf |\n|---|---|---|---|---|---|---|")
    pages = {}
    for hidden in (256, 384):
        for cell in ("lstm", "gru", "rnn"):
            path, out = untrained(tmp, cell, hidden), tmp / f"out-{cell}-{hidden}"
            export(path, "--web", str(out / "f16.html"), "--onnx", str(out / "m.onnx"),
                   "--hf", str(out / "hf"), "--web-dir", str(out / "dir"))
            export(path, "--web", str(out / "f32.html"), "--dtype", "float32")
            mb = {k: sum(f.stat().st_size for f in (out / k).rglob("*")) / 1e6
                  if (out / k).is_dir() else (out / k).stat().st_size / 1e6
                  for k in ("f16.html", "f32.html", "dir", "m.onnx", "hf")}
            params = ModelConfig(65, cell, 2, hidden).num_params()
            print(f"| {cell.upper()} 2x{hidden} | {params:,} | {mb['f16.html']:.2f} | "
                  f"{mb['f32.html']:.2f} | {mb['dir']:.2f} | {mb['m.onnx']:.2f} | "
                  f"{mb['hf']:.2f} |")
            pages[(cell, hidden)] = out / "f16.html"
    return pages


def trained(tmp: Path, steps: int) -> Path:
    corpus = benchpaths.SHAKESPEARE
    if not corpus.is_file():
        raise SystemExit(f"no {corpus}: give --checkpoint")
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    t0 = time.perf_counter()
    quietly(["train", str(corpus), "-o", str(tmp / "trained"), "--hidden-size", "256",
             "--layers", "2", "--max-steps", str(steps), "--device", "cpu", "--preview", "0"])
    print(f"# trained a 2x256 LSTM for {steps} steps in {time.perf_counter() - t0:.0f}s")
    return tmp / "trained" / "best.safetensors"


def float16_effect(path: Path, chars: int) -> None:
    c = ckpt.inspect(path)
    text = read_text(Path(c.meta["corpus"]["source"])) if Path(
        str(c.meta.get("corpus", {}).get("source", ""))).is_file() else None
    if text is None:
        raise SystemExit(f"{path}: its corpus is not on this machine")
    held = text[-chars:]
    held = "".join(ch for ch in held if ch in c.vocab)
    weights = c.numpy_weights()
    engines = {"float32": NumpyRNN(c.config, weights),
               "float16": NumpyRNN(c.config, {k: v.astype(np.float16).astype(np.float32)
                                              for k, v in weights.items()})}
    streams = 16  # the text cut into 16 streams, run as one batch
    n = len(held) // streams
    ids = c.vocab.encode(held[:n * streams]).astype(np.int64).reshape(streams, n)
    probs = {}
    for name, engine in engines.items():
        state, rows = engine.init_state(streams), []
        for t in range(n):
            logits, state = engine.step(ids[:, t], state)
            z = logits.astype(np.float64)
            z = np.exp(z - z.max(axis=1, keepdims=True))
            rows.append(z / z.sum(axis=1, keepdims=True))
        probs[name] = np.stack(rows, axis=1)[:, :-1]  # (streams, n - 1, V)
    p32, p16 = probs["float32"], probs["float16"]
    target = ids[:, 1:]
    gap = np.abs(p32 - p16)

    def bpc(p: np.ndarray) -> float:
        return float(-np.log2(np.take_along_axis(p, target[..., None], 2)).mean())

    kl = float((p32 * (np.log2(p32) - np.log2(p16))).sum(axis=2).mean())
    same_top = float((p32.argmax(2) == p16.argmax(2)).mean())
    greedy = {}
    for name, engine in engines.items():
        state, logits, out = engine.init_state(1), None, []
        for i in c.vocab.encode("ROMEO:" if set("ROMEO:") <= set(c.vocab.chars) else "\n"):
            logits, state = engine.step(np.array([i]), state)
        for _ in range(2000):
            i = int(logits.argmax())
            out.append(i)
            logits, state = engine.step(np.array([i]), state)
        greedy[name] = out
    agree = next((k for k, (a, b) in enumerate(zip(*greedy.values(), strict=True))
                  if a != b), len(greedy["float32"]))
    print(f"\n## float16 weights against float32: {path}, "
          f"{target.size:,} held-out characters (the corpus's last {chars:,})")
    print(f"| measure | value |\n|---|---|\n"
          f"| largest difference of a probability | {gap.max():.2e} |\n"
          f"| mean difference of a probability | {gap.mean():.2e} |\n"
          f"| mean over characters of the largest difference | {gap.max(2).mean():.2e} |\n"
          f"| KL(float32 \u2016 float16), bits/char | {kl:.2e} |\n"
          f"| bits/char, float32 weights | {bpc(p32):.5f} |\n"
          f"| bits/char, float16 weights | {bpc(p16):.5f} |\n"
          f"| likeliest character unchanged | {same_top:.4%} |\n"
          f"| greedy text identical for (of 2,000 characters) | {agree:,} |")


BENCH = """<script type="module">
const E = window.charrnn.engine, page = window.charrnn.model;
const text = (id) => document.getElementById(id).textContent;
const js = new E.Model(JSON.parse(text("model-json")), E.decodeBase64(text("model-weights")),
                       {simd: false});
const rate = (m, n) => { const t = performance.now(); m.sample({prime: "\\n", length: n, seed: 1});
                         return n / ((performance.now() - t) / 1000); };
rate(page, CHARS / 5); rate(js, CHARS / 25);
const simd = [], plain = [];
for (let i = 0; i < REPEATS; i++) { simd.push(rate(page, CHARS)); plain.push(rate(js, CHARS / 5)); }
document.body.dataset.bench = JSON.stringify({engine: page.engine, simd, plain});
</script></body>"""


def speed(pages: dict[tuple[str, int], Path], chars: int, repeats: int, tmp: Path) -> None:
    if CHROMIUM is None:
        print("\n## speed: skipped, no Chromium")
        return
    version = subprocess.run([CHROMIUM, "--version"], capture_output=True, text=True)
    print(f"\n## speed in headless {version.stdout.strip()}: chars/s at batch 1, "
          f"median of {repeats} (WebAssembly SIMD: {chars} chars a run; JavaScript: "
          f"{chars // 5})")
    print("| model | WebAssembly SIMD | plain JavaScript | load before, after |\n"
          "|---|---|---|---|")
    for (cell, hidden), page in pages.items():
        probe = page.with_name("bench.html")
        probe.write_text(page.read_text().replace("</body>", BENCH.replace(
            "CHARS", str(chars)).replace("REPEATS", str(repeats))))
        load = os.getloadavg()[0]
        r = subprocess.run([CHROMIUM, *FLAGS, f"--user-data-dir={tmp / 'profile'}",
                            "--dump-dom", probe.resolve().as_uri()],
                           capture_output=True, text=True, timeout=600)
        found = re.search(r'data-bench="([^"]*)"', r.stdout)
        if not found:
            raise SystemExit(f"no result from {probe}: {r.stderr[-500:]}")
        data = json.loads(found.group(1).replace("&quot;", '"'))
        assert data["engine"] == "wasm-simd", data
        print(f"| {cell.upper()} 2x{hidden} | {statistics.median(data['simd']):,.0f} | "
              f"{statistics.median(data['plain']):,.0f} | "
              f"{load:.2f}, {os.getloadavg()[0]:.2f} |")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--checkpoint", type=Path, help="a trained model for the float16 figures")
    ap.add_argument("--steps", type=int, default=600, help="training steps without one")
    ap.add_argument("--held-out", type=int, default=40_000, help="characters scored")
    ap.add_argument("--chars", type=int, default=5000, help="characters a speed run")
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--quick", action="store_true", help="fewer steps, characters, repeats")
    args = ap.parse_args()
    if args.quick:
        args.steps, args.held_out, args.chars, args.repeats = 150, 8000, 2000, 3
    print(f"# {machine()}; load average {os.getloadavg()[0]:.2f} at start; "
          f"{time.strftime('%Y-%m-%d')}; python {platform.python_version()}")
    with tempfile.TemporaryDirectory() as folder:
        tmp = Path(folder)
        pages = sizes(tmp)
        float16_effect(args.checkpoint or trained(tmp, args.steps), args.held_out)
        speed(pages, args.chars, args.repeats, tmp)
    print(f"\n# load average {os.getloadavg()[0]:.2f} at the end (the machine is shared)")


if __name__ == "__main__":
    sys.exit(main())
