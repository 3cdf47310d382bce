import json

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from charrnn.errors import CharRNNError
from charrnn.generate.decoding import Decoding, SampleConfig
from charrnn.generate.pick import pick
from charrnn.generate.sampler import END, Sampler, render, render_jsonl

GREEDY = Decoding(temperature=0)


def test_seeded_samples_are_reproducible(trained_run):
    s = Sampler.load(trained_run)
    a = "".join(s.generate("the ", SampleConfig(length=200, seed=7)))
    b = "".join(s.generate("the ", SampleConfig(length=200, seed=7)))
    c = "".join(s.generate("the ", SampleConfig(length=200, seed=8)))
    assert a == b and a != c and len(a) == 200


def test_temperature_zero_is_argmax_of_the_carried_state(trained_run):
    s = Sampler.load(trained_run)
    greedy = "".join(s.generate("the ", SampleConfig(length=60, decoding=GREEDY)))
    # the same walk by hand: feed the prime, then always the most likely character
    logits, state = s.engine.warm(s.start_ids("the ")[None, :], s.engine.init_state(1))
    out = []
    for _ in range(60):
        nxt = logits.argmax(axis=1)
        out.append(s.vocab.chars[int(nxt[0])])
        logits, state = s.engine.step(nxt, state)
    assert greedy == "".join(out)
    top1 = "".join(s.generate("the ", SampleConfig(length=60, seed=3,
                                                   decoding=Decoding(1.0, top_k=1))))
    assert top1 == greedy


def test_trained_model_reproduces_its_pattern(trained_run):
    s = Sampler.load(trained_run)
    text = "".join(s.generate("the cat ", SampleConfig(length=40, decoding=GREEDY)))
    assert text.startswith("sat on the mat.")


def test_pick_stays_in_vocabulary_and_respects_top_k():
    rng = np.random.default_rng(0)
    logits = rng.normal(size=(64, 10)) * 3
    for temp in (0.1, 1.0, 5.0):
        ids = pick(logits, rng.random(64), Decoding(temp, 0))
        assert ids.shape == (64,) and ids.min() >= 0 and ids.max() < 10
    top3 = np.argsort(logits, axis=1)[:, -3:]
    for _ in range(20):
        ids = pick(logits, rng.random(64), Decoding(2.0, 3))
        assert all(i in row for i, row in zip(ids, top3, strict=True))


def test_unknown_prime_characters_are_named(trained_run):
    s = Sampler.load(trained_run)
    with pytest.raises(CharRNNError, match="never saw: 'QZ'"):
        next(s.generate("QZ the"))


# ----------------------------------------------------------------------------- pick
def _logits(probs):
    return np.log(np.asarray([probs], dtype=np.float32))


def _choices(logits, n=1000, **kw):
    """The ids pick gives over an even grid of u: how it cuts [0, 1) between characters."""
    u = (np.arange(n) + 0.5) / n
    return np.array([pick(logits, [x], Decoding(**kw))[0] for x in u])


def test_pick_inverts_the_distribution_at_u():
    ids = _choices(_logits([0.5, 0.3, 0.15, 0.05]))
    assert np.bincount(ids, minlength=4).tolist() == [500, 300, 150, 50]
    assert (np.diff(ids) >= 0).all()  # u sweeps the cumulative distribution in order


@pytest.mark.parametrize("top_p, kept", [(0.45, [0]), (0.75, [0, 1]), (0.85, [0, 1, 2]),
                                         (1.0, [0, 1, 2, 3])])
def test_top_p_keeps_the_smallest_nucleus(top_p, kept):
    probs = np.array([0.15, 0.5, 0.05, 0.3])  # shuffled: the nucleus is by probability
    order = [1, 3, 0, 2]
    ids = _choices(np.log(probs[None, :].astype(np.float32)), top_p=top_p)
    counts = np.bincount(ids, minlength=4)
    nucleus = [order[i] for i in kept]
    assert set(np.flatnonzero(counts)) == set(nucleus)
    renormalised = probs[nucleus] / probs[nucleus].sum()
    np.testing.assert_allclose(counts[nucleus] / 1000, renormalised, atol=2e-3)


def test_temperature_sharpens_and_flattens():
    logits = _logits([0.5, 0.3, 0.15, 0.05])
    cold = np.bincount(_choices(logits, temperature=0.5), minlength=4)
    hot = np.bincount(_choices(logits, temperature=2.0), minlength=4)
    p = np.array([0.5, 0.3, 0.15, 0.05])
    np.testing.assert_allclose(cold / 1000, p**2 / (p**2).sum(), atol=2e-3)
    np.testing.assert_allclose(hot / 1000, p**0.5 / (p**0.5).sum(), atol=2e-3)
    assert pick(logits, [0.99], Decoding(temperature=0))[0] == 0  # greedy ignores u


@given(st.lists(st.floats(-20, 20), min_size=2, max_size=40), st.floats(0, 0.999999),
       st.integers(0, 45), st.floats(0.01, 1.0), st.floats(0.05, 5.0))
def test_pick_only_returns_characters_the_filters_allow(values, u, top_k, top_p, temp):
    logits = np.array([values], dtype=np.float32)
    i = int(pick(logits, [u], Decoding(temp, top_k, top_p))[0])
    rank = int((logits[0] > logits[0, i]).sum())  # likelier characters than the pick
    assert 0 <= i < len(values)
    assert top_k == 0 or rank < top_k
    z = (logits[0].astype(np.float64) - logits[0].max()) / temp
    p = np.exp(z)
    if 0 < top_k < len(values):
        p[z < np.sort(z)[-top_k]] = 0
    p /= p.sum()
    assert p[p > p[i]].sum() < top_p + 1e-9  # inside the nucleus of the top-k


@pytest.mark.parametrize("settings", [(0.9, 5, 0.8), (1.0, 0, 1.0), (0.7, 0, 1.0)])
def test_pick_rows_are_independent(settings):
    """A row alone (batch 1 has its own fast path) picks what it picks in a batch."""
    rng = np.random.default_rng(1)
    logits, u = rng.normal(size=(200, 20)).astype(np.float32) * 3, rng.random(200)
    batch = pick(logits, u, Decoding(*settings))
    alone = [pick(logits[r:r + 1], u[r:r + 1], Decoding(*settings))[0] for r in range(200)]
    assert batch.tolist() == alone


# ----------------------------------------------------------------------------- Sampler
def test_each_batched_sample_is_the_single_run_with_its_seed(trained_run):
    s = Sampler.load(trained_run)
    config = SampleConfig(length=120, seed=40, num_samples=5, stop=("log.",),
                          decoding=Decoding(temperature=1.3))
    texts = [[] for _ in range(5)]
    ends = []
    for i, ch in s.stream("the ", config):
        if ch == END:
            ends.append(i)
        else:
            texts[i].append(ch)
    assert sorted(ends) == list(range(5))
    for i in range(5):
        alone = SampleConfig(length=120, seed=40 + i, stop=("log.",),
                             decoding=Decoding(temperature=1.3))
        assert "".join(texts[i]) == "".join(s.generate("the ", alone))
    assert len({"".join(t) for t in texts}) > 1  # different seeds, different samples


def test_stop_ends_right_after_the_stop_string(trained_run):
    s = Sampler.load(trained_run)
    free = "".join(s.generate("the ", SampleConfig(length=300, seed=2)))
    for stop in ("mat.", "\n", "log.\nthe"):
        cut = "".join(s.generate("the ", SampleConfig(length=300, seed=2, stop=(stop,))))
        assert cut == free[:free.index(stop) + len(stop)]
    both = "".join(s.generate("the ", SampleConfig(length=300, seed=2, stop=("log.", "mat."))))
    assert both == free[:min(free.index("log."), free.index("mat.")) + 4]
    # only generated text counts: a stop string inside the prime does not end the sample
    greedy = "".join(s.generate("the cat ", SampleConfig(length=15, stop=("cat",),
                                                         decoding=GREEDY)))
    assert greedy == "sat on the mat."


def test_length_caps_a_sample_that_never_meets_its_stop(trained_run):
    s = Sampler.load(trained_run)
    text = "".join(s.generate("the ", SampleConfig(length=50, seed=1, stop=("QQ",))))
    assert len(text) == 50


def test_prime_is_normalised_and_unknown_characters_can_be_dropped(trained_run):
    s = Sampler.load(trained_run)
    assert s.clean_prime("the cat\r\nthe") == ("the cat\nthe", "")
    with pytest.raises(CharRNNError, match="never saw: 'QZ'"):
        s.clean_prime("QZ the Q")
    assert s.clean_prime("QZ the Q", drop_unknown=True) == (" the ", "QZ")


def test_render_streams_the_current_sample_and_holds_later_ones():
    events = [(0, "a"), (1, "x"), (0, "b"), (1, "y"), (1, END), (0, "c"), (0, END)]
    pieces = list(render(iter(events), 2, head="P:", separator="|"))
    assert "".join(pieces) == "P:abc|P:xy"
    assert pieces[:3] == ["P:", "a", "b"]  # sample 0 is not held back by sample 1
    late = [(1, "x"), (1, END), (2, "z"), (0, "a"), (0, END), (2, END)]
    assert "".join(render(iter(late), 3, separator="\n")) == "a\nx\nz"


def test_render_jsonl_gives_one_object_per_sample_in_order():
    events = [(1, "x"), (0, "a"), (1, END), (0, "b"), (0, END)]
    lines = list(render_jsonl(iter(events), 2, {"temperature": 0.5, "stop": ["b"]}, seed=7))
    assert [json.loads(line) for line in lines] == [
        {"index": 0, "seed": 7, "text": "ab", "stopped": True, "temperature": 0.5,
         "stop": ["b"]},
        {"index": 1, "seed": 8, "text": "x", "stopped": False, "temperature": 0.5,
         "stop": ["b"]}]
