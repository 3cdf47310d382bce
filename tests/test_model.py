import numpy as np
import pytest
import torch
import torch.nn.functional as F

from charrnn.config import ModelConfig
from charrnn.model.infer import NumpyRNN
from charrnn.model.network import CharRNN, detach_state


def _model(cell: str, **kw) -> CharRNN:
    torch.manual_seed(0)
    cfg = ModelConfig(vocab_size=11, cell=cell, num_layers=2, hidden_size=24,
                      embed_size=8, dropout=0.0, **kw)
    return CharRNN(cfg).eval()


@pytest.mark.parametrize("cell", ["lstm", "gru", "rnn"])
def test_output_shapes_and_weight_names_match_the_config(cell):
    m = _model(cell)
    logits, state = m(torch.randint(0, 11, (3, 7)))
    assert logits.shape == (3, 7, 11)
    h = state[0] if cell == "lstm" else state
    assert h.shape == (2, 3, 24)
    assert {k: tuple(v.shape) for k, v in m.state_dict().items()} == m.config.weight_shapes()
    assert m.config.num_params() == sum(p.numel() for p in m.parameters())


@pytest.mark.parametrize("cell", ["lstm", "gru", "rnn"])
def test_carrying_state_across_chunks_equals_one_pass(cell):
    m = _model(cell)
    idx = torch.randint(0, 11, (4, 40))
    with torch.no_grad():
        whole, _ = m(idx)
        a, s = m(idx[:, :15])
        b, _ = m(idx[:, 15:], detach_state(s))
    torch.testing.assert_close(torch.cat([a, b], 1), whole, rtol=1e-5, atol=1e-6)


def test_detached_state_cuts_the_gradient():
    m = _model("lstm").train()
    _, s = m(torch.randint(0, 11, (2, 5)))
    h, c = detach_state(s)
    assert not h.requires_grad and not c.requires_grad


@pytest.mark.parametrize("batch", [1, 3])  # batch 1 takes BLAS's matrix-vector path
@pytest.mark.parametrize("cell", ["lstm", "gru", "rnn"])
def test_numpy_cells_match_torch(cell, batch):
    m = _model(cell)
    weights = {k: v.numpy() for k, v in m.state_dict().items()}
    before = {k: v.copy() for k, v in weights.items()}
    engine = NumpyRNN(m.config, weights)
    idx = torch.randint(0, 11, (batch, 30))
    with torch.no_grad():
        expected, _ = m(idx)
    state, steps = engine.init_state(batch), []
    for t in range(30):
        logits, state = engine.step(idx[:, t].numpy(), state)
        steps.append(logits)
    np.testing.assert_allclose(np.stack(steps, 1), expected.numpy(), atol=1e-5, rtol=1e-5)
    for k, v in weights.items():  # the engine keeps its own copies; the model is untouched
        np.testing.assert_array_equal(v, before[k])


def test_vanilla_rnn_is_tanh_of_affine_maps():
    """h = tanh(W_xh x + W_hh h + b): the equation, checked against torch's nn.RNN."""
    m = _model("rnn")
    sd = {k: v.numpy() for k, v in m.state_dict().items()}
    x = sd["embed.weight"][[3]]
    h1 = np.tanh(x @ sd["rnn.weight_ih_l0"].T + sd["rnn.bias_ih_l0"] + sd["rnn.bias_hh_l0"])
    with torch.no_grad():
        _, state = m(torch.tensor([[3]]))
    np.testing.assert_allclose(state[0, 0].numpy(), h1[0], atol=1e-6)


@pytest.mark.parametrize("cell", ["lstm", "gru", "rnn"])
def test_tiny_model_learns_a_repeating_pattern(cell):
    torch.manual_seed(0)
    text = "abcabd" * 200 + "a"
    ids = torch.tensor([ord(c) - ord("a") for c in text])
    m = CharRNN(ModelConfig(vocab_size=4, cell=cell, num_layers=1, hidden_size=32,
                            embed_size=8, dropout=0.0))
    opt = torch.optim.Adam(m.parameters(), lr=0.02)
    x, y = ids[:-1].view(4, -1), ids[1:].view(4, -1)
    for _ in range(150):
        logits, _ = m(x)
        loss = F.cross_entropy(logits.flatten(0, 1), y.flatten())
        opt.zero_grad()
        loss.backward()
        opt.step()
    # "abcab?" is c or d: the period-6 pattern is fully predictable given 3 characters.
    assert loss.item() < 0.05
