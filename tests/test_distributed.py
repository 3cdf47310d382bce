"""Data-parallel training under torchrun (CPU, gloo, 2 processes) equals one process."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from charrnn.cli import main
from charrnn.config import ModelConfig, TrainConfig
from charrnn.data.corpus import Corpus
from charrnn.errors import CharRNNError
from charrnn.model.device import cpu_bf16_runs
from charrnn.train.distributed import Dist, from_env
from charrnn.train.loop import Trainer

ROOT = Path(__file__).resolve().parents[1]
TINY = ["--layers", "2", "--hidden-size", "24", "--embed-size", "8", "--dropout", "0",
        "-b", "4", "-t", "16", "--warmup", "2", "--eval-every", "2", "--log-every", "1",
        "--val-max-chars", "500", "--precision", "fp32"]


def train_losses(run: Path) -> list[tuple[int, float]]:
    lines = [json.loads(s) for s in (run / "metrics.jsonl").read_text().splitlines()]
    return [(m["step"], m["loss"]) for m in lines if m["kind"] == "train"]


def torchrun(*args: str, cwd: Path) -> None:
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(ROOT)}
    # --standalone: a single-machine rendezvous on a free port
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node",
           "2", "-m", "charrnn", "train", *args]
    done = subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr[-3000:]


def test_two_processes_match_one_and_resume(tmp_path, corpus_file, monkeypatch):
    """Same global batch: per-step losses and checkpoints agree, also across a resume."""
    monkeypatch.setenv("OMP_NUM_THREADS", "1")
    monkeypatch.chdir(tmp_path)
    single, ddp = tmp_path / "single", tmp_path / "ddp"
    args = [str(corpus_file), *TINY]
    assert main(["train", *args, "--max-steps", "3", "-o", str(single)]) == 0
    again = ["--resume", "--max-steps", "5", "--precision", "fp32"]
    assert main(["train", *again, "-o", str(single)]) == 0
    torchrun(*args, "--max-steps", "3", "-o", str(ddp), cwd=tmp_path)
    torchrun(*again, "-o", str(ddp), cwd=tmp_path)

    one, two = train_losses(single), train_losses(ddp)
    assert [s for s, _ in one] == [s for s, _ in two] == [1, 2, 3, 4, 5]
    assert max(abs(a - b) for (_, a), (_, b) in zip(one, two, strict=True)) < 1e-5
    a, b = load_file(single / "latest.safetensors"), load_file(ddp / "latest.safetensors")
    assert a.keys() == b.keys() and {"carry.h", "carry.c", "optim.0.exp_avg"} <= a.keys()
    for k in a:
        assert torch.allclose(a[k].double(), b[k].double(), atol=1e-5, rtol=0), k


def test_time_budget_stops_every_process_together(tmp_path, corpus_file):
    """Rank 0's clock decides: both processes stop, validate and exit (no deadlock)."""
    run = tmp_path / "timed"
    torchrun(str(corpus_file), *TINY, "--max-time", "3s", "--eval-every", "0", "-o", str(run),
             cwd=tmp_path)
    kinds = [json.loads(s)["kind"] for s in (run / "metrics.jsonl").read_text().splitlines()]
    assert kinds.count("train") > 3 and kinds[-2:] == ["val", "preview"]
    assert (run / "latest.safetensors").is_file()


def test_batch_must_split_evenly_over_processes(tmp_path, corpus_file):
    corpus = Corpus.load(str(corpus_file), 0.1)
    mc = ModelConfig(vocab_size=len(corpus.vocab), num_layers=1, hidden_size=8)
    tc = TrainConfig(batch_size=4, seq_len=8, max_steps=1, device="cpu")
    with pytest.raises(CharRNNError, match="does not split evenly over 3 processes"):
        Trainer(mc, tc, corpus, tmp_path, dist=Dist(rank=0, world=3))


def test_torchrun_environment_is_read_and_checked(monkeypatch):
    monkeypatch.delenv("WORLD_SIZE", raising=False)
    assert from_env() == Dist()
    monkeypatch.setenv("WORLD_SIZE", "4")
    monkeypatch.setenv("RANK", "2")
    monkeypatch.setenv("LOCAL_RANK", "0")
    d = from_env()
    assert (d.rank, d.world, d.local_rank, d.is_main, d.enabled) == (2, 4, 0, False, True)
    monkeypatch.setenv("RANK", "4")
    with pytest.raises(CharRNNError, match="bad torchrun environment"):
        from_env()


@pytest.mark.skipif(not cpu_bf16_runs("lstm"),
                    reason="oneDNN has no bfloat16 LSTM on this CPU (AVX2 only)")
def test_bf16_autocast_trains_close_to_fp32(tmp_path, corpus_file):
    """The GPU precision path, run on CPU: same steps, bf16 rounding only."""
    corpus = Corpus.load(str(corpus_file), 0.1)
    mc = ModelConfig(vocab_size=len(corpus.vocab), num_layers=1, hidden_size=16, dropout=0)
    losses = {}
    for precision in ("fp32", "bf16"):
        tc = TrainConfig(batch_size=4, seq_len=16, max_steps=3, device="cpu",
                         precision=precision, log_every=1)
        result = Trainer(mc, tc, corpus, tmp_path / precision).run()
        losses[precision] = result.progress.train_loss
    assert abs(losses["fp32"] - losses["bf16"]) < 0.05
    assert losses["fp32"] != losses["bf16"]  # autocast really ran in bfloat16


def test_validation_scores_a_bounded_sample(tmp_path):
    p = tmp_path / "big.txt"
    p.write_text("".join(f"line {i} of the text\n" for i in range(20_000)), encoding="utf-8")
    corpus = Corpus.load(str(p), 0.1)
    mc = ModelConfig(vocab_size=len(corpus.vocab), num_layers=1, hidden_size=8)
    for cap, expected in ((2_000, 2_000), (0, len(corpus.val))):
        tc = TrainConfig(batch_size=4, seq_len=8, max_steps=1, device="cpu", val_max_chars=cap)
        trainer = Trainer(mc, tc, corpus, tmp_path / "run")
        assert trainer.validation.chars == expected
