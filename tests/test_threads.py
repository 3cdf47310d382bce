"""A busy machine: how many threads torch gets, and a time budget kept as a deadline."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time

import pytest
import torch

from charrnn import threads
from charrnn.model.device import Governor
from charrnn.score.loss import OutOfTime
from charrnn.train import validation

CORES = threads.cores()


@pytest.mark.parametrize(("others", "available", "count"), [
    (None, 2, 2), (0.0, 2, 2), (0.1, 2, 2), (0.4, 2, 2), (0.5, 2, 1), (1.0, 2, 1),
    (1.9, 2, 1), (3.0, 2, 1), (0.9, 8, 7), (2.5, 8, 5), (0.0, 1, 1)])
def test_the_cores_left_by_other_work_are_used(others, available, count):
    assert threads.choose(others, available) == count


class _Stat:
    """A /proc/stat whose busy ticks the test moves."""

    def __init__(self, tmp_path, monkeypatch):
        self.path, self.busy, self.own = tmp_path / "stat", 0, 0.0
        self.write()
        monkeypatch.setattr(threads, "_STAT", self.path)
        monkeypatch.setattr(threads.time, "process_time", lambda: self.own)
        monkeypatch.setattr(os, "sched_getaffinity", lambda _: {0, 1}, raising=False)

    def write(self) -> None:
        half = self.busy // 2
        lines = ["cpu  0 0 0 0 0 0 0 0 0 0"]  # the total line is not read
        for cpu, ticks in enumerate((half, self.busy - half)):
            lines.append(f"cpu{cpu} {ticks} 0 0 100000 50 0 0 0 0 0")
        self.path.write_text("\n".join([*lines, "intr 1 2 3", "ctxt 5"]) + "\n")


def test_load_counts_the_busy_time_of_others_not_our_own(tmp_path, monkeypatch):
    stat = _Stat(tmp_path, monkeypatch)
    hz = os.sysconf("SC_CLK_TCK")
    load = threads.Load()
    time.sleep(0.2)
    stat.busy, stat.own = int(1.5 * 0.2 * hz), 0.1  # 1.5 cores busy, 0.5 of them ours
    stat.write()
    assert load.others() == pytest.approx(1.0, abs=0.3)
    time.sleep(0.2)
    stat.own += 0.2  # next 0.2 s: only our own work (1 core)
    stat.busy += int(0.2 * hz)
    stat.write()
    assert load.others() == pytest.approx(0.0, abs=0.3)


def test_a_thread_count_the_user_set_wins(monkeypatch):
    monkeypatch.setenv("OMP_NUM_THREADS", "3")
    chosen = threads.torch_threads(threads.Load())
    assert chosen.count == 3 and chosen.describe() == "3 threads (OMP_NUM_THREADS=3)"
    monkeypatch.delenv("OMP_NUM_THREADS")
    chosen = threads.torch_threads(threads.Load())
    assert chosen.user is None and 1 <= chosen.count <= CORES


def test_describe_says_what_was_seen():
    assert threads.Threads(2, 2, 0.01).describe() == "2 threads of 2 cores (idle)"
    assert threads.Threads(1, 2, 1.04).describe() == ("1 thread of 2 cores (1.0 busy with "
                                                       "other work)")


class _Readings:
    def __init__(self, values):
        self.values = list(values)

    def others(self, window=0.0):
        return self.values.pop(0)


def test_the_governor_drops_a_thread_at_once_and_takes_it_back_after_two_readings(
        monkeypatch):
    monkeypatch.delenv("OMP_NUM_THREADS", raising=False)
    monkeypatch.setattr(threads, "cores", lambda: 2)
    before = torch.get_num_threads()
    try:
        gov = Governor(_Readings([0.0, 1.0, 0.1, 0.0, 0.0]), every=0.0)  # type: ignore[arg-type]
        assert gov.threads.count == 2 and torch.get_num_threads() == 2
        assert gov.tick() == "threads: 2 -> 1 thread of 2 cores (1.0 busy with other work)"
        assert torch.get_num_threads() == 1
        assert gov.tick() is None  # one idle reading is not enough
        assert gov.tick() == "threads: 1 -> 2 threads of 2 cores (idle)"
        assert gov.tick() is None and torch.get_num_threads() == 2
    finally:
        torch.set_num_threads(before)


@pytest.mark.skipif(CORES < 2, reason="needs a second core to keep busy")
def test_train_beside_a_busy_core_uses_the_cores_left(corpus_file, tmp_path):
    """A real process spinning on a core: the run takes one thread fewer than the cores,
    and says so in its progress line."""
    spinner = subprocess.Popen([sys.executable, "-c", "while 1: pass"])
    env = {k: v for k, v in os.environ.items() if k != "OMP_NUM_THREADS"}
    try:
        time.sleep(0.3)
        r = subprocess.run([sys.executable, "-m", "charrnn", "train", str(corpus_file), "-o",
                            str(tmp_path / "run"), "--max-steps", "5", "--hidden-size", "16",
                            "--preview", "0"], capture_output=True, text=True, env=env,
                           cwd=tmp_path)
    finally:
        spinner.kill()
        spinner.wait()
    assert r.returncode == 0, r.stderr
    line = next(x for x in r.stderr.splitlines() if x.startswith("device "))
    count = int(line.split("(", 1)[1].split(",")[1].split()[0])
    assert count < CORES and "busy with other work" in line, line


def _big_corpus(tmp_path):
    p = tmp_path / "big.txt"
    p.write_text("".join(f"line {i % 997} of a long text, {i * 7919 % 10007}\n"
                         for i in range(120_000)), encoding="utf-8")
    return p  # 3.6M characters: 360k held out, far more than a 4 s budget can score


def test_a_time_budget_is_a_deadline_however_big_the_held_out_text(cli, tmp_path):
    """Beside a busy core, with every held-out character asked for (--val-max-chars 0),
    a 4 s run ends within its grace (5 s), its checkpoint written; the validation sample
    was cut to fit, and the run said so."""
    corpus = _big_corpus(tmp_path)
    cli("train", corpus, "-o", "warm", "--max-steps", "1", "--hidden-size", "16",
        "--val-max-chars", "100", "--preview", "0")  # encoded first: not what is timed here
    spinner = subprocess.Popen([sys.executable, "-c", "while 1: pass"])
    try:
        t0 = time.perf_counter()
        r = cli("train", corpus, "-o", "run", "--max-time", "4s", "--val-max-chars", "0",
                "--hidden-size", "256", "--preview", "0")
        wall = time.perf_counter() - t0
    finally:
        spinner.kill()
        spinner.wait()
    assert r.exit_code == 0, r
    assert wall < 4 + 5, (wall, r.stderr)
    note = next(x for x in r.stderr.splitlines() if x.startswith("validation scores"))
    scored, held_out, rate = (float(n.replace(",", "")) for n in
                              (note.split()[2], note.split()[5], note.split()[-2]))
    assert scored < held_out and held_out / rate > 4, note  # all of it: longer than the budget
    meta = json.loads(cli("info", "run", "--json").stdout)
    assert meta["progress"]["val_loss"] is not None and meta["progress"]["elapsed"] < 4 + 2.5


def test_a_validation_out_of_time_is_skipped_and_said(cli, corpus_file, monkeypatch):
    """Scoring that would end past the deadline gives up: the run saves without it."""
    def endless(model, ids, until=None, **kw):
        while until is not None and time.perf_counter() <= until:
            time.sleep(0.05)  # far longer than the time left
        raise OutOfTime

    monkeypatch.setattr(validation, "score_ids", endless)
    t0 = time.perf_counter()
    r = cli("train", corpus_file, "-o", "run", "--max-time", "1.5s", "--hidden-size", "16",
            "--preview", "0")
    assert r.exit_code == 0, r
    assert time.perf_counter() - t0 < 1.5 + 5
    assert "skipped: it would have ended past the time budget" in r.stderr, r.stderr
    meta = json.loads(cli("info", "run/latest.safetensors", "--json").stdout)
    assert meta["progress"]["val_loss"] is None and meta["progress"]["step"] > 0
