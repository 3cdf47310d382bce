"""How far back the model looks (score.context): loss with the state reset k characters
before each scored character, and nanoGPT's windowed protocol."""

from __future__ import annotations

import random

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from charrnn.config import ModelConfig
from charrnn.model.network import CharRNN
from charrnn.score.context import context_use, windowed_score
from charrnn.score.loss import position_nll, score_ids


def _model(cell: str = "lstm") -> CharRNN:
    torch.manual_seed(2)
    return CharRNN(ModelConfig(vocab_size=9, cell=cell, num_layers=2, hidden_size=16,
                               embed_size=6, dropout=0.0)).eval()


def test_each_context_is_exactly_k_characters_from_a_zero_state():
    m = _model("gru")
    ids = np.random.default_rng(0).integers(0, 9, 300)
    u = context_use(m, ids, max_context=8, positions=20)
    assert u.contexts == [1, 2, 4, 8] and u.positions == 20 and u.full_context == 16
    at = 16 + np.linspace(0, 300 - 1 - 16 - 1, 20).round().astype(int)
    full = position_nll(m, ids, burn_in=16)[at]
    with torch.no_grad():
        for k, loss, error in zip(u.contexts, u.losses, u.errors, strict=True):
            by_hand = np.array([
                float(F.cross_entropy(m(torch.from_numpy(ids[j - k + 1:j + 1])[None])[0]
                                      [0, -1], torch.tensor(ids[j + 1]))) for j in at])
            assert loss == pytest.approx(by_hand.mean(), rel=1e-5), k
            assert error == pytest.approx((by_hand - full).std(ddof=1) / np.sqrt(20),
                                          rel=1e-4), k
    assert u.full == pytest.approx(full.mean(), rel=1e-9)


def test_position_losses_are_the_eval_losses_by_position():
    m = _model()
    ids = np.random.default_rng(1).integers(0, 9, 3000)
    nll = position_nll(m, ids, burn_in=32)
    assert not np.isnan(nll).any()
    assert nll.sum() == pytest.approx(score_ids(m, ids, burn_in=32).nats, rel=1e-6)


def test_nanogpt_windows_each_start_from_a_fresh_state():
    m = _model()
    ids = np.random.default_rng(2).integers(0, 9, 1000)
    for window in (16, 100, 999, 5000):
        s = windowed_score(m, ids, window, batch=4)
        pieces = [score_ids(m, ids[a:a + window + 1], streams=1)
                  for a in range(0, len(ids) - 1, window)]
        assert s.chars == 999 == sum(p.chars for p in pieces)
        assert s.nats == pytest.approx(sum(p.nats for p in pieces), rel=1e-6), window


def test_a_model_trained_on_a_copy_task_uses_context_as_long_as_the_dependency(
        cli, tmp_path):
    """Each line is a random key, dots, and the key again: its copy is 11 characters after
    the key (d = 11), predictable only with at least that much context."""
    from charrnn.model.network import load_model
    from charrnn.runs import folder as runfolder
    from charrnn.score.texts import eval_text

    rng = random.Random(0)
    keys = ["".join(rng.choice("abcd") for _ in range(4)) for _ in range(3000)]
    (tmp_path / "copy.txt").write_text("".join(k + "." * 7 + k + "\n" for k in keys))
    r = cli("train", "copy.txt", "-o", "copy", "--hidden-size", "64", "--layers", "1",
            "--embed-size", "8", "--max-steps", "600", "-b", "16", "-t", "32", "--dropout",
            "0", "--preview", "0", "--precision", "fp32", "--eval-every", "600")
    assert r.exit_code == 0, r
    c = runfolder.open_checkpoint(tmp_path / "copy")
    u = context_use(load_model(c), eval_text(c, None).ids, max_context=64, positions=400)
    losses = dict(zip(u.contexts, u.losses, strict=True))
    assert losses[8] - u.full > 0.5  # 8 characters cannot see the key
    assert u.used(0.1) in (16, 32)  # the model uses what the dependency needs ...
    assert u.full < 0.6  # ... having learnt most of the copy (0.35 is perfect)


def test_eval_window_reports_the_nanogpt_protocol(cli, trained_run, corpus_file):
    import json

    from charrnn.model.network import load_model
    from charrnn.runs import folder as runfolder
    from charrnn.score.texts import eval_text

    r = cli("eval", corpus_file, "-c", trained_run, "--window", "50", "--json")
    assert r.exit_code == 0, r
    report = json.loads(r.stdout)
    c = runfolder.open_checkpoint(trained_run)
    expect = windowed_score(load_model(c), eval_text(c, str(corpus_file)).ids, 50)
    assert report["window"] == 50 and report["chars"] == expect.chars
    assert report["loss"] == pytest.approx(expect.loss, rel=1e-6)
    carried = json.loads(cli("eval", corpus_file, "-c", trained_run, "--json").stdout)
    assert "window" not in carried and carried["loss"] < report["loss"]  # less context
    text = cli("eval", corpus_file, "-c", trained_run, "--window", "50").stdout
    assert ("protocol     windows of 50 characters, each read from a fresh state, every "
            "position averaged (nanoGPT's)") in text
    r = cli("eval", "-c", trained_run, "--window", "50", "--adapt")
    assert r.exit_code == 2 and r.stderr == ("charrnn: error: --window and --adapt score "
                                             "differently; give one\n"), r
