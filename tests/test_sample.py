import numpy as np
import pytest

from charrnn.errors import CharRNNError, ConfigError
from charrnn.sample import SampleConfig, Sampler, pick


def test_seeded_samples_are_reproducible(trained_run):
    s = Sampler.load(trained_run)
    a = "".join(s.generate("the ", SampleConfig(length=200, seed=7)))
    b = "".join(s.generate("the ", SampleConfig(length=200, seed=7)))
    c = "".join(s.generate("the ", SampleConfig(length=200, seed=8)))
    assert a == b and a != c and len(a) == 200


def test_temperature_zero_is_argmax_of_the_carried_state(trained_run):
    s = Sampler.load(trained_run)
    greedy = "".join(s.generate("the ", SampleConfig(length=60, temperature=0)))
    # the same walk by hand: feed the prime, then always the most likely character
    logits, state = s.engine.warm(s.start_ids("the ")[None, :], s.engine.init_state(1))
    out = []
    for _ in range(60):
        nxt = logits.argmax(axis=1)
        out.append(s.vocab.chars[int(nxt[0])])
        logits, state = s.engine.step(nxt, state)
    assert greedy == "".join(out)
    top1 = "".join(s.generate("the ", SampleConfig(length=60, temperature=1.0, top_k=1, seed=3)))
    assert top1 == greedy


def test_trained_model_reproduces_its_pattern(trained_run):
    s = Sampler.load(trained_run)
    text = "".join(s.generate("the cat ", SampleConfig(length=40, temperature=0)))
    assert text.startswith("sat on the mat.")


def test_pick_stays_in_vocabulary_and_respects_top_k():
    rng = np.random.default_rng(0)
    logits = rng.normal(size=(64, 10)) * 3
    for temp in (0.1, 1.0, 5.0):
        ids = pick(logits, rng.random(64), temp, 0)
        assert ids.shape == (64,) and ids.min() >= 0 and ids.max() < 10
    top3 = np.argsort(logits, axis=1)[:, -3:]
    for _ in range(20):
        ids = pick(logits, rng.random(64), 2.0, 3)
        assert all(i in row for i, row in zip(ids, top3, strict=True))


def test_unknown_prime_characters_are_named(trained_run):
    s = Sampler.load(trained_run)
    with pytest.raises(CharRNNError, match="never saw: 'QZ'"):
        next(s.generate("QZ the"))


@pytest.mark.parametrize("kw", [{"temperature": -1}, {"temperature": float("nan")},
                                {"length": -1}, {"top_k": -2}])
def test_bad_sample_settings(kw):
    with pytest.raises(ConfigError):
        SampleConfig(**kw)
