"""Properties that must hold for any input, checked with hypothesis."""

from __future__ import annotations

import tempfile
from pathlib import Path

import numpy as np
import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st

from charrnn.data.batches import Batches, EvalStreams
from charrnn.data.text import Vocab, normalize, read_text
from charrnn.errors import CharRNNError
from charrnn.generate.decoding import Decoding
from charrnn.generate.pick import pick

# Any Unicode scalar value (no lone surrogates: they cannot be UTF-8), with the awkward
# ones drawn often: astral characters, combining marks, and CR/LF in every mix.
chars = st.one_of(
    st.characters(exclude_categories=("Cs",)),
    st.sampled_from(["\r", "\n", "\r\n", "\u0301", "\u0e35", "\U0001f600", "\U0001d11e",
                     "\ufeff", "\u200d", "\x00"]),
)
texts = st.lists(chars, min_size=1, max_size=60).map("".join)


@settings(deadline=None)
@given(texts)
def test_encode_decode_round_trip_for_any_text(text):
    v = Vocab.from_text(text)
    ids = v.encode(text)
    assert v.decode(ids) == text
    assert ids.max() < len(v) and len(ids) == len(text)


@settings(deadline=None)
@given(texts)
def test_read_text_gives_the_normalized_text_or_a_clear_refusal(text):
    """A file's text comes back with LF line ends and no BOM, or is refused with a reason."""
    with tempfile.TemporaryDirectory() as d:
        p = Path(d) / "t.txt"
        p.write_bytes(text.encode("utf-8"))
        try:
            got = read_text(p)
        except CharRNNError as e:
            assert "\x00" in text or not normalize(text).strip(), e
            return
    assert "\x00" not in text
    assert got == normalize(text) and "\r" not in got
    body = text[1:] if text.startswith("\ufeff") else text  # one leading BOM is dropped
    assert got.replace("\n", "") == body.replace("\r", "").replace("\n", "")


@settings(deadline=None)
@given(n=st.integers(2, 3000), batch=st.integers(1, 40), seq=st.integers(1, 70),
       offset=st.integers(0, 69))
def test_batches_cover_every_position_once_with_targets_shifted(n, batch, seq, offset):
    assume(offset < seq and n - 1 - offset >= batch)
    ids = np.arange(n, dtype=np.uint32)  # id == position
    b = Batches(ids, batch, seq, offset)
    chunks = [b.chunk(i) for i in range(len(b))]
    x = np.concatenate([c[0] for c in chunks], axis=1)
    y = np.concatenate([c[1] for c in chunks], axis=1)
    assert all(c[0].shape == (batch, seq) for c in chunks[:-1])
    assert 1 <= chunks[-1][0].shape[1] <= seq
    covered = np.sort(x.ravel())
    assert (covered == np.arange(offset, offset + batch * b.stream_len)).all()  # once each
    assert (y == x + 1).all()
    assert n - 1 - (offset + batch * b.stream_len) < batch  # at most B-1 left unused


@settings(deadline=None)
@given(n=st.integers(2, 3000), streams=st.integers(1, 64), burn=st.integers(0, 300))
def test_eval_streams_score_every_target_exactly_once(n, streams, burn):
    ids = np.arange(n, dtype=np.int64)
    es = EvalStreams.build(ids, streams, burn)
    scored = np.sort(es.y[es.mask])
    assert (scored == np.arange(1, n)).all()
    assert (es.y[es.mask] == es.x[es.mask] + 1).all()


@settings(deadline=None)
@given(
    rows=st.integers(1, 8), vocab=st.integers(1, 40), seed=st.integers(0, 2**32),
    scale=st.sampled_from([1e-3, 1.0, 30.0, 1e4]),
    temperature=st.one_of(st.just(0.0), st.floats(1e-300, 1e3)),
    top_k=st.integers(0, 45), top_p=st.one_of(st.just(1.0), st.floats(1e-6, 1.0)),
    masked=st.floats(0, 0.9),
)
def test_sampled_ids_are_in_the_vocabulary_and_never_impossible(
        rows, vocab, seed, scale, temperature, top_k, top_p, masked):
    rng = np.random.default_rng(seed)
    logits = (rng.normal(size=(rows, vocab)) * scale).astype(np.float32)
    logits[rng.random((rows, vocab)) < masked] = -np.inf  # impossible characters
    logits[np.arange(rows), rng.integers(vocab, size=rows)] = rng.normal(size=rows)
    ids = pick(logits, rng.random(rows), Decoding(temperature, top_k, top_p))
    assert ids.shape == (rows,) and ids.dtype.kind in "iu"
    assert ((ids >= 0) & (ids < vocab)).all()
    chosen = logits[np.arange(rows), ids]
    assert np.isfinite(chosen).all()  # a character of probability zero is never drawn
    if 0 < top_k < vocab:
        kth = np.sort(logits, axis=1)[:, -top_k]
        assert (chosen >= kth).all()
    if temperature == 0 or top_k == 1 or top_p < 1e-5:
        assert (chosen == logits.max(axis=1)).all()


@pytest.mark.parametrize("temperature", [1e-300, 1e-200, 5e-324])
def test_tiny_temperature_is_still_the_likeliest_character(temperature):
    logits = np.array([[-3.0, 2.0, 1.5, 0.0]], np.float32)
    for u in (0.0, 0.5, 0.999):
        assert pick(logits, [u], Decoding(temperature))[0] == 1  # one row: the fast path
        two = pick(np.repeat(logits, 2, 0), [u, u], Decoding(temperature, top_k=3))
        assert two.tolist() == [1, 1]
