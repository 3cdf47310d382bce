"""The controls that act before ``pick``: DRY against a direct reading of its definition,
a regex's guarantee, bans and biases, and how all of them compose with batching."""

from __future__ import annotations

import importlib.util
import re

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from charrnn.errors import ConfigError
from charrnn.generate.decoding import Decoding, SampleConfig
from charrnn.generate.pick import pick
from charrnn.generate.sampler import END, Sampler
from charrnn.generate.steer import Rules, Steer

needs_regex = pytest.mark.skipif(importlib.util.find_spec("outlines_core") is None,
                                 reason="the regex extra (outlines-core) is not installed")
CHARS = tuple("\nabc:")


def dry_reference(text: list[int], breakers: set[int], allowed: int, multiplier: float,
                  base: float, vocab: int) -> np.ndarray:
    """llama.cpp's DRY as text-generation-webui first wrote it: for every earlier
    occurrence of the last character, extend the match backwards (never over a breaker)
    and penalise the character that followed by the longest match."""
    penalty = np.zeros(vocab)
    last = text[-1]
    if last in breakers:
        return penalty
    longest: dict[int, int] = {}
    for i in range(len(text) - 1):
        if text[i] != last or text[i + 1] in breakers:
            continue
        m = 1
        while i - m >= 0 and text[i - m] == text[-(m + 1)] and text[-(m + 1)] not in breakers:
            m += 1
        longest[text[i + 1]] = max(longest.get(text[i + 1], 0), m)
    for c, m in longest.items():
        if m >= allowed:
            penalty[c] = multiplier * base ** (m - allowed)
    return penalty


@settings(max_examples=150, deadline=None)
@given(st.lists(st.integers(0, 4), min_size=1, max_size=120), st.integers(1, 5),
       st.integers(0, 40))
def test_dry_matches_its_definition_at_every_step(text, allowed, split):
    """Fed one character at a time (the first ``split`` as the prime, then forked), the
    penalties equal the definition's after every character."""
    decoding = Decoding(dry_multiplier=0.5, dry_base=1.5, dry_allowed_length=allowed,
                        dry_breakers="\n:")
    rules = Rules(decoding, CHARS)
    steer = rules.start(text[:split]).take([0, 0])  # forked: both rows go on alike
    for t in range(split, len(text)):
        steer.feed(np.array([text[t], text[t]]))
    for t in range(1, len(text) + 1):  # and grown from nothing, step by step
        one = rules.start(text[:t])
        want = dry_reference(text[:t], {0, 4}, allowed, 0.5, 1.5, len(CHARS))
        got = one.adjust(np.zeros((1, len(CHARS)), np.float32), 10)[0]
        np.testing.assert_allclose(-got, want, atol=1e-12)
    want = dry_reference(text, {0, 4}, allowed, 0.5, 1.5, len(CHARS))
    got = steer.adjust(np.zeros((2, len(CHARS)), np.float32), 10)
    np.testing.assert_allclose(-got, np.stack([want, want]), atol=1e-12)


def test_dry_penalty_is_capped_finite():
    rules = Rules(Decoding(dry_multiplier=1, dry_base=3, dry_allowed_length=1), CHARS)
    steer = rules.start([1, 2] * 400)
    z = steer.adjust(np.zeros((1, len(CHARS)), np.float32), 10)
    assert np.isfinite(z).all() and z.min() < -1e30


def _texts(sampler, prime, config):
    texts = [""] * (config.num_samples * (1 if isinstance(prime, str) else len(prime)))
    for i, ch in sampler.stream(prime, config):
        if ch != END:
            texts[i] += ch
    return texts


@needs_regex
@pytest.mark.parametrize("pattern, stops", [
    ("[a-z]{3,8}", ()), ("(the|a) [cdm][a-z]+\\.", ()), ("[a-z ]+", ("\n",)),
    ("t[a-z]* [a-z]+", ("\n", "og")), ("x?(cat|dog)", ()), ("[^\n]{5,}", ()),
])
def test_every_sample_matches_the_regex(trained_run, pattern, stops):
    """Batched, with top-k/top-p/min-p/DRY, cut by its length or not: each sample fully
    matches, or is a match followed by one of the stop strings."""
    s = Sampler.load(trained_run)
    decoding = Decoding(temperature=1.3, top_p=0.95, min_p=0.01, regex=pattern,
                        dry_multiplier=0.5, dry_allowed_length=3)
    for length in (6, 40):
        config = SampleConfig(length=length, seed=3, num_samples=12, stop=stops,
                              decoding=decoding)
        for text in _texts(s, "the ", config):
            assert len(text) <= length
            assert re.fullmatch(pattern, text) or any(
                text.endswith(x) and re.fullmatch(pattern, text[:-len(x)]) for x in stops
            ), (pattern, text)


@needs_regex
def test_a_regex_ends_the_sample_when_it_cannot_go_on(trained_run):
    s = Sampler.load(trained_run)
    texts = _texts(s, "", SampleConfig(length=100, seed=1, num_samples=4,
                                       decoding=Decoding(regex="(cat|dog)s?")))
    assert all(t in ("cat", "dog", "cats", "dogs") for t in texts), texts
    greedy = Decoding(temperature=0, regex="the [a-z]+\n")
    assert _texts(s, "", SampleConfig(length=30, decoding=greedy))[0] in (
        "the cat\n", "the dog\n", "the mat\n", "the log\n")


@needs_regex
def test_stop_after_a_match_ends_it_and_a_stop_inside_does_not(trained_run):
    s = Sampler.load(trained_run)
    config = SampleConfig(length=60, seed=2, num_samples=8, stop="\n",
                          decoding=Decoding(regex="[a-z .]+\n[a-z]+"))
    for text in _texts(s, "the cat ", config):
        first, _, rest = text.partition("\n")
        assert rest and re.fullmatch("[a-z]+\n?", rest), text  # went on past the first \n


@needs_regex
@pytest.mark.parametrize("pattern, length, message", [
    ("QQ", 10, "cannot match any text of the characters this model knows (it never saw 'Q')"),
    ("[a-z]{20}", 10, "regex needs at least 20 characters; length is 10"),
    ("(?<=a)b", 10, "cannot be made into an automaton"),
    ("a(", 10, "is not a regular expression"),
])
def test_a_regex_that_cannot_be_met_is_refused_before_sampling(trained_run, pattern, length,
                                                                message):
    s = Sampler.load(trained_run)
    with pytest.raises(ConfigError, match=re.escape(message)):
        s.stream("the", SampleConfig(length=length, decoding=Decoding(regex=pattern)))


def test_banned_and_biased_characters(trained_run):
    s = Sampler.load(trained_run)
    texts = _texts(s, "the ", SampleConfig(length=300, seed=5, num_samples=3,
                                           decoding=Decoding(ban="ta\n", temperature=1.5)))
    assert not set("".join(texts)) & set("ta\n")
    forced = Decoding(logit_bias={"g": 100.0, "z": -5}, temperature=1.0)  # z: never seen
    assert _texts(s, "", SampleConfig(length=50, seed=1, decoding=forced))[0] == "g" * 50
    with pytest.raises(ConfigError, match="ban leaves no character"):
        Rules(Decoding(ban="".join(s.vocab.chars)), s.vocab.chars)


@needs_regex
def test_controls_keep_each_batched_sample_equal_to_its_seed_alone(trained_run):
    s = Sampler.load(trained_run)
    decoding = Decoding(temperature=1.2, min_p=0.05, dry_multiplier=1.0,
                        dry_allowed_length=4, regex="[a-z .\n]+", ban="g")
    batch = _texts(s, "the ", SampleConfig(length=120, seed=10, num_samples=4,
                                           stop="log", decoding=decoding))
    alone = [_texts(s, "the ", SampleConfig(length=120, seed=10 + i, stop="log",
                                            decoding=decoding))[0] for i in range(4)]
    assert batch == alone and len(set(batch)) > 1


def test_dry_breaks_a_greedy_loop(trained_run):
    s = Sampler.load(trained_run)
    plain = _texts(s, "the ", SampleConfig(length=400, decoding=Decoding(temperature=0)))[0]
    dry = _texts(s, "the ", SampleConfig(length=400, decoding=Decoding(
        temperature=0, dry_multiplier=2.0, dry_allowed_length=8)))[0]

    def longest_repeat(t: str) -> int:
        return max((n for n in range(1, len(t)) if any(
            t.find(t[i:i + n], i + 1) >= 0 for i in range(len(t) - n))), default=0)

    assert longest_repeat(plain) > 300 and 0 < longest_repeat(dry) < 60


def test_min_p_keeps_what_reaches_its_share_of_the_top():
    probs = np.array([[0.5, 0.3, 0.15, 0.05]])
    u = (np.arange(1000) + 0.5) / 1000
    kept = {int(pick(np.log(probs), [x], Decoding(min_p=0.2))[0]) for x in u}
    assert kept == {0, 1, 2}  # 0.05 < 0.2 * 0.5
    assert {int(pick(np.log(probs), [x], Decoding(min_p=1.0))[0]) for x in u} == {0}
    both = {int(pick(np.log(probs), [x], Decoding(min_p=0.5, temperature=2.0))[0]) for x in u}
    assert both == {0, 1, 2}  # after temperature 2: sqrt(0.15/0.5) = 0.55 >= 0.5


@needs_regex
def test_steer_join_and_take_keep_rows_apart():
    rules = Rules(Decoding(dry_multiplier=1, dry_allowed_length=1, regex="[abc:]*"), CHARS)
    a, b = rules.start([1, 2, 1]), rules.start([3, 3])
    both = Steer.join([a.take([0, 0]), b])
    assert len(both) == 3
    z = both.adjust(np.zeros((3, len(CHARS)), np.float32), 5)
    assert z[0, 2] < 0 and z[1, 2] < 0 and z[2, 2] == 0 and z[2, 3] < 0  # 2 followed 1
    assert (z[:, 0] == -np.inf).all()  # the regex has no newline
    one, two, three = both.split()
    one.feed(np.array([2]))
    assert len(one) == len(two) == len(three) == 1


def test_a_missing_regex_extra_is_one_line(cli, trained_run, monkeypatch):
    import importlib.util

    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec",
                        lambda name, *a: None if name == "outlines_core" else real(name, *a))
    r = cli("sample", "-c", trained_run, "--regex", "[a-z]+", "-n", "5")
    assert r.exit_code == 1 and r.stdout == "", r
    assert r.stderr == ("charrnn: error: --regex needs the regex extra: pip install "
                        "'charrnn[regex]'\n")


@needs_regex
def test_a_match_that_no_longer_fits_ends_the_sample(trained_run):
    """(ab)*-like: a sample with room for half a repeat ends at the last full match."""
    s = Sampler.load(trained_run)
    for length in (5, 6, 7):
        config = SampleConfig(length=length, seed=1, num_samples=3,
                              decoding=Decoding(regex="(the )*", temperature=2.0))
        assert _texts(s, "", config) == ["the " * (length // 4)] * 3


@needs_regex
def test_a_ban_is_part_of_the_regex(trained_run):
    s = Sampler.load(trained_run)
    with pytest.raises(ConfigError, match="cannot match any text of the characters this "
                                          "model knows and --ban allows"):
        s.stream("", SampleConfig(decoding=Decoding(regex="(cat|dog)", ban="ao")))
    texts = _texts(s, "", SampleConfig(length=40, seed=3, num_samples=6,
                                       decoding=Decoding(regex="(cat|dog)", ban="c")))
    assert texts == ["dog"] * 6


ATOMS = st.sampled_from(["a", "b", "c", " ", "[ab]", "[^a]", ".", "(ab)", "(a|bc)", "(c|)"])


@st.composite
def patterns(draw, depth: int = 2) -> str:
    """Small regular expressions over 'abc ': atoms, repetition, concatenation, choice."""
    parts = []
    for _ in range(draw(st.integers(1, 3))):
        part = draw(ATOMS) if depth == 0 else draw(ATOMS | patterns(depth=depth - 1).map(
            lambda p: f"({p})"))
        parts.append(part + draw(st.sampled_from(["", "", "*", "+", "?", "{1,2}", "{2}"])))
    joined = "".join(parts)
    return joined if depth == 0 or not draw(st.booleans()) else joined + "|" + draw(
        patterns(depth=0))


@needs_regex
@settings(max_examples=25, deadline=None)
@given(patterns())
def test_the_automaton_accepts_what_pythons_re_fullmatches(pattern):
    """Every text of up to 5 of the characters: a match for the automaton exactly when
    re.fullmatch says so (outlines-core builds it; see automaton._dfa's workarounds)."""
    import itertools

    from charrnn.generate.automaton import build

    chars = ("a", "b", "c", " ")
    a = build(pattern, chars)
    for n in range(6):
        for text in map("".join, itertools.product(chars, repeat=n)):
            state = a.start
            for ch in text:
                state = a.step[state, chars.index(ch)] if state >= 0 else -1
            got = state >= 0 and bool(a.matched[state])
            assert got == bool(re.fullmatch(pattern, text)), (pattern, text)
