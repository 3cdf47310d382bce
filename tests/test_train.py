"""The training loop: schedule, time budget, precision and what it writes."""

import json
import math
import os
import sys
import time

import numpy as np
import pytest
import torch

from charrnn.config import ModelConfig, TrainConfig, auto_model
from charrnn.data.corpus import Corpus
from charrnn.model.device import pick_dtype
from charrnn.model.network import load_tensors
from charrnn.runs import checkpoint as ckpt
from charrnn.train.loop import Callbacks, Trainer
from charrnn.train.schedule import lr_at


def test_schedule_warms_up_then_decays_to_the_floor_at_the_end():
    cfg = TrainConfig(lr=1e-3, min_lr_ratio=0.1, warmup_steps=10, max_steps=100)
    warm = [lr_at(cfg, s, 0.0) for s in range(10)]
    assert warm == sorted(warm) and warm[-1] == pytest.approx(1e-3)
    decay = [lr_at(cfg, 50, f) for f in np.linspace(0, 1, 21)]
    assert all(a >= b for a, b in zip(decay, decay[1:], strict=False))
    assert lr_at(cfg, 50, 1.0) == pytest.approx(1e-4)  # the floor, exactly at the deadline
    assert lr_at(cfg, 50, 0.5) == pytest.approx(1e-4 + 0.9e-3 * 0.5)


class _Record(Callbacks):
    def __init__(self):
        self.steps = []

    def on_step(self, p):
        self.steps.append(p)


def _corpus(tmp_path, n=4000):
    p = tmp_path / "t.txt"
    p.write_text(("to be or not to be, that is the question.\n" * (n // 40))[:n])
    return Corpus.load(str(p), 0.1)


@pytest.mark.parametrize("budget", [1.5, 4.0])
def test_time_budget_drives_the_schedule_and_is_kept(tmp_path, budget):
    rec = _Record()
    cfg = TrainConfig(batch_size=4, seq_len=16, max_time=budget, warmup_steps=2, patience=0)
    corpus = _corpus(tmp_path)
    mc = ModelConfig(vocab_size=len(corpus.vocab), hidden_size=16, num_layers=1, embed_size=8)
    result = Trainer(mc, cfg, corpus, tmp_path / "run", rec).run()
    assert result.reason == "budget"
    last = rec.steps[-1]
    assert last.fraction > 0.9  # trained until the deadline ...
    assert result.progress.elapsed < budget * 1.05 + 0.5  # ... and not much past it
    # the learning rate followed the clock down to (almost) its floor
    assert last.lr < cfg.lr * (cfg.min_lr_ratio + 0.05)
    lrs = [p.lr for p in rec.steps[cfg.warmup_steps:]]
    assert all(a >= b for a, b in zip(lrs, lrs[1:], strict=False))


def test_costly_validation_is_spaced_out_to_a_tenth_of_the_budget(tmp_path, monkeypatch):
    """A big held-out sample must not eat a short budget: validations get rarer instead."""
    import charrnn.train.loop as train
    import charrnn.train.schedule as schedule

    monkeypatch.setattr(schedule, "MIN_EVAL_GAP", 0.1)  # budget/10 = 0.6 s between validations
    slow = train.Trainer._evaluate

    def evaluate(self, *args):
        time.sleep(0.3)  # as if scoring a million held-out characters
        return slow(self, *args)

    monkeypatch.setattr(train.Trainer, "_evaluate", evaluate)
    cfg = TrainConfig(batch_size=4, seq_len=16, max_time=6.0, warmup_steps=2, patience=0)
    corpus = _corpus(tmp_path)
    mc = ModelConfig(vocab_size=len(corpus.vocab), hidden_size=16, num_layers=1, embed_size=8)
    result = Trainer(mc, cfg, corpus, tmp_path / "run").run()
    lines = (tmp_path / "run" / "metrics.jsonl").read_text().splitlines()
    vals = [x for x in map(json.loads, lines) if x["kind"] == "val"]
    # every 0.6 s would be ~7 validations and half the time; spaced: 2 or 3, ~15%
    assert 2 <= len(vals) <= 3
    assert result.eval_seconds < 0.25 * result.progress.elapsed
    assert result.progress.elapsed < 6.0 * 1.05 + 0.5


@pytest.mark.parametrize(("chars", "budget", "size"), [
    (50_000, 3600.0, (2, 256, 0.25)),  # small corpus: small model, whatever the budget
    (1_000_000, 60.0, (2, 256, 0.25)),  # short budget: the fast model learns more
    (1_000_000, 600.0, (2, 384, 0.25)),
    (1_000_000, None, (2, 384, 0.25)),  # a step or epoch budget
    (50_000_000, 600.0, (2, 384, 0.1)),  # a big corpus: less dropout, not more size
    (50_000_000, 60.0, (2, 256, 0.25))])
def test_model_size_follows_corpus_size_and_budget(chars, budget, size):
    m = auto_model(chars, budget)
    assert (m["num_layers"], m["hidden_size"], m["dropout"]) == size


def test_train_shows_the_chosen_size_and_takes_overrides(cli, corpus_file):
    r = cli("train", corpus_file, "-o", "auto", "--max-steps", "1")
    assert r.exit_code == 0 and "model: 2x256 lstm" in r.stderr and "dropout 0.25" in r.stderr
    assert "model size chosen for" in r.stderr
    r = cli("train", corpus_file, "-o", "mine", "--max-steps", "1", "--layers", "1",
            "--hidden-size", "24", "--dropout", "0")
    assert r.exit_code == 0 and "model: 1x24 lstm" in r.stderr and "dropout 0," in r.stderr
    assert "model size chosen" not in r.stderr


@pytest.mark.parametrize(("args", "lr"), [
    ((), "lr 0.016"), (("--cell", "gru"), "lr 0.008"), (("--cell", "rnn"), "lr 0.008"),
    (("--cell", "gru", "--lr", "3e-3"), "lr 0.003")])
def test_the_default_learning_rate_follows_the_cell(cli, corpus_file, args, lr):
    r = cli("train", corpus_file, "-o", "run", "--max-steps", "1", *args)
    assert r.exit_code == 0 and f", {lr}, " in r.stderr


def test_validations_are_logged_and_best_keeps_the_lowest_weights_only(tmp_path):
    corpus = _corpus(tmp_path)
    mc = ModelConfig(vocab_size=len(corpus.vocab), hidden_size=16, num_layers=1, embed_size=8)
    cfg = TrainConfig(batch_size=4, seq_len=16, max_steps=40, eval_every=20)
    result = Trainer(mc, cfg, corpus, tmp_path / "run").run()
    lines = [json.loads(x) for x in (tmp_path / "run" / "metrics.jsonl").read_text().splitlines()]
    vals = [x for x in lines if x["kind"] == "val"]
    assert [v["step"] for v in vals] == [20, 40]
    assert result.best_val_loss == min(v["loss"] for v in vals)
    best = ckpt.inspect(tmp_path / "run" / "best.safetensors")
    assert best.meta["progress"]["val_loss"] == result.best_val_loss
    assert "optim.0.exp_avg" not in best.tensors  # best holds weights only


@pytest.mark.parametrize("ema", [0.9, 0.0])
def test_saved_weights_are_the_moving_average_and_latest_keeps_the_trained_ones(tmp_path, ema):
    corpus = _corpus(tmp_path)
    mc = ModelConfig(vocab_size=len(corpus.vocab), hidden_size=16, num_layers=1, embed_size=8)
    cfg = TrainConfig(batch_size=4, seq_len=16, max_steps=25, eval_every=25, ema=ema,
                      device="cpu")
    trainer = Trainer(mc, cfg, corpus, tmp_path / "run")
    snapshots = [{k: v.clone() for k, v in trainer.model.state_dict().items()}]
    step = trainer.opt.step

    def step_and_keep(*args, **kwargs):
        out = step(*args, **kwargs)
        snapshots.append({k: v.clone() for k, v in trainer.model.state_dict().items()})
        return out

    trainer.opt.step = step_and_keep  # type: ignore[method-assign]
    trainer.run()
    # the average by hand: its decay grows from 0.1 towards ``ema``
    want = dict(snapshots[0])
    for s, w in enumerate(snapshots[1:], start=1):
        decay = min(ema, (1 + s) / (10 + s))
        want = {k: decay * want[k] + (1 - decay) * w[k] for k in w}
    if not ema:
        want = snapshots[-1]
    latest = load_tensors(ckpt.inspect(tmp_path / "run" / "latest.safetensors"))
    best = load_tensors(ckpt.inspect(tmp_path / "run" / "best.safetensors"))
    for k, w in snapshots[-1].items():
        torch.testing.assert_close(latest[k], want[k], rtol=0, atol=1e-6)
        assert torch.equal(best[k], latest[k])
        if ema:  # the trained weights, exactly, for --resume
            assert torch.equal(latest[f"train.{k}"], w) and not torch.equal(latest[k], w)
    assert any(k.startswith("train.") for k in latest) == bool(ema)
    assert not any(k.startswith("train.") for k in best)


@pytest.mark.skipif(pick_dtype("auto", torch.device("cpu")) is None,
                    reason="this CPU has no native bfloat16 (AMX, AVX-512 BF16)")
def test_bf16_autocast_trains_and_saves_float32(tmp_path):
    corpus = _corpus(tmp_path)
    mc = ModelConfig(vocab_size=len(corpus.vocab), hidden_size=32, num_layers=2, embed_size=8)
    cfg = TrainConfig(batch_size=4, seq_len=32, max_steps=60, precision="bf16", lr=0.01)
    result = Trainer(mc, cfg, corpus, tmp_path / "run").run()
    assert math.isfinite(result.best_val_loss) and result.best_val_loss < 2.5
    c = ckpt.inspect(tmp_path / "run" / "latest.safetensors")
    assert all(c.tensors[k][0] == "F32" for k in mc.weight_shapes())


def test_bf16_where_the_cpu_cannot_run_it_is_one_line(tmp_path, corpus_file):
    """oneDNN has no bf16 LSTM below AVX-512: ONEDNN_MAX_CPU_ISA=AVX2 makes any x86 CPU
    such a CPU; --precision bf16 then explains itself (exit 2) instead of crashing."""
    import platform
    import subprocess
    import sys

    if platform.machine() not in ("x86_64", "AMD64"):
        pytest.skip("ONEDNN_MAX_CPU_ISA=AVX2 only lowers x86 CPUs")
    env = {**os.environ, "ONEDNN_MAX_CPU_ISA": "AVX2"}
    r = subprocess.run([sys.executable, "-m", "charrnn", "train", str(corpus_file), "-o",
                        str(tmp_path / "run"), "--max-steps", "2", "--precision", "bf16",
                        "--hidden-size", "8", "--layers", "1"],
                       capture_output=True, text=True, env=env, timeout=120)
    assert r.returncode == 2, r
    last = r.stderr.strip().splitlines()[-1]
    assert last.startswith("charrnn: error: --precision bf16") and "fp32" in last, r
    assert "Traceback" not in r.stderr
    assert not (tmp_path / "run").exists()


def test_fp32_precision_means_no_autocast():
    assert pick_dtype("fp32", torch.device("cpu")) is None


def test_sparkline_draws_the_validation_trend_where_the_terminal_can(monkeypatch):
    import io

    from charrnn.train.progress import sparkline

    monkeypatch.setattr(sys, "stderr", io.TextIOWrapper(io.BytesIO(), encoding="utf-8"))
    assert sparkline([4.0, 3.0, 2.0, 1.0]) == "\u2588\u2586\u2583\u2581"
    assert sparkline([2.0]) == "" and sparkline([2.0, 2.0]) == "\u2581\u2581"
    assert len(sparkline([float(i) for i in range(30)], width=12)) == 12
    monkeypatch.setattr(sys, "stderr", io.TextIOWrapper(io.BytesIO(), encoding="ascii"))
    assert sparkline([4.0, 3.0]) == ""  # a terminal that cannot show the blocks gets none


TINY = ["--hidden-size", "8", "--layers", "1", "--embed-size", "4", "-b", "4", "-t", "16",
        "--device", "cpu"]


def test_a_folder_holding_only_a_best_checkpoint_is_a_run(cli, trained_run, corpus_file,
                                                          tmp_path):
    """Before: the 'already holds a run' check looked for latest only, so `train -o x`
    replaced x/best.safetensors and appended to x/metrics.jsonl without --force."""
    x = tmp_path / "x"
    x.mkdir()
    for name in ("best.safetensors", "metrics.jsonl"):
        (x / name).write_bytes((trained_run / name).read_bytes())
    before = {p.name: p.read_bytes() for p in x.iterdir()}
    r = cli("train", corpus_file, "-o", x, *TINY, "--max-steps", "2")
    assert r.exit_code == 1 and "already holds a run" in r.stderr, r
    assert {p.name: p.read_bytes() for p in x.iterdir() if p.name != ".lock"} == before


def test_resume_names_the_options_it_ignores_and_the_size_note_only_when_chosen(
        cli, corpus_file, tmp_path):
    r = cli("train", corpus_file, "-o", "run", *TINY, "--max-steps", "2", "--dropout", "0")
    assert r.exit_code == 0 and "chosen" not in r.stderr, r  # everything was given
    r = cli("train", corpus_file, "-o", "two", *TINY, "--max-steps", "2")
    assert "model size chosen" not in r.stderr and "dropout 0.25 chosen for" in r.stderr, r
    r = cli("train", corpus_file, "-o", "run", *TINY, "--resume", "--max-steps", "3",
            "--hidden-size", "16", "--lr", "0.5", "--seed", "3", "--layers", "1")
    assert r.exit_code == 0, r
    assert ("--resume continues the run as it was set up; ignored: --hidden-size 16 "
            "(the run's: 8), --lr 0.5 (the run's: 0.016), --seed 3 (the run's: 1337)\n"
            ) in r.stderr, r
