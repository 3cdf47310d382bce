"""The exported web page and charrnn.js in headless Chromium, for every cell: the
next-character probabilities against the numpy engine, greedy and seeded text against
`charrnn sample`, the same seed twice through the page's own form, the sampling rule
and the random numbers against Python's, float16 weights, and --web-dir served over
loopback HTTP with the README's example page.

Skipped when no Chromium is installed (.ci/run installs it: apt-get install chromium).
"""

from __future__ import annotations

import base64
import contextlib
import functools
import http.server
import json
import re
import threading
from pathlib import Path

import numpy as np
import pytest
from test_export import CELLS, TEXT, random_checkpoint
from test_pages_browser import ARTIFACTS, CHROMIUM
from test_serve_browser import DevTools

from charrnn.cli import main
from charrnn.generate.decoding import CONTROLS, Decoding
from charrnn.generate.pick import pick
from charrnn.model.infer import NumpyRNN
from charrnn.runs import checkpoint as ckpt

pytestmark = pytest.mark.skipif(
    CHROMIUM is None, reason="Chromium is not installed (apt-get install chromium)")
ROOT = Path(__file__).resolve().parents[1]
PRIME = "the "


@pytest.fixture(scope="module")
def browser(tmp_path_factory):
    b = DevTools(tmp_path_factory.mktemp("chromium") / "profile")
    yield b
    b.close()


@pytest.fixture(scope="module")
def pages(tmp_path_factory) -> dict[str, tuple[Path, Path]]:
    """cell -> (checkpoint, its single page with float32 weights)."""
    out = tmp_path_factory.mktemp("web")
    found = {}
    for cell in CELLS:
        path = random_checkpoint(out, cell)
        page = out / f"{cell}.html"
        assert main(["export", str(path), "--web", str(page), "--dtype", "float32"]) == 0
        found[cell] = (path, page)
    return found


def open_page(browser: DevTools, url: str) -> None:
    browser.send("Page.navigate", url=url)
    browser.wait_for("document.body && document.body.dataset.ready === '1'")


def sample(cli, path: Path, *args: str) -> str:
    r = cli("sample", "-c", path, "--no-echo", "-p", PRIME, *args)
    assert r.exit_code == 0, r
    return r.stdout


def numpy_probabilities(path: Path, text: str) -> np.ndarray:
    c = ckpt.inspect(path)
    engine, state, rows = NumpyRNN.from_checkpoint(c), None, []
    state = engine.init_state(1)
    for i in c.vocab.encode(text):
        logits, state = engine.step(np.array([i]), state)
        z = np.exp(logits[0].astype(np.float64) - logits[0].max())
        rows.append(z / z.sum())
    return np.array(rows)


ENGINE = ("const E = window.charrnn.engine; const m = SIMD ? window.charrnn.model : "
          "new E.Model(JSON.parse(document.getElementById('model-json').textContent), "
          "E.decodeBase64(document.getElementById('model-weights').textContent), "
          "{simd: false});")


def run_js(browser: DevTools, simd: bool, body: str):
    """Evaluate ``body`` with ``E`` (the engine) and ``m`` (the page's model, or the same
    model on the plain-JavaScript loop) in scope."""
    return browser.js(f"(() => {{ const SIMD = {json.dumps(simd)}; {ENGINE} {body} }})()")


@pytest.mark.parametrize("cell", CELLS)
def test_the_page_computes_and_samples_as_charrnn_does(browser, pages, cell, cli):
    path, page = pages[cell]
    open_page(browser, page.resolve().as_uri())
    expected_p = numpy_probabilities(path, TEXT)
    greedy = sample(cli, path, "--temp", "0", "-n", "300")
    seeded = {7: sample(cli, path, "--seed", "7", "-n", "300"),
              8: sample(cli, path, "--seed", "8", "--temp", "0.8", "--top-k", "6",
                        "--top-p", "0.9", "-n", "300")}
    for simd in (True, False):
        name = run_js(browser, simd, "return m.engine;")
        assert name == ("wasm-simd" if simd else "javascript")
        got_p = np.array(run_js(browser, simd, (
            f"const s = m.initState(); return m.encode({json.dumps(TEXT)})"
            ".map((id) => Array.from(m.probabilities(m.step(id, s))));")))
        assert got_p.shape == expected_p.shape
        assert np.abs(got_p - expected_p).max() < 1e-4, (cell, name)
        assert run_js(browser, simd, "return m.sample({prime: 'the ', length: 300, "
                                     "temperature: 0});") == greedy
        assert run_js(browser, simd, "return m.sample({prime: 'the ', length: 300, "
                                     "seed: 7});") == seeded[7]
        assert run_js(browser, simd, "return m.sample({prime: 'the ', length: 300, seed: 8, "
                                     "temperature: 0.8, top_k: 6, top_p: 0.9});") == seeded[8]


def test_the_same_seed_gives_the_same_text_twice_in_the_page(browser, pages, cli):
    path, page = pages["lstm"]
    open_page(browser, page.resolve().as_uri())
    assert browser.js("document.getElementById('temperature').value") == "1"
    browser.type_into("prime", "the d")
    browser.type_into("length", "3000")
    browser.type_into("temperature", "0.9")
    browser.type_into("top_p", "0.95")
    browser.type_into("seed", "12")
    texts = []
    for _ in range(2):
        browser.js("window.seen = []; new MutationObserver(() => window.seen.push(["
                   "...document.getElementById('gen').textContent].length)).observe("
                   "document.getElementById('gen'), {childList: true, subtree: true});")
        browser.click("start")
        status = browser.wait_for("document.getElementById('status').textContent"
                                  ".startsWith('done') && document.getElementById("
                                  "'status').textContent")
        assert re.fullmatch(r"done: 3000 characters in [\d.]+ s \(\d+ chars/s\), seed 12",
                            status), status
        texts.append(browser.js("document.getElementById('gen').textContent"))
        seen = browser.js("window.seen")
        assert len(set(seen)) >= 2 and seen[-1] == 3000, seen  # streamed, in parts
        # (characters, not UTF-16 units: the model writes an astral one now and then)
    assert texts[0] == texts[1]
    r = main_sample(cli, path, "the d", "--seed", "12", "--temp", "0.9", "--top-p", "0.95",
                    "-n", "3000")
    assert texts[0] == r
    assert browser.js("document.getElementById('prime-echo').textContent") == "the d"
    ARTIFACTS.mkdir(exist_ok=True)
    shot = browser.send("Page.captureScreenshot", format="png")["data"]
    (ARTIFACTS / "export-page.png").write_bytes(base64.b64decode(shot))
    browser.type_into("prime", "the Z")  # a character the model never saw
    browser.click("start")
    error = browser.wait_for("document.getElementById('status').className === 'error' && "
                             "document.getElementById('status').textContent")
    assert "never saw" in error and "Z" in error
    browser.type_into("prime", "the ")
    browser.type_into("top_p", "0")  # out of bounds, as charrnn sample says it
    browser.click("start")
    error = browser.wait_for("document.getElementById('status').className === 'error' && "
                             "document.getElementById('status').textContent.startsWith('top') "
                             "&& document.getElementById('status').textContent")
    assert error == "top-p must be in (0, 1], got 0"


def main_sample(cli, path: Path, prime: str, *args: str) -> str:
    r = cli("sample", "-c", path, "--no-echo", "-p", prime, *args)
    assert r.exit_code == 0, r
    return r.stdout


def _min_p_reference(logits: np.ndarray, u: float, d: dict) -> int:
    """pick's rule with min-p after top-k and top-p (the definition Decoding gains)."""
    z = logits.astype(np.float64) - logits.max()
    z /= d["temperature"]
    if 0 < d["top_k"] < len(z):
        z[z < np.sort(z)[-d["top_k"]]] = -np.inf
    p = np.exp(z)
    if d["top_p"] < 1:
        order = np.argsort(-p, kind="stable")
        before = np.cumsum(p[order]) - p[order]
        p[order[before >= d["top_p"] * p.sum()]] = 0
    p[p < d["min_p"] * p.max()] = 0
    cdf = np.cumsum(p)
    i = int((cdf <= u * cdf[-1]).sum())
    return i if i < len(p) else int(p.argmax())


def test_the_engines_pick_and_random_are_pythons(browser, pages):
    import random

    open_page(browser, pages["rnn"][1].resolve().as_uri())
    rng = np.random.default_rng(5)
    logits = (rng.standard_normal((40, 23)) * 3).astype(np.float32)
    logits[0, 3] = logits[0, 7] = logits[0].max() + 1  # a tie at the top
    us = rng.random(40)
    settings = [{"temperature": 0.0, "top_k": 0, "top_p": 1.0, "min_p": 0.0},
                {"temperature": 1.0, "top_k": 0, "top_p": 1.0, "min_p": 0.0},
                {"temperature": 0.7, "top_k": 4, "top_p": 1.0, "min_p": 0.0},
                {"temperature": 1.3, "top_k": 0, "top_p": 0.6, "min_p": 0.0},
                {"temperature": 1.0, "top_k": 9, "top_p": 0.8, "min_p": 0.0},
                {"temperature": 1.0, "top_k": 0, "top_p": 1.0, "min_p": 0.2},
                {"temperature": 2.0, "top_k": 12, "top_p": 0.9, "min_p": 0.05}]
    got = browser.js(f"(() => {{ const E = window.charrnn.engine; const L = "
                     f"{json.dumps(logits.tolist())}, U = {json.dumps(us.tolist())}; "
                     f"return {json.dumps(settings)}.map((d) => L.map((l, i) => "
                     "E.pick(l, U[i], d))); })()")
    for d, ids in zip(settings, got, strict=True):
        if d["min_p"] == 0 or "min_p" in CONTROLS:
            decoding = Decoding(**{k: v for k, v in d.items() if k in CONTROLS})
            want = [int(pick(logits[i:i + 1], [us[i]], decoding)[0]) for i in range(40)]
        else:
            want = [_min_p_reference(logits[i], us[i], d) for i in range(40)]
        assert ids == want, d
    seeds = [0, 1, 12, 2**32 - 1, 2**32 + 5, 2**53 - 1]
    got = browser.js(f"{json.dumps(seeds)}.map((s) => {{ const r = new "
                     "window.charrnn.engine.Random(s); return [0, 1, 2, 3, 4].map(() => "
                     "r.random()); })")
    for seed, values in zip(seeds, got, strict=True):
        r = random.Random(seed)
        assert values == [r.random() for _ in range(5)], seed


def test_a_float16_page_is_half_the_size_and_close(browser, pages, tmp_path, cli):
    path, page32 = pages["gru"]
    page16 = tmp_path / "half.html"
    assert cli("export", path, "--web", page16).exit_code == 0  # float16 is the default
    weights = {p: len(re.search(r'id="model-weights">([^<]*)<', p.read_text()).group(1))
               for p in (page16, page32)}
    assert weights[page16] * 2 == pytest.approx(weights[page32], abs=4)
    open_page(browser, page16.resolve().as_uri())
    assert browser.js("window.charrnn.model.meta.dtype") == "float16"
    got = np.array(browser.js(
        f"(() => {{ const m = window.charrnn.model, s = m.initState(); return m.encode("
        f"{json.dumps(TEXT)}).map((id) => Array.from(m.probabilities(m.step(id, s)))); }})()"))
    gap = np.abs(got - numpy_probabilities(path, TEXT)).max()
    assert 0 < gap < 1e-2, gap  # rounded weights, nearly the same predictions


@contextlib.contextmanager
def serving(folder: Path):
    """A static file server for ``folder`` on a free loopback port."""
    class Quiet(http.server.SimpleHTTPRequestHandler):
        def log_message(self, *args):
            pass

    server = http.server.ThreadingHTTPServer(
        ("127.0.0.1", 0), functools.partial(Quiet, directory=str(folder)))
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()
        thread.join(10)


def test_the_web_folder_and_the_readme_example_page(browser, pages, tmp_path, cli):
    path = pages["lstm"][0]
    site = tmp_path / "site"
    assert cli("export", path, "--web-dir", site, "--dtype", "float32").exit_code == 0
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    section = readme.split("### Your own page", 1)[1]
    example = re.search(r"```html\n(.*?)```", section, re.S).group(1)
    (site / "example.html").write_text(example, encoding="utf-8")
    with serving(site) as url:
        open_page(browser, f"{url}/index.html")  # the page, loading charrnn.js + model.json
        assert browser.js("window.charrnn.model.sample({prime: 'the ', length: 300, "
                          "temperature: 0})") == sample(cli, path, "--temp", "0", "-n", "300")
        browser.send("Page.navigate", url=f"{url}/example.html")
        text = browser.wait_for("document.getElementById('out') && document."
                                "getElementById('out').textContent")  # set in one go
    assert text == sample(cli, path, "--seed", "1", "--temp", "0.8", "-n", "300")
