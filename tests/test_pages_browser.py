"""The HTML pages as a user sees them: rendered by headless Chromium, DOM read after the
page's script ran, screenshot decoded and checked for the text's colours.

Screenshots are kept in test-artifacts/ at the repository root. Skipped when no Chromium
is installed (.ci/run installs it: apt-get install chromium).
"""

from __future__ import annotations

import html
import re
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest
from pngread import read_png

from charrnn.cli import main
from charrnn.data.text import read_text
from charrnn.inspect.pages import BIT_EDGES, _heat

CHROMIUM = next((p for p in map(shutil.which, ("chromium", "chromium-browser",
                                               "google-chrome")) if p), None)
pytestmark = pytest.mark.skipif(
    CHROMIUM is None, reason="Chromium is not installed (apt-get install chromium)")
ARTIFACTS = Path(__file__).resolve().parents[1] / "test-artifacts"
FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync",
         "--hide-scrollbars", "--window-size=1100,900"]
SHOWN = 1200  # characters on the surprisal page


def render(page: Path, name: str, tmp: Path) -> tuple[str, np.ndarray]:
    """Load a page once: its DOM after scripts ran, and a decoded screenshot."""
    ARTIFACTS.mkdir(exist_ok=True)
    shot = ARTIFACTS / f"{name}.png"
    shot.unlink(missing_ok=True)
    profile = tmp / f"profile-{name}"
    r = subprocess.run([CHROMIUM, *FLAGS, f"--user-data-dir={profile}",
                        f"--screenshot={shot}", "--dump-dom", page.resolve().as_uri()],
                       capture_output=True, text=True, timeout=120)
    assert r.returncode == 0 and shot.is_file(), r.stderr[-2000:]
    return r.stdout, read_png(shot)[..., :3]


def with_hover(page: Path, index: int) -> Path:
    """A copy of the page whose last script hovers the mouse over character ``index`` and
    copies the tooltip's text into <body data-tip>, for the DOM dump to show."""
    probe = ("<script>const s=document.querySelectorAll('#text > span')[INDEX];"
             "const r=s.getBoundingClientRect();"
             "s.dispatchEvent(new MouseEvent('mousemove',{bubbles:true,"
             "clientX:r.left+2,clientY:r.top+2}));"
             "document.body.dataset.tip=document.getElementById('tip').innerText;</script>"
             ).replace("INDEX", str(index))
    copy = page.with_name(f"hover-{page.name}")
    copy.write_text(page.read_text(encoding="utf-8").replace("</body>", probe + "</body>"),
                    encoding="utf-8")
    return copy


def _colour(css: str) -> tuple[int, ...]:
    return tuple(int(x) for x in re.findall(r"\d+", css))


def _count(pixels: np.ndarray, rgb: tuple[int, ...]) -> int:
    return int((pixels.reshape(-1, 3) == np.array(rgb)).all(axis=1).sum())


def _not_blank(pixels: np.ndarray) -> None:
    flat = pixels.reshape(-1, 3)
    assert (flat != 255).any(axis=1).mean() > 0.03  # ink on more than 3% of the page
    assert len(np.unique(flat, axis=0)) > 50


def _text_spans(dom: str) -> list[str]:
    body = re.search(r'<div class="text" id="text">(.*?)</div>', dom, re.S).group(1)
    return re.findall(r"<span([^>]*)>(.*?)</span>", body, re.S)


@pytest.fixture(scope="module")
def pages(trained_run, corpus_file, tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("pages")
    run = out / "run"
    shutil.copytree(trained_run, run)
    for args in (["eval", corpus_file, "-c", run, "--html", out / "surprisal.html",
                  "--max-chars", SHOWN],
                 ["neurons", corpus_file, "-c", run, "--html", out / "neurons.html",
                  "--max-chars", 800],
                 ["report", run, "-o", out / "report.html", "-n", 120]):
        assert main([str(a) for a in args]) == 0
    shutil.copytree(trained_run, out / "again")
    for args in (["report", run, out / "again", "-o", out / "compare.html", "--no-eval"],
                 ["gradients", "-c", run, "-c", out / "again", "-k", 40, "--windows", 4,
                  "--max-context", 16, "--positions", 40, "--html", out / "flow.html"]):
        assert main([str(a) for a in args]) == 0
    return out


def test_surprisal_page_renders_coloured_text(pages, corpus_file, tmp_path):
    from charrnn import api

    dom, pixels = render(with_hover(pages / "surprisal.html", 30), "surprisal", tmp_path)
    assert 'data-ready="1"' in dom  # the page's script ran to the end
    # Hovering character 30 shows what the model predicted there, as the API computes it.
    text = read_text(corpus_file)[:SHOWN]
    s = api.load(pages / "run").surprisal(text)
    tip = html.unescape(re.search(r'data-tip="([^"]*)"', dom).group(1))
    assert tip.startswith(f"{text[30]} at 30: {s.bits[30]:.2f} bits")
    rows = re.findall(r"^(\S+)\s+(\d+\.\d)%", tip, re.M)
    assert len(rows) == 5
    vocab = api.load(pages / "run").vocab.chars
    visible = {"\n": "\u21b5", " ": "\u2423"}
    assert [r[0] for r in rows] == [visible.get(vocab[i], vocab[i]) for i in s.top_ids[30]]
    assert [float(r[1]) for r in rows] == pytest.approx(list(s.top_probs[30] * 100), abs=0.06)
    spans = _text_spans(dom)
    assert len(spans) == SHOWN
    shown = "".join("\n" if t == "\u21b5" else html.unescape(t) for _, t in spans)
    assert shown == read_text(corpus_file)[:SHOWN]
    classes = [re.search(r'class="s(\d+)"', a) for a, _ in spans]
    assert classes[0] is None and all(c is not None for c in classes[1:])
    assert len({c.group(1) for c in classes[1:]}) >= 3  # surprisal varies along the text
    _not_blank(pixels)
    # The colour scale and the text are drawn in the heat colours of the page's classes.
    n_bins = len(BIT_EDGES) + 1
    heat = [_count(pixels, _colour(_heat(b / (n_bins - 1)))) for b in range(1, n_bins)]
    assert sum(c > 20 for c in heat) >= 7, heat


def test_neurons_page_colours_text_by_the_best_unit(pages, tmp_path):
    dom, pixels = render(pages / "neurons.html", "neurons", tmp_path)
    assert 'data-ready="1"' in dom
    spans = _text_spans(dom)
    assert len(spans) == 800
    colours = [re.search(r"background-color: (rgb\([^)]*\))", a) for a, _ in spans]
    assert all(colours)  # the script coloured every character
    assert len({c.group(1) for c in colours}) > 20
    first = re.search(r'<tr data-unit="([hc]1\.\d+)" class="on">', dom)
    assert first is not None
    current = re.search(r'<span id="current">([^<]*)</span>', dom).group(1)
    assert current.startswith(f"unit {first.group(1)}")
    _not_blank(pixels)
    flat = pixels.reshape(-1, 3).astype(int)
    red = ((flat[:, 0] == 255) & (flat[:, 2] < 200)).sum()
    blue = ((flat[:, 2] == 255) & (flat[:, 0] < 200)).sum()
    assert red > 500 or blue > 500, (red, blue)


def test_run_report_renders_curves(pages, tmp_path):
    dom, pixels = render(pages / "report.html", "report", tmp_path)
    assert 'data-ready="1"' in dom
    assert len(re.findall(r'<polyline class="series" data-name="train"', dom)) == 2
    assert len(re.findall(r'<polyline class="series" data-name="validation"', dom)) == 2
    assert dom.count("<h3>temperature") == 3
    _not_blank(pixels)
    assert _count(pixels, (31, 119, 180)) > 30  # the train curve's blue
    assert _count(pixels, (255, 127, 14)) > 30  # the validation curve's orange


def test_comparison_page_switches_the_x_axis(pages, tmp_path):
    page = pages / "compare.html"
    dom, pixels = render(page, "compare", tmp_path)
    assert 'data-ready="1"' in dom
    shown = re.findall(r'<div class="chart" data-x="(\w+)"(?: style="([^"]*)")?>', dom)
    assert {x for x, style in shown if "none" not in style} == {"step"}
    assert len(shown) == 15
    _not_blank(pixels)
    assert _count(pixels, (31, 119, 180)) > 30 and _count(pixels, (255, 127, 14)) > 30
    click = page.with_name("click-compare.html")
    click.write_text(page.read_text(encoding="utf-8").replace(
        "</body>", "<script>document.querySelector('[data-axis=chars]').click();</script>"
        "</body>"), encoding="utf-8")
    dom, _ = render(click, "compare-chars", tmp_path)
    shown = re.findall(r'<div class="chart" data-x="(\w+)"(?: style="([^"]*)")?>', dom)
    assert {x for x, style in shown if "none" not in style} == {"chars"}


def test_gradient_flow_page_draws_both_charts(pages, tmp_path):
    dom, pixels = render(pages / "flow.html", "flow", tmp_path)
    assert 'data-ready="1"' in dom
    assert len(re.findall(r'<polyline class="series" data-name="(run|again):[hc]1"', dom)) == 4
    # the loss by context, and the same above the full state's
    assert len(re.findall(r'<polyline class="series" data-name="(run|again)"', dom)) == 4
    _not_blank(pixels)
    assert _count(pixels, (31, 119, 180)) > 30 and _count(pixels, (255, 127, 14)) > 30
