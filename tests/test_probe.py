"""Machine-following defaults: the model size from what this machine trains in the budget."""

import pytest
import torch

from charrnn.config import ModelConfig, TrainConfig, follows_machine
from charrnn.train import command as training
from charrnn.train import probe


def test_kernel_rate_times_real_steps_and_leaves_the_rng_alone():
    mc = ModelConfig(vocab_size=20, hidden_size=16, num_layers=1, embed_size=8)
    torch.manual_seed(5)
    before = torch.get_rng_state()
    rate = probe.kernel_rate(mc, 4, 8, torch.device("cpu"), None, seconds=0.05)
    assert torch.equal(torch.get_rng_state(), before)
    assert rate > 100  # chars/s of a tiny model on any CPU


def _fake_rates(monkeypatch, rates: dict[int, float]) -> list[int]:
    probed: list[int] = []

    def kernel_rate(config, *args, **kwargs):
        probed.append(config.hidden_size)
        return rates[config.hidden_size]

    monkeypatch.setattr(probe, "kernel_rate", kernel_rate)
    return probed


@pytest.mark.parametrize(("rates", "chosen", "probed"), [
    # a fast machine: 2x512 sees 10M characters in 10 minutes, 3x its parameters
    ({256: 60_000, 384: 30_000, 512: 18_000}, 512, [256, 384, 512]),
    # a slow one: 2x384 would see 2.2M characters, short of 1.7 per parameter; 512 untried
    ({256: 8_000, 384: 4_000, 512: 2_500}, 256, [256, 384]),
    # very slow: the smallest anyway
    ({256: 500, 384: 200, 512: 100}, 256, [256]),
])
def test_the_largest_size_the_budget_affords_is_chosen(monkeypatch, rates, chosen, probed):
    seen = _fake_rates(monkeypatch, rates)
    base = ModelConfig(vocab_size=65)
    choice = probe.choose_size(base, 32, 32, torch.device("cpu"), None, 600.0)
    assert choice.hidden_size == chosen and seen == probed
    assert set(choice.rates) == set(probed)


def test_train_reports_the_probe(monkeypatch):
    _fake_rates(monkeypatch, {256: 20_000, 384: 10_000, 512: 6_000})
    mc = ModelConfig(vocab_size=65, hidden_size=384, dropout=0.25)
    tc = TrainConfig(max_time=600.0, precision="fp32")
    fitted, message = training._fit_machine(mc, tc, 1_000_000, True)
    assert fitted.hidden_size == 384
    assert "2x384 trains at 10,000 chars/s here (2x256: 20,000, 2x512: 6,000)" in message
    assert "about 5.6M characters (5.6 passes) in the budget" in message
    assert fitted.dropout == 0.1  # a few passes over the text: little dropout
    fitted, _ = training._fit_machine(mc, tc, 300_000, True)
    assert fitted.dropout == 0.25  # 19 passes: more
    fitted, _ = training._fit_machine(mc, tc, 1_000_000, False)
    assert fitted.dropout == 0.25  # --dropout given: kept


def test_a_short_budget_probes_only_its_small_model_for_the_dropout(monkeypatch):
    seen = _fake_rates(monkeypatch, {256: 20_000, 384: 10_000, 512: 6_000})
    mc = ModelConfig(vocab_size=65, hidden_size=256, dropout=0.25)
    fitted, message = training._fit_machine(mc, TrainConfig(max_time=60.0), 1_000_000, True)
    assert seen == [256] and fitted.hidden_size == 256
    assert fitted.dropout == 0.1  # 1.1 passes: the model underfits, little dropout
    assert "2x256 trains at 20,000 chars/s here, about 1.1M characters" in message
    fitted, _ = training._fit_machine(mc, TrainConfig(max_time=60.0), 100_000, True)
    assert fitted.dropout == 0.25  # 11 passes over a short text: more


@pytest.mark.parametrize(("chars", "budget", "follows"), [
    (1_000_000, 600.0, True), (1_000_000, 60.0, True), (1_000_000, None, False),
    (50_000, 3600.0, False)])
def test_only_a_time_budget_on_a_real_corpus_probes(chars, budget, follows):
    assert follows_machine(chars, budget) is follows


def test_the_probe_keeps_to_its_share_of_the_budget_and_reports_a_busy_machine(monkeypatch):
    """At most 5% of the budget: sizes it has no time left for are not timed (nor chosen).
    A probe that got little of its threads' CPU time (here it only sleeps) says so."""
    import time

    timed: list[int] = []

    def kernel_rate(config, *args, limit=float("inf"), **kwargs):
        timed.append(config.hidden_size)
        time.sleep(min(0.3, limit))  # waiting, as a descheduled process does
        return 1e9  # fast enough for any size

    monkeypatch.setattr(probe, "kernel_rate", kernel_rate)
    choice = probe.choose_size(ModelConfig(vocab_size=65), 32, 32, torch.device("cpu"), None,
                               max_time=10.0)  # 5%: 0.5 s
    assert timed == [256, 384] and choice.hidden_size == 384
    assert choice.seconds < 0.5 + 0.2
    assert choice.busy and choice.share < probe.BUSY_SHARE
    mc = ModelConfig(vocab_size=65, hidden_size=384)
    _, message = training._fit_machine(mc, TrainConfig(max_time=600.0), 1_000_000, True)
    assert "on a busy machine (this process got" in message


def test_kernel_rate_gives_up_at_its_limit_with_what_it_timed():
    mc = ModelConfig(vocab_size=20, hidden_size=64, num_layers=1, embed_size=8)
    import time

    t0 = time.perf_counter()
    rate = probe.kernel_rate(mc, 4, 8, torch.device("cpu"), None, seconds=5.0, limit=0.2)
    assert time.perf_counter() - t0 < 1.0 and rate > 0
