"""Looking inside a model: traces against torch, unit ranking, info/list/report, the API."""

from __future__ import annotations

import json
import math
import re
import subprocess
import sys

import numpy as np
import pytest
import torch

from charrnn import api, runfolder
from charrnn import checkpoint as ckpt
from charrnn.evaluate import score_ids
from charrnn.infer import NumpyRNN
from charrnn.neurons import correlation_table, features, rank_units
from charrnn.text import read_text
from charrnn.trace import Surprisal, activations, surprisal


@pytest.fixture(scope="module")
def model_and_ids(trained_run, corpus_file):
    c = runfolder.open_checkpoint(trained_run)
    ids = c.vocab.encode(read_text(corpus_file)[:1500]).astype(np.int64)
    return c, NumpyRNN(c.config, c.numpy_weights()), ckpt.load_model(c), ids


def test_surprisal_single_stream_equals_torch_at_every_position(model_and_ids):
    c, engine, model, ids = model_and_ids
    s = surprisal(engine, ids, top_k=5, streams=1)
    with torch.no_grad():
        logits, _ = model(torch.from_numpy(ids[None, :-1]))
    logp = torch.log_softmax(logits[0].double(), -1).numpy()  # predicts ids[1:]
    want_bits = -logp[np.arange(len(ids) - 1), ids[1:]] / math.log(2)
    assert np.isnan(s.bits[0]) and (s.top_ids[0] == -1).all()
    np.testing.assert_allclose(s.bits[1:], want_bits, atol=2e-4)
    want_top = np.argsort(-logp, axis=1, kind="stable")[:, :5]
    agree = (s.top_ids[1:] == want_top).all(axis=1).mean()
    assert agree > 0.99  # ties within float error may swap an order
    np.testing.assert_allclose(s.top_probs[1:, 0], np.exp(logp.max(axis=1)), atol=1e-4)


def test_surprisal_in_streams_scores_each_position_once_like_eval(model_and_ids):
    c, engine, model, ids = model_and_ids
    s = surprisal(engine, ids, streams=8, burn_in=32)
    assert not np.isnan(s.bits[1:]).any()
    # Same streams and burn-in as eval: the same total, to float precision.
    total = score_ids(model, ids, streams=8, burn_in=32)
    assert np.nansum(s.bits) * math.log(2) == pytest.approx(total.nats, rel=1e-4)
    # Scattered back to the right positions: the probability of the character that is
    # actually there is the one in its top-k list.
    hit = s.top_ids == ids[:, None]
    rows = hit.any(axis=1)
    assert rows[1:].mean() > 0.95  # the pattern is learned
    got = (s.top_probs * hit).sum(axis=1)[rows]
    np.testing.assert_allclose(got, 2.0 ** -s.bits[rows], rtol=1e-3)


def test_activations_equal_torch_hidden_and_cell_states(model_and_ids):
    c, engine, model, ids = model_and_ids
    part = ids[:300]
    acts = activations(engine, part, streams=1)
    h = c.config.hidden_size
    assert acts.values.shape == (300, 2 * h)  # h and c of the one layer
    assert acts.names[0] == "h1.0" and acts.names[h] == "c1.0"
    with torch.no_grad():
        out, (h_n, c_n) = model.rnn(model.embed(torch.from_numpy(part[None, :])))
    np.testing.assert_allclose(acts.values[:, :h], out[0].numpy(), atol=1e-5)
    np.testing.assert_allclose(acts.values[-1, h:], c_n[0, 0].numpy(), atol=1e-5)
    # In streams with burn-in, the states converge to the single-pass ones.
    streamed = activations(engine, ids, streams=4, burn_in=64).values
    single = activations(engine, ids, streams=1).values
    assert np.abs(streamed[:, :h] - single[:, :h]).max() < 0.05


def test_structural_features():
    f = features('a "b c" (d [e])\nxy\n')
    as_str = {k: "".join(str(int(x)) for x in v) for k, v in f.items()}
    assert as_str["inside quotes"] == "0011110000000000000"
    assert as_str["inside brackets"] == "0000000011111100000"
    assert list(f["position in line"][:3]) == [1, 2, 3]
    assert list(f["position in line"][-4:]) == [0, 1, 2, 0]
    assert as_str["position in word"] == "1001010001001000120"
    assert as_str["upper-case letter"] == "0" * 19


def test_ranking_finds_planted_units():
    rng = np.random.default_rng(0)
    text = ('he said "yes (maybe)" and left\nshe said "no"\n' * 30)
    feats = features(text)
    values = rng.normal(size=(len(text), 40)).astype(np.float32)
    values[:, 7] = feats["inside quotes"] + 0.3 * rng.normal(size=len(text))
    values[:, 21] = -feats["position in line"] / 30 + 0.1 * rng.normal(size=len(text))
    names = [f"h1.{u}" for u in range(40)]
    table = correlation_table(values, feats)
    ranked = rank_units(table, names, per_feature=2, total=5)
    by_name = {r.name: r for r in ranked}
    assert ranked[0].name in ("h1.7", "h1.21") and ranked[1].name in ("h1.7", "h1.21")
    assert by_name["h1.7"].feature == "inside quotes" and by_name["h1.7"].r > 0.8
    assert by_name["h1.21"].feature == "position in line" and by_name["h1.21"].r < -0.9
    assert len(ranked) == len({r.name for r in ranked}) >= 5
    # A feature that never varies (no upper-case letters) is left out, not NaN-ranked.
    assert "upper-case letter" not in table


def test_hardest_passages_are_the_planted_ones_and_do_not_overlap():
    bits = np.full(200, 0.1)
    bits[0] = np.nan
    bits[50:60] = 5.0
    bits[120:125] = 3.0
    s = Surprisal(np.zeros(200, np.int64), bits, np.zeros((200, 1)), np.zeros((200, 1)))
    (a, b, m), (a2, b2, _), *_ = s.hardest(width=10, count=3)
    assert (a, b) == (50, 60) and m == pytest.approx(5.0)
    assert 115 <= a2 <= 120 and not (a2 < b and a < b2)


# ---------------------------------------------------------------------------- commands
def _page_data(path) -> dict:
    page = path.read_text(encoding="utf-8")
    return json.loads(re.search(r"const DATA=(\{.*?\});", page).group(1))


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
    data = _page_data(tmp_path / "s.html")
    text = read_text(corpus_file)
    assert data["text"] == text[10:410] and data["offset"] == 10
    s = api.load(trained_run).surprisal(text[10:410])
    assert data["bits"][0] is None
    np.testing.assert_allclose(data["bits"][1:], s.bits[1:], atol=1e-3)
    assert data["top"][5:10] == s.top_ids[1].tolist()
    assert page.count('<span class="s') >= 399


def test_neurons_prints_ranked_units_and_writes_a_page(cli, trained_run, corpus_file, tmp_path):
    r = cli("neurons", corpus_file, "-c", trained_run, "--top", "5", "--html", "n.html",
            "--max-chars", "600")
    assert r.exit_code == 0, r
    lines = r.stdout.splitlines()
    assert lines[0].startswith("unit") and "96 units over 600 characters" in lines[0]
    rows = [ln.split(None, 2) for ln in lines[1:]]
    strengths = [abs(float(x[1])) for x in rows]
    assert strengths == sorted(strengths, reverse=True) and len(rows) >= 5
    assert all(re.fullmatch(r"[hc]1\.\d+", x[0]) for x in rows)
    data = _page_data(tmp_path / "n.html")
    assert data["first"] == rows[0][0]
    assert len(data["acts"][rows[0][0]]) == 600
    assert "feature:position in line" in data["acts"]


def test_report_draws_curves_config_vocabulary_and_samples(cli, trained_run, tmp_path):
    import shutil

    run = tmp_path / "myrun"
    shutil.copytree(trained_run, run)
    r = cli("report", run, "-n", "50")
    assert r.exit_code == 0, r
    page = (run / "report.html").read_text(encoding="utf-8")
    assert page.count("<svg") == 2
    assert page.count('data-name="train"') == 2 and page.count('data-name="validation"') == 2
    assert page.count("<h3>temperature") == 3
    assert "1 x 48" in page and "pattern.txt" in page
    n_val = sum(1 for ln in (run / "metrics.jsonl").read_text().splitlines()
                if '"val"' in ln)
    val_line = re.search(r'data-name="validation"[^>]*points="([^"]+)"', page).group(1)
    assert len(val_line.split()) == n_val


def test_info_and_list(cli, trained_run, tmp_path):
    r = cli("info", trained_run)
    assert r.exit_code == 0, r
    for word in ("lstm", "1 x 48", "parameters", "pattern.txt", "best val loss", "torch"):
        assert word in r.stdout
    meta = json.loads(cli("info", trained_run, "--json").stdout)
    assert meta["model"]["hidden_size"] == 48
    import shutil

    shutil.copytree(trained_run, tmp_path / "checkpoints" / "a")
    (tmp_path / "checkpoints" / "broken").mkdir()
    (tmp_path / "checkpoints" / "broken" / "best.safetensors").write_bytes(b"junk")
    r = cli("list", "--json")
    assert r.exit_code == 0, r
    runs = [json.loads(ln) for ln in r.stdout.splitlines()]
    assert [x["run"] for x in runs] == ["checkpoints/a"]
    best = ckpt.inspect(tmp_path / "checkpoints/a/latest.safetensors").meta["progress"]
    assert runs[0]["best_val_loss"] == best["best_val_loss"]
    r = cli("list")
    assert "checkpoints/a" in r.stdout and f"{best['best_val_loss'] / math.log(2):.3f}" in r.stdout


@pytest.mark.parametrize("args, message", [
    (["eval", "{corpus}", "--html", "out", "--start", "99999"], "past the end"),
    (["eval", "{corpus}", "--html", "."], "is a directory"),
    (["neurons", "{corpus}", "--max-chars", "1"], "Invalid value for '--max-chars'"),
    (["report", "nowhere"], "no such checkpoint"),
    (["list"], "checkpoints/ does not exist"),
    (["info", "nope.safetensors"], "no such checkpoint"),
])
def test_bad_input_is_one_line(cli, trained_run, corpus_file, args, message):
    args = [a.format(corpus=corpus_file) for a in args]
    r = cli(*args, *(["-c", trained_run] if args[0] in ("eval", "neurons") else []))
    assert r.exit_code != 0 and message in r.stderr, r
    assert r.stderr.count("\n") == 1 and r.stdout == ""


def test_api_generate_score_and_no_torch_until_scoring(trained_run):
    code = ("import sys; from charrnn import api; m = api.load(sys.argv[1]); "
            "print(repr(m.generate('the cat', 30, temperature=0, seed=1))); "
            "print(round(m.surprisal('the cat sat on the mat.').mean_bits, 3)); "
            "print('torch' in sys.modules)")
    r = subprocess.run([sys.executable, "-c", code, str(trained_run)], capture_output=True,
                       text=True, timeout=120)
    out = r.stdout.splitlines()
    assert out[0].startswith("'the cat sat on the mat.")
    assert out[2] == "False"
    m = api.load(trained_run)
    score = m.score("the cat sat on the mat.\nthe dog ate the log.\n" * 3 + "QQ")
    assert score.bits_per_char < 0.5 and score.unknown == {"Q": 2}
    assert score.chars == len("the cat sat on the mat.\nthe dog ate the log.\n" * 3) - 1


def test_api_samples_stop_and_top_p_match_the_sampler(trained_run):
    m = api.load(trained_run)
    texts = m.samples(3, "the ", length=40, temperature=1.0, seed=7, top_p=0.9, stop="\n")
    assert texts == [m.generate("the ", 40, 1.0, seed=7 + i, top_p=0.9, stop="\n")[4:]
                     for i in range(3)]
    assert all(t.endswith("\n") or len(t) == 40 for t in texts)
    assert all("\n" not in t[:-1] for t in texts)  # each ended at its first newline


def test_completion_and_examples_in_every_help(cli):
    import os
    from pathlib import Path

    import charrnn

    env = {**os.environ, "_CHARRNN_COMPLETE": "complete_bash", "COMP_WORDS": "charrnn ne",
           "COMP_CWORD": "1", "PYTHONPATH": str(Path(charrnn.__file__).parents[1])}
    r = subprocess.run([sys.executable, "-m", "charrnn"], env=env, capture_output=True,
                       text=True, timeout=60)
    assert r.returncode == 0 and r.stdout.split() == ["neurons"], r
    r = cli("--show-completion", "bash")
    assert "complete -o default -F _charrnn_completion charrnn" in r.stdout
    for command in ("train", "sample", "eval", "neurons", "report", "info", "list"):
        r = cli(command, "--help")
        assert r.exit_code == 0 and "Examples" in r.stdout, (command, r)


@pytest.mark.parametrize("cell", ["gru", "lstm"])
def test_activations_of_every_layer_match_torch(cell):
    from charrnn.config import ModelConfig
    from charrnn.model import CharRNN

    torch.manual_seed(0)
    cfg = ModelConfig(vocab_size=7, cell=cell, num_layers=2, hidden_size=6, embed_size=4,
                      dropout=0.0)
    model = CharRNN(cfg).eval()
    engine = NumpyRNN(cfg, {k: v.numpy() for k, v in model.state_dict().items()})
    ids = np.random.default_rng(1).integers(0, 7, 50)
    acts = activations(engine, ids, streams=1)
    with torch.no_grad():
        out, state = model.rnn(model.embed(torch.from_numpy(ids[None, :])))
    h_n, c_n = state if cell == "lstm" else (state, None)
    want_names = [f"h{i}.{u}" for i in (1, 2) for u in range(6)]
    if cell == "lstm":
        want_names += [f"c{i}.{u}" for i in (1, 2) for u in range(6)]
    assert acts.names == want_names
    np.testing.assert_allclose(acts.values[:, 6:12], out[0].numpy(), atol=1e-5)  # top layer
    np.testing.assert_allclose(acts.values[-1, :6], h_n[0, 0].numpy(), atol=1e-5)
    if cell == "lstm":
        np.testing.assert_allclose(acts.values[-1, 12:], c_n[:, 0].reshape(-1).numpy(),
                                   atol=1e-5)


def test_page_text_cannot_break_out_of_the_page():
    from charrnn.html_pages import surprisal_page

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


def test_validation_trend_sparkline(monkeypatch):
    import io

    from charrnn.progress import sparkline

    monkeypatch.setattr(sys, "stderr", io.TextIOWrapper(io.BytesIO(), encoding="utf-8"))
    assert sparkline([4.0, 3.0, 2.0, 1.0]) == "\u2588\u2586\u2583\u2581"
    assert sparkline([2.0]) == "" and sparkline([2.0, 2.0]) == "\u2581\u2581"
    assert len(sparkline([float(i) for i in range(30)], width=12)) == 12
    monkeypatch.setattr(sys, "stderr", io.TextIOWrapper(io.BytesIO(), encoding="ascii"))
    assert sparkline([4.0, 3.0]) == ""  # a terminal that cannot show the blocks gets none


def test_correlations_equal_numpy_corrcoef():
    from charrnn.neurons import correlations

    rng = np.random.default_rng(3)
    values, feats = rng.normal(size=(200, 6)), rng.normal(size=(200, 3))
    feats[:, 2] = 1.0  # constant: no correlation defined
    r = correlations(values.astype(np.float32), feats)
    want = np.corrcoef(np.c_[feats[:, :2], values], rowvar=False)[:2, 2:]
    np.testing.assert_allclose(r[:2], want, atol=1e-6)
    assert np.isnan(r[2]).all()
