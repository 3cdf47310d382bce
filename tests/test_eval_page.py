"""`charrnn eval --html`: the surprisal page holds the text and the predictions, safely."""

from __future__ import annotations

import json
import re

import numpy as np

from charrnn import api
from charrnn.data.text import read_text
from charrnn.inspect.trace import Surprisal
from tests.conftest import page_data


def test_eval_html_page_holds_the_text_and_predictions(cli, trained_run, corpus_file, tmp_path):
    plain = cli("eval", corpus_file, "-c", trained_run)
    r = cli("eval", corpus_file, "-c", trained_run, "--html", "s.html", "--max-chars", "400",
            "--start", "10")
    assert r.exit_code == 0, r
    assert r.stdout == plain.stdout  # the page is extra; stdout is still the report
    assert r.stderr == "charrnn: wrote s.html\n"
    page = (tmp_path / "s.html").read_text(encoding="utf-8")
    assert "http://" not in page.replace('xmlns="http://www.w3.org/2000/svg"', "")
    assert "https://" not in page and "<link" not in page and " src=" not in page
    data = page_data(tmp_path / "s.html")
    text = read_text(corpus_file)
    assert data["text"] == text[10:410] and data["offset"] == 10
    s = api.load(trained_run).surprisal(text[10:410])
    assert data["bits"][0] is None
    np.testing.assert_allclose(data["bits"][1:], s.bits[1:], atol=1e-3)
    assert data["top"][5:10] == s.top_ids[1].tolist()
    assert page.count('<span class="s') >= 399


def test_page_text_cannot_break_out_of_the_page():
    from charrnn.inspect.pages import surprisal_page

    vocab = tuple(sorted(set("</script><b>&'\" x")))
    text = "</script><b>x & '\"</b>"
    ids = np.array([vocab.index(c) for c in text])
    n = len(ids)
    s = Surprisal(ids, np.r_[np.nan, np.ones(n - 1)], np.zeros((n, 2), np.int32),
                  np.full((n, 2), 0.5, np.float32))
    page = surprisal_page(s, vocab, "<title>", [("k", "<v>")])
    assert page.count("</script>") == 1 and "<b>x" not in page and ">&lt;</span>" in page
    assert "&lt;title&gt;" in page and "&lt;v&gt;" in page
    assert json.loads(re.search(r"const DATA=(\{.*?\});", page).group(1))["text"] == text
