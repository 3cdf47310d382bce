"""Dynamic evaluation (charrnn/adapt.py, eval --adapt): a segment is scored before the
model learns from it, never after; adaptation pays on a text that repeats."""

from __future__ import annotations

import json
import random

import numpy as np
import pytest

from charrnn import api
from charrnn.config import AdaptConfig
from charrnn.data.batches import EvalStreams
from charrnn.model.network import load_model
from charrnn.runs import folder as runfolder
from charrnn.score.adapt import Adapter, adapted_nll
from charrnn.score.loss import score_ids
from tests.conftest import PATTERN


@pytest.fixture(scope="module")
def model(trained_run):
    return load_model(runfolder.open_checkpoint(trained_run))


@pytest.fixture(scope="module")
def vocab(trained_run):
    return runfolder.open_checkpoint(trained_run).vocab


def _unseen(n: int, seed: int = 0) -> str:
    """Known characters in an order the model never saw."""
    rng = random.Random(seed)
    return "".join(rng.choice(sorted(set(PATTERN))) for _ in range(n))


def test_first_segment_is_scored_exactly_as_static_eval(model, vocab):
    text = _unseen(300) * 2
    ids = vocab.encode(text)
    static = adapted_nll(model, [ids], AdaptConfig(segment=40, streams=1, lr=0.0))
    assert static.sum() == pytest.approx(score_ids(model, ids, streams=1).nats, rel=1e-6)
    adapted = adapted_nll(model, [ids], AdaptConfig(segment=40, streams=1, lr=3e-3))
    assert np.allclose(adapted[:40], static[:40], rtol=0, atol=1e-5)  # before any update
    assert not np.allclose(adapted[40:80], static[40:80], rtol=0, atol=1e-3)  # after one


@pytest.mark.parametrize("streams", [1, 3])
def test_no_character_is_scored_by_weights_that_learned_from_it(model, vocab, streams):
    """Change one character: every score before it in time (earlier columns, in every
    stream) stays exactly the same, so no update ever saw a character before scoring it."""
    text = _unseen(1200, seed=1)
    p = 800  # inside the last stream's scored part, not at a segment edge
    other = text[:p] + ("a" if text[p] != "a" else "t") + text[p + 1:]
    cfg = AdaptConfig(segment=32, streams=streams, burn_in=64, lr=1e-2)
    es, es2 = (EvalStreams.build(vocab.encode(t), streams, cfg.burn_in) for t in (text, other))
    first = int(np.nonzero((es.x != es2.x).any(0) | (es.y != es2.y).any(0))[0].min())
    assert first > 0 and first % cfg.segment  # the change lands mid-segment
    a, b = Adapter(model, cfg).score_and_learn(es), Adapter(model, cfg).score_and_learn(es2)
    assert np.array_equal(a[:, :first], b[:, :first])
    assert not np.allclose(a[:, first + cfg.segment:], b[:, first + cfg.segment:])


def test_adaptation_helps_on_a_repeated_text(model, vocab):
    ids = vocab.encode(_unseen(250, seed=2) * 6)
    static = adapted_nll(model, [ids], AdaptConfig(streams=1, lr=0.0))
    adapted = adapted_nll(model, [ids], AdaptConfig(streams=1))
    first, later = slice(0, 249), slice(500, None)
    assert adapted[first].mean() == pytest.approx(static[first].mean(), abs=0.1)
    assert adapted[later].mean() < static[later].mean() - 0.3


def test_frozen_adapter_scores_as_eval_with_several_streams(model, vocab):
    """Same streams, burn-in and mask as plain eval: lr 0 gives eval's figure exactly."""
    ids = vocab.encode(_unseen(3000, seed=3))
    frozen = adapted_nll(model, [ids], AdaptConfig(streams=4, lr=0.0))
    assert frozen.sum() == pytest.approx(score_ids(model, ids, streams=4).nats, rel=1e-6)
    assert len(frozen) == len(ids) - 1


def test_api_score_adapt_returns_adapted_with_static_attached(trained_run):
    m = api.load(trained_run)
    text = _unseen(200, seed=4) * 4 + "\u00e9"  # one unknown character, skipped
    plain = m.score(text)
    s = m.score(text, adapt=AdaptConfig(streams=1))
    assert s.static.chars == s.chars == plain.chars
    assert s.static.unknown == s.unknown == plain.unknown == {"\u00e9": 1}
    assert s.loss < s.static.loss
    assert m.score(text).loss == plain.loss  # the loaded model itself was not changed


def test_cli_eval_adapt_prints_both_and_json_carries_both(cli, trained_run, tmp_path):
    f = tmp_path / "t.txt"
    f.write_text(_unseen(200, seed=5) * 4)
    r = cli("eval", f, "-c", trained_run, "--adapt", "--adapt-streams", "1")
    assert r.exit_code == 0, r
    loss = next(ln for ln in r.stdout.splitlines() if ln.startswith("loss"))
    static, adapted = float(loss.split()[1]), float(loss.split()[-1])
    assert "adapted" in loss and adapted < static
    assert "dynamic evaluation: segment 50, 1 streams" in r.stdout
    j = json.loads(cli("eval", f, "-c", trained_run, "--adapt", "--adapt-streams", "1",
                       "--json").stdout)
    assert j["loss"] == pytest.approx(static, abs=1e-4)
    assert j["adapted"]["loss"] == pytest.approx(adapted, abs=1e-4)
    assert j["adapt"]["segment"] == 50 and j["adapted"]["chars"] == j["chars"]
    plain = json.loads(cli("eval", f, "-c", trained_run, "--json").stdout)
    assert "adapted" not in plain


@pytest.mark.parametrize("args", [["--adapt-lr", "-1"], ["--adapt-decay", "2"],
                                  ["--adapt-segment", "0"], ["--adapt-streams", "0"]])
def test_cli_eval_adapt_bad_options_are_usage_errors(cli, trained_run, corpus_file, args):
    r = cli("eval", corpus_file, "-c", trained_run, "--adapt", *args)
    assert r.exit_code == 2 and len(r.stderr.strip().splitlines()) == 1, r
