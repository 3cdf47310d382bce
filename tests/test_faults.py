"""Faults a long run meets: kill -9, Ctrl-C (twice), a full or read-only disk, divergence,
two runs in one folder. Each test checks that every checkpoint on disk still loads and that
nothing already saved is lost; resume must continue exactly where the run stopped."""

from __future__ import annotations

import errno
import math
import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path
from types import SimpleNamespace

import pytest
import torch

from charrnn import files
from charrnn.config import ModelConfig, TrainConfig
from charrnn.data.corpus import Corpus
from charrnn.model.network import load_model, load_tensors
from charrnn.runs import checkpoint as ckpt
from charrnn.runs import folder as runfolder
from charrnn.score.measures import Score
from charrnn.train import loop as train
from charrnn.train import progress, validation
from tests.conftest import PATTERN

ROOT = Path(__file__).resolve().parents[1]
ENV = {**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1"}
TINY = ["--hidden-size", "16", "--layers", "1", "--embed-size", "8", "-b", "4", "-t", "16",
        "--dropout", "0", "--device", "cpu"]


def _loads(path: Path) -> ckpt.Checkpoint:
    """A checkpoint that inspects, loads into a model and holds only finite weights."""
    c = ckpt.inspect(path)
    model = load_model(c)
    assert all(torch.isfinite(p).all() for p in model.parameters())
    return c


def _temps(run: Path) -> list[Path]:
    return sorted(run.glob(f".*{files.TMP_SUFFIX}"))


# --------------------------------------------------------------------------- exact resume
class _Collect(train.Callbacks):
    """Per-step training losses; sends this process a real SIGINT after step ``stop_at``."""

    def __init__(self, stop_at: int | None = None) -> None:
        self.losses: dict[int, float] = {}
        self.stop_at = stop_at

    def on_step(self, p: train.Progress) -> None:
        self.losses[p.step] = p.train_loss
        if p.step == self.stop_at:
            os.kill(os.getpid(), signal.SIGINT)


@pytest.mark.parametrize("cell, budget", [("lstm", {"max_steps": 14}),
                                          ("gru", {"epochs": 3.2})])
def test_resume_continues_exactly_like_an_uninterrupted_run(tmp_path, cell, budget):
    text = tmp_path / "t.txt"
    # 261 training characters: 4 or 5 chunks per epoch as the per-epoch offset moves,
    # so the run crosses epoch edges and an --epochs schedule must not depend on them.
    text.write_text((PATTERN * 7)[:290])
    corpus = Corpus.load(str(text), 0.1)
    mc = ModelConfig(vocab_size=len(corpus.vocab), cell=cell, num_layers=2, hidden_size=16,
                     embed_size=8, dropout=0.3)  # dropout: the RNG state matters
    tc = TrainConfig(batch_size=4, seq_len=16, eval_every=4, patience=0, warmup_steps=3,
                     device="cpu", seed=7, **budget)

    whole = _Collect()
    train.Trainer(mc, tc, corpus, tmp_path / "whole", whole).run()
    first = _Collect(stop_at=6)
    r = train.Trainer(mc, tc, corpus, tmp_path / "split", first).run()
    assert r.reason == "interrupted" and r.saved and max(first.losses) == 6
    second = _Collect()
    resumed = train.Trainer(mc, tc, corpus, tmp_path / "split", second)
    resumed.resume(tmp_path / "split" / "latest.safetensors")
    assert resumed.run().reason == "budget"

    after = sorted(second.losses)
    assert after == list(range(7, max(whole.losses) + 1)) and len(after) >= 8
    assert [second.losses[s] for s in after] == [whole.losses[s] for s in after]
    a = load_tensors(ckpt.inspect(tmp_path / "whole" / "latest.safetensors"))
    b = load_tensors(ckpt.inspect(tmp_path / "split" / "latest.safetensors"))
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


def test_cli_resume_after_ctrl_c_matches_uninterrupted_run(cli, tmp_path, monkeypatch):
    text = tmp_path / "t.txt"
    text.write_text(PATTERN * 8)
    args = ["train", text, *TINY, "--dropout", "0.2", "--max-steps", "12", "--eval-every", "5",
            "--warmup", "4", "--patience", "0"]
    assert cli(*args, "-o", "whole").exit_code == 0

    real = progress.ConsoleProgress.on_step

    def ctrl_c_at_7(self, p):
        real(self, p)
        if p.step == 7:
            os.kill(os.getpid(), signal.SIGINT)

    monkeypatch.setattr(progress.ConsoleProgress, "on_step", ctrl_c_at_7)
    r = cli(*args, "-o", "split")
    assert r.exit_code == 130, r
    assert r.stderr.splitlines()[-1] == (
        "charrnn: interrupted; checkpoint saved in split/ (continue with --resume)")
    assert _loads(tmp_path / "split" / "latest.safetensors").meta["progress"]["step"] == 7
    monkeypatch.setattr(progress.ConsoleProgress, "on_step", real)
    assert cli("train", text, "-o", "split", "--resume", "--patience", "0").exit_code == 0
    a = load_tensors(ckpt.inspect(tmp_path / "whole" / "latest.safetensors"))
    b = load_tensors(ckpt.inspect(tmp_path / "split" / "latest.safetensors"))
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


# --------------------------------------------------------------------------- kill -9
def _spawn(run: Path, corpus: Path, *extra: str, script: str | None = None):
    args = ["train", str(corpus), "-o", str(run), *TINY, "--max-steps", "100000", *extra]
    cmd = ([sys.executable, "-c", script, *args] if script
           else [sys.executable, "-m", "charrnn", *args])
    return subprocess.Popen(cmd, env=ENV, cwd=run.parent, stdout=subprocess.DEVNULL,
                            stderr=subprocess.PIPE)


def _wait_for(path: Path, proc: subprocess.Popen, timeout: float = 60.0) -> None:
    end = time.monotonic() + timeout
    while not path.exists():
        assert proc.poll() is None, proc.stderr.read().decode()
        assert time.monotonic() < end, f"{path} never appeared"
        time.sleep(0.01)


def test_kill_9_at_random_moments_leaves_a_loadable_checkpoint(tmp_path, corpus_file):
    """Saves every step, so the kills land in steps, validations and checkpoint writes."""
    run, rng = tmp_path / "run", random.Random(5)
    last_step = 0
    for i in range(3):
        extra = ["--eval-every", "1", "--patience", "0"] + (["--resume"] if i else [])
        proc = _spawn(run, corpus_file, *extra)
        _wait_for(run / "latest.safetensors", proc)
        time.sleep(rng.uniform(0.05, 0.6))
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=30)
        proc.stderr.close()
        assert proc.returncode == -signal.SIGKILL
        step = _loads(run / "latest.safetensors").meta["progress"]["step"]
        _loads(run / "best.safetensors")
        assert step >= last_step  # each resumed session went on from the last one
        last_step = step
    assert last_step > 0


_HANG_IN_WRITE = """
import os, sys, time
from pathlib import Path
from charrnn.cli import main

real_fsync, calls = os.fsync, []

def fsync(fd):  # the 3rd checkpoint write: half the bytes written, then killed
    real_fsync(fd)
    if os.path.isdir(f"/proc/self/fd/{fd}"):  # the folder's fsync after a rename
        return
    calls.append(fd)
    if len(calls) == 3:
        os.ftruncate(fd, os.fstat(fd).st_size // 2)
        Path(sys.argv[sys.argv.index("-o") + 1], "hanging").touch()
        time.sleep(600)

os.fsync = fsync
sys.exit(main(sys.argv[1:]))
"""


@pytest.mark.skipif(not Path("/proc/self/fd").is_dir(), reason="needs /proc (Linux)")
def test_kill_9_in_the_middle_of_a_checkpoint_write(tmp_path, corpus_file, cli):
    run = tmp_path / "run"
    proc = _spawn(run, corpus_file, "--eval-every", "2", "--patience", "0",
                  script=_HANG_IN_WRITE)
    _wait_for(run / "hanging", proc)
    proc.kill()
    proc.wait(timeout=30)
    proc.stderr.close()
    half = _temps(run)
    assert len(half) == 1 and half[0].name.startswith(".latest.safetensors.")
    c = _loads(run / "latest.safetensors")  # the one before the cut-short write
    assert c.meta["progress"]["step"] == 2
    r = cli("train", corpus_file, "-o", run, "--resume", "--max-steps", "6")
    assert r.exit_code == 0, r
    assert f"removed {half[0].name}" in r.stderr and _temps(run) == []
    assert _loads(run / "latest.safetensors").meta["progress"]["step"] == 6


# --------------------------------------------------------------------------- Ctrl-C
def test_ctrl_c_saves_and_exits_130_with_a_one_line_note(tmp_path, corpus_file):
    run = tmp_path / "run"
    proc = _spawn(run, corpus_file, "--eval-every", "100000")
    log = run / "metrics.jsonl"
    end = time.monotonic() + 60
    while not (log.exists() and log.stat().st_size):  # a line every 20 steps: training
        assert proc.poll() is None and time.monotonic() < end
        time.sleep(0.02)
    assert not (run / "latest.safetensors").exists()  # nothing saved yet: Ctrl-C must save
    proc.send_signal(signal.SIGINT)
    err = proc.stderr.read().decode()
    assert proc.wait(timeout=60) == 130
    notes = [ln for ln in err.splitlines() if "interrupted" in ln]
    assert notes == [f"charrnn: interrupted; checkpoint saved in {run}/ "
                     "(continue with --resume)"], err
    assert "Traceback" not in err
    assert _loads(run / "latest.safetensors").meta["progress"]["step"] > 0


def test_plain_kill_sigterm_also_saves_and_exits_143(cli, corpus_file, monkeypatch, tmp_path):
    def kill_at_4(self, p):
        if p.step == 4:
            os.kill(os.getpid(), signal.SIGTERM)

    monkeypatch.setattr(progress.ConsoleProgress, "on_step", kill_at_4)
    r = cli("train", corpus_file, "-o", "run", *TINY, "--max-steps", "50", "--eval-every", "100")
    assert r.exit_code == 143, r
    assert r.stderr.splitlines()[-1] == (
        "charrnn: terminated; checkpoint saved in run/ (continue with --resume)")
    assert _loads(tmp_path / "run" / "latest.safetensors").meta["progress"]["step"] == 4
    assert signal.getsignal(signal.SIGTERM) == signal.SIG_DFL  # handler restored


def test_second_ctrl_c_during_the_save_does_not_corrupt_it(cli, corpus_file, monkeypatch,
                                                           tmp_path):
    sent = []

    def ctrl_c_at_3(self, p):
        if p.step == 3:
            os.kill(os.getpid(), signal.SIGINT)

    real_fsync = os.fsync

    def fsync_then_ctrl_c(fd):  # the second Ctrl-C lands mid-write, before the rename
        real_fsync(fd)
        if not sent:
            sent.append(fd)
            os.kill(os.getpid(), signal.SIGINT)

    monkeypatch.setattr(progress.ConsoleProgress, "on_step", ctrl_c_at_3)
    monkeypatch.setattr(files.os, "fsync", fsync_then_ctrl_c)
    r = cli("train", corpus_file, "-o", "run", *TINY, "--max-steps", "50",
            "--eval-every", "100")
    assert r.exit_code == 130, r
    assert sent and "Traceback" not in r.stderr
    assert _loads(tmp_path / "run" / "latest.safetensors").meta["progress"]["step"] == 3
    assert _temps(tmp_path / "run") == []


# --------------------------------------------------------------------------- full disk
@pytest.mark.parametrize("fault, message", [
    ("enospc", "No space left on device"),
    ("erofs", "Read-only file system"),
])
def test_failed_save_keeps_the_previous_checkpoint(cli, corpus_file, monkeypatch, tmp_path,
                                                   fault, message):
    """Disk full in the middle of a write (fsync fails) or the folder turned read-only
    (no temp file can be made): monkeypatched, since as root permissions do not bite."""
    latest = tmp_path / "run" / "latest.safetensors"
    seen = {}
    real_fsync, real_mkstemp = os.fsync, files.tempfile.mkstemp

    def broken(step: int) -> bool:
        if step < 4:
            return False
        seen.setdefault("before", latest.read_bytes())
        return True

    def fsync(fd):
        if fault == "enospc" and not os.path.isdir(f"/proc/self/fd/{fd}") and broken(
                seen.get("step", 0)):
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        real_fsync(fd)

    def mkstemp(*a, **kw):
        if fault == "erofs" and broken(seen.get("step", 0)):
            raise OSError(errno.EROFS, os.strerror(errno.EROFS))
        return real_mkstemp(*a, **kw)

    def on_step(self, p):
        seen["step"] = p.step

    monkeypatch.setattr(progress.ConsoleProgress, "on_step", on_step)
    monkeypatch.setattr(files.os, "fsync", fsync)
    monkeypatch.setattr(files.tempfile, "mkstemp", mkstemp)
    r = cli("train", corpus_file, "-o", "run", *TINY, "--max-steps", "20", "--eval-every", "2")
    assert r.exit_code == 1, r
    assert r.stderr.splitlines()[-1] == (
        f"charrnn: error: cannot save checkpoint run/latest.safetensors: {message}; "
        "the previous checkpoint there is intact")
    assert "Traceback" not in r.stderr
    assert latest.read_bytes() == seen["before"]
    assert _loads(latest).meta["progress"]["step"] == 2
    assert _temps(tmp_path / "run") == []


@pytest.mark.skipif(os.name != "posix" or os.geteuid() == 0,
                    reason="root ignores folder permissions (the monkeypatched test covers it)")
def test_run_folder_made_read_only_for_real_keeps_the_last_save(cli, corpus_file, monkeypatch,
                                                                 tmp_path):
    run = tmp_path / "run"

    def on_step(self, p):
        if p.step == 3:
            run.chmod(0o555)

    monkeypatch.setattr(progress.ConsoleProgress, "on_step", on_step)
    before = None
    try:
        r = cli("train", corpus_file, "-o", "run", *TINY, "--max-steps", "20",
                "--eval-every", "2")
        before = _loads(run / "latest.safetensors")
    finally:
        run.chmod(0o755)
    assert r.exit_code == 1 and "Permission denied" in r.stderr, r
    assert before.meta["progress"]["step"] == 2


def test_unusable_output_folder_is_one_clear_line(cli, corpus_file, tmp_path):
    (tmp_path / "file").write_text("x")
    r = cli("train", corpus_file, "-o", "file/run", *TINY, "--max-steps", "2")
    assert r.exit_code == 1, r
    assert r.stderr == "charrnn: error: cannot use run folder file/run/: Not a directory\n"


# --------------------------------------------------------------------------- divergence
class _Boom(torch.autograd.Function):
    """Identity forward, infinite gradient backward: a finite loss that still diverges."""

    @staticmethod
    def forward(ctx, x):
        return x.clone()

    @staticmethod
    def backward(ctx, g):
        return g * math.inf


@pytest.mark.parametrize("how, message", [
    ("loss", "diverged at step 5 (loss nan)"),
    ("grad", "diverged at step 5 (gradient norm "),
    ("val", "diverged after step 4 (validation loss nan)"),
])
def test_divergence_stops_without_a_poisoned_checkpoint(cli, corpus_file, monkeypatch,
                                                        tmp_path, how, message):
    steps = []
    real_ce = torch.nn.functional.cross_entropy

    def cross_entropy(*a, **kw):
        loss = real_ce(*a, **kw)
        if len(steps) < 4:
            return loss
        return loss * math.nan if how == "loss" else _Boom.apply(loss)

    def on_step(self, p):
        steps.append(p.step)

    def score_ids(model, ids, **kw):
        return Score(math.nan if len(steps) >= 4 else 1.0, 1)

    monkeypatch.setattr(progress.ConsoleProgress, "on_step", on_step)
    if how == "val":
        monkeypatch.setattr(validation, "score_ids", score_ids)
    else:
        monkeypatch.setattr(train, "F", SimpleNamespace(cross_entropy=cross_entropy))
    r = cli("train", corpus_file, "-o", "run", *TINY, "--max-steps", "20", "--eval-every", "2")
    assert r.exit_code == 1, r
    note = r.stderr.splitlines()[-1]
    assert message in note and "run/latest.safetensors is from before it" in note, r
    for name in ("latest", "best"):
        c = _loads(tmp_path / "run" / f"{name}.safetensors")
        assert c.meta["progress"]["step"] <= (2 if how == "val" else 4)
        if name == "latest":
            assert all(torch.isfinite(t).all() for t in load_tensors(c).values()
                       if t.is_floating_point())


# --------------------------------------------------------------------------- one run per folder
_HOLD = """
import sys, time
from pathlib import Path
from charrnn.runs import lock as runlock
with runlock.hold(Path(sys.argv[1])):
    print("locked", flush=True)
    time.sleep(600)
"""


def test_second_run_in_the_same_folder_is_refused(cli, corpus_file, tmp_path):
    run = tmp_path / "run"
    assert cli("train", corpus_file, "-o", run, *TINY, "--max-steps", "2").exit_code == 0
    before = (run / "latest.safetensors").read_bytes()
    holder = subprocess.Popen([sys.executable, "-c", _HOLD, str(run)], env=ENV,
                              stdout=subprocess.PIPE)
    try:
        assert holder.stdout.readline() == b"locked\n"
        for extra in (["--force"], ["--resume"]):
            r = cli("train", corpus_file, "-o", run, *TINY, "--max-steps", "4", *extra)
            assert r.exit_code == 1, r
            assert r.stderr == (f"charrnn: error: {run}/ is in use by another charrnn run "
                                f"(pid {holder.pid}); wait for it to end or choose another "
                                "--out\n")
        assert (run / "latest.safetensors").read_bytes() == before
    finally:
        holder.kill()  # kill -9: the OS drops the lock with the process
        holder.wait(timeout=30)
        holder.stdout.close()
    r = cli("train", corpus_file, "-o", run, "--resume", "--max-steps", "4")
    assert r.exit_code == 0, r


def test_a_run_that_fails_at_once_leaves_no_folder(cli, tmp_path):
    r = cli("train", "missing.txt", "--max-steps", "2")
    assert r.exit_code == 1
    assert list(tmp_path.iterdir()) == []


# --------------------------------------------------------------------------- names
@pytest.mark.parametrize("source, name", [
    ("../../x.txt", "x"), ("..", "run"), ("...", "run"), ("..txt", "run"), (".hidden.txt",
                                                                            "hidden"),
    ("a b?*.txt", "a_b"), ("한국어 소설.txt", "한국어_소설"), ("data/v1.2.txt", "v1.2"),
    ("x" * 300 + ".txt", "x" * 64), ("-o.txt", "-o"), ("\u202e\u200b.txt", "run"),
])
def test_default_run_folder_stays_inside_checkpoints(source, name):
    got = runfolder.run_name(source)
    assert got == name
    root = Path("checkpoints").resolve()
    assert (root / got).resolve().parent == root


def test_a_half_written_metrics_line_is_dropped_on_resume(cli, corpus_file, tmp_path):
    import json

    assert cli("train", corpus_file, "-o", "run", *TINY, "--max-steps", "20").exit_code == 0
    log = tmp_path / "run" / "metrics.jsonl"
    whole = log.read_text().splitlines()
    log.write_text(log.read_text() + '{"kind": "train", "st')  # killed mid-line
    assert cli("train", corpus_file, "-o", "run", "--resume", "--max-steps", "40").exit_code == 0
    lines = [json.loads(line) for line in log.read_text().splitlines()]
    assert len(lines) > len(whole) and lines[-1]["step"] == 40


def test_ctrl_c_during_validation_stops_at_once_and_saves(cli, corpus_file, monkeypatch,
                                                          tmp_path):
    """Validation changes no training state, so Ctrl-C need not wait for it to finish."""
    def slow_score(model, ids, **kw):
        os.kill(os.getpid(), signal.SIGINT)
        time.sleep(30)  # a long validation; the Ctrl-C must cut it short
        raise AssertionError("validation was not interrupted")

    monkeypatch.setattr(validation, "score_ids", slow_score)
    t0 = time.monotonic()
    r = cli("train", corpus_file, "-o", "run", *TINY, "--max-steps", "50", "--eval-every", "3")
    assert r.exit_code == 130, r
    assert time.monotonic() - t0 < 20
    assert _loads(tmp_path / "run" / "latest.safetensors").meta["progress"]["step"] == 3
