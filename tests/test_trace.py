"""Per-character traces (trace.py): surprisal and hidden states, checked against torch."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from charrnn.data.text import read_text
from charrnn.inspect.trace import Surprisal, activations, surprisal
from charrnn.model.infer import NumpyRNN
from charrnn.model.network import load_model
from charrnn.runs import folder as runfolder
from charrnn.score.loss import score_ids


@pytest.fixture(scope="module")
def model_and_ids(trained_run, corpus_file):
    c = runfolder.open_checkpoint(trained_run)
    ids = c.vocab.encode(read_text(corpus_file)[:1500]).astype(np.int64)
    return c, NumpyRNN(c.config, c.numpy_weights()), load_model(c), ids


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


@pytest.mark.parametrize("cell", ["gru", "lstm"])
def test_activations_of_every_layer_match_torch(cell):
    from charrnn.config import ModelConfig
    from charrnn.model.network import CharRNN

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


def test_hardest_passages_are_the_planted_ones_and_do_not_overlap():
    bits = np.full(200, 0.1)
    bits[0] = np.nan
    bits[50:60] = 5.0
    bits[120:125] = 3.0
    s = Surprisal(np.zeros(200, np.int64), bits, np.zeros((200, 1)), np.zeros((200, 1)))
    (a, b, m), (a2, b2, _), *_ = s.hardest(width=10, count=3)
    assert (a, b) == (50, 60) and m == pytest.approx(5.0)
    assert 115 <= a2 <= 120 and not (a2 < b and a < b2)
