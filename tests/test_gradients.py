"""Gradient flow through time (score.gradients): the cells written out match torch's fused
kernels, and the gradients by distance match autograd through the fused model."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from charrnn.config import ModelConfig
from charrnn.model.network import CharRNN
from charrnn.score.gradients import gradient_flow, unroll

V, BURN, K = 7, 5, 6


def _model(cell: str, layers: int = 2) -> CharRNN:
    torch.manual_seed(3)
    m = CharRNN(ModelConfig(vocab_size=V, cell=cell, num_layers=layers, hidden_size=12,
                            embed_size=5, dropout=0.0)).double().eval()
    with torch.no_grad():  # weights big enough that gradients neither vanish nor saturate
        for p in m.rnn.parameters():
            p.mul_(2.0)
    return m


def _ids(n: int = BURN + K + 2) -> np.ndarray:
    return np.random.default_rng(5).integers(0, V, n)


def _flow(m: CharRNN, ids: np.ndarray) -> dict[str, np.ndarray]:
    """gradient_flow on one window: the norm by distance k, per series."""
    g = gradient_flow(m, ids, max_distance=K, windows=1, burn_in=BURN)
    assert g.windows == 1
    return {name: g.norms[:, s] for s, name in enumerate(g.names)}


@pytest.mark.parametrize("cell", ["lstm", "gru", "rnn"])
def test_the_written_out_cells_compute_what_the_fused_kernels_do(cell):
    m = _model(cell, layers=3)
    x = torch.from_numpy(_ids(40)[None].repeat(2, 0))
    x[1] = x[1].flip(0)
    with torch.no_grad():
        fused, state = m(x)
        logits, steps = unroll(m, x)
    assert torch.allclose(logits, fused[:, -1], atol=1e-12)
    h = state[0] if isinstance(state, tuple) else state
    assert torch.allclose(torch.stack(steps[-1][:3]), h, atol=1e-12)
    if cell == "lstm":
        assert torch.allclose(torch.stack(steps[-1][3:]), state[1], atol=1e-12)


@pytest.mark.parametrize("cell", ["lstm", "gru", "rnn"])
def test_the_gradient_at_distance_0_is_autograd_through_the_fused_model(cell):
    m = _model(cell)
    ids = _ids()
    x = torch.from_numpy(ids[:-1])[None]
    y = torch.from_numpy(ids[-1:])
    out, _ = m.rnn(m.embed(x))  # the top layer's h at every step, by the fused kernel
    loss = F.cross_entropy(m.head(out[:, -1]), y)
    (g_out,) = torch.autograd.grad(loss, out)
    p = torch.softmax(m.head(out[:, -1]), -1).detach()
    by_hand = (p - F.one_hot(y, V)) @ m.head.weight.detach()  # W^T (p - y)
    flow = _flow(m, ids)
    assert flow["h2"][0] == pytest.approx(float(g_out[0, -1].norm()), rel=1e-10)
    assert flow["h2"][0] == pytest.approx(float(by_hand.norm()), rel=1e-10)
    assert flow["h1"][0] > 0  # the lower layer reaches the loss through the one above


def _split(m: CharRNN, ids: np.ndarray, k: int):
    """Autograd through the fused model cut at t-k: the loss's gradients with respect to
    the carried state (every layer's h, and c) handed from step t-k to step t-k+1."""
    x = torch.from_numpy(ids[:-1])[None]
    y = torch.from_numpy(ids[-1:])
    t = x.shape[1] - 1
    with torch.no_grad():
        _, state = m(x[:, :t - k + 1])
    leaves = tuple(s.clone().requires_grad_() for s in
                   (state if isinstance(state, tuple) else (state,)))
    logits, _ = m(x[:, t - k + 1:], leaves if len(leaves) == 2 else leaves[0])
    grads = torch.autograd.grad(F.cross_entropy(logits[:, -1], y), leaves)
    return [s.detach()[:, 0] for s in leaves], [g[:, 0] for g in grads]


@pytest.mark.parametrize("cell", ["lstm", "gru", "rnn"])
def test_the_top_layer_gradient_through_time_is_autograd_through_the_fused_model(cell):
    """For k >= 1 the top layer's h reaches the loss only through its recurrence, so its
    gradient is the carried state's; an LSTM's c also through h_{t-k} = o tanh(c)."""
    m = _model(cell)
    ids = _ids()
    flow = _flow(m, ids)
    for k in range(1, K + 1):
        states, grads = _split(m, ids, k)
        assert flow["h2"][k] == pytest.approx(float(grads[0][1].norm()), rel=1e-9), k
        if cell == "lstm":
            (h, c), (gh, gc) = states, grads
            tc = torch.tanh(c[1])
            total = gc[1] + gh[1] * (h[1] / tc) * (1 - tc ** 2)  # o = h / tanh(c)
            assert flow["c2"][k] == pytest.approx(float(total.norm()), rel=1e-8), k
    assert (flow["h2"][1:] > 0).all()


def _layer(m: CharRNN, i: int) -> torch.nn.Module:
    """Layer i of the model as a fused one-layer module with the same weights."""
    cls = type(m.rnn)
    one = cls(m.rnn.input_size if i == 0 else m.rnn.hidden_size, m.rnn.hidden_size,
              batch_first=True).double()
    for name in ("weight_ih", "weight_hh", "bias_ih", "bias_hh"):
        getattr(one, f"{name}_l0").data = getattr(m.rnn, f"{name}_l{i}").data
    return one


@pytest.mark.parametrize("cell", ["lstm", "gru", "rnn"])
def test_the_lower_layer_gradient_counts_every_path(cell):
    """h of layer 1 at t-k reaches the loss through its own recurrence and through layer 2
    at step t-k: perturb it once where it is made, with the fused one-layer kernels."""
    m = _model(cell)
    ids = _ids()
    flow = _flow(m, ids)
    x = torch.from_numpy(ids[:-1])[None]
    y = torch.from_numpy(ids[-1:])
    t = x.shape[1] - 1
    low, high = _layer(m, 0), _layer(m, 1)
    for k in range(K + 1):
        cut = t - k + 1
        delta = torch.zeros(1, 1, 12, dtype=torch.float64, requires_grad=True)
        out_a, st = low(m.embed(x[:, :cut]))
        out_a = torch.cat([out_a[:, :-1], out_a[:, -1:] + delta], 1)
        st = (st[0] + delta[:, 0], st[1]) if isinstance(st, tuple) else st + delta[:, 0]
        out_b, _ = low(m.embed(x[:, cut:]), st) if cut <= t else (out_a[:, :0], None)
        top, _ = high(torch.cat([out_a, out_b], 1))
        (g,) = torch.autograd.grad(F.cross_entropy(m.head(top[:, -1]), y), delta)
        assert flow["h1"][k] == pytest.approx(float(g.norm()), rel=1e-9), k


def test_windows_are_averaged_and_a_short_text_is_one_line(tmp_path):
    m = _model("gru")
    ids = np.random.default_rng(1).integers(0, V, 200)
    both = gradient_flow(m, ids, max_distance=K, windows=2, burn_in=BURN)
    one = [gradient_flow(m, ids[s:s + BURN + K + 2], max_distance=K, windows=1,
                         burn_in=BURN) for s in (0, 200 - (BURN + K + 2))]
    assert np.allclose(both.norms, (one[0].norms + one[1].norms) / 2, rtol=1e-10)
    from charrnn.errors import CharRNNError

    with pytest.raises(CharRNNError, match="text too short: 10 characters"):
        gradient_flow(m, ids[:10], max_distance=K, burn_in=BURN)


def test_the_gradients_command_prints_and_draws_what_it_measured(cli, trained_run, tmp_path):
    import re
    import shutil

    from charrnn.model.network import load_model
    from charrnn.runs import folder as runfolder
    from charrnn.score.texts import eval_text

    other = tmp_path / "other"
    shutil.copytree(trained_run, other)
    r = cli("gradients", "-c", trained_run, "-c", other, "-k", "30", "--windows", "4",
            "--max-context", "16", "--positions", "40", "--html", "flow.html")
    assert r.exit_code == 0, r
    assert r.stderr == "charrnn: wrote flow.html\n"
    lines = r.stdout.splitlines()
    assert lines[1].split() == ["k", "pattern:h1", "pattern:c1", "other:h1", "other:c1"]
    c = runfolder.open_checkpoint(trained_run)
    ids = eval_text(c, None).windows[0]
    g = gradient_flow(load_model(c), ids, 30, windows=4)
    rows = {int(row.split()[0]): row.split()[1:] for row in lines[2:lines.index("")]}
    assert sorted(rows) == [0, 1, 2, 5, 10, 20, 30]
    for k, cells in rows.items():
        assert cells[:2] == [f"{g.norms[k, 0]:.2e}", f"{g.norms[k, 1]:.2e}"]
        assert cells[2:] == cells[:2]  # the same model, measured the same way
    ctx = lines[lines.index("") + 2:]
    assert [row.split()[0] for row in ctx] == ["context", "1", "2", "4", "8", "16", "full",
                                               "uses"]
    page = (tmp_path / "flow.html").read_text(encoding="utf-8")
    grads = re.search(r'<div id="gradients">(.*?)</svg>', page, re.S).group(1)
    lines_drawn = re.findall(r'data-name="([^"]+)"[^>]*points="([^"]+)"', grads)
    assert [name for name, _ in lines_drawn] == ["pattern:h1", "pattern:c1", "other:h1",
                                                 "other:c1"]
    assert all(len(points.split()) == 31 for _, points in lines_drawn)
    assert 'data-name="training window T = 32"' in page
    r = cli("gradients", "-c", trained_run, "--no-context", "-k", "5", "--windows", "2")
    assert r.exit_code == 0 and "context" not in r.stdout, r
    (tmp_path / "short.txt").write_text("the cat sat\n")
    r = cli("gradients", "short.txt", "-c", trained_run)
    assert r.exit_code == 1 and r.stderr.startswith("charrnn: error: text too short: 12 "), r
