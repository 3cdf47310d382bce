"""Output paths that cannot be written, and a closed terminal (SIGHUP) while training.

Tests run as root here, where permission bits deny nothing, so unwritable places are
/proc (no files can be created there) and a path under a regular file."""

from __future__ import annotations

import os
import select
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from charrnn import files
from charrnn.runs import checkpoint as ckpt
from charrnn.train import progress
from tests.test_faults import ENV, TINY

BAD_PAGES = ["/proc/charrnn-test.html", "plain.txt/page.html", "plain.txt/a/b/page.html"]


@pytest.fixture
def plain(tmp_path) -> Path:
    p = tmp_path / "plain.txt"
    p.write_text("a regular file, not a folder\n")
    return p


def _one_line_error(r, path: str) -> None:
    assert r.exit_code == 1, r
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith(f"charrnn: error: cannot write {path}: "), r
    assert r.stdout == ""


@pytest.mark.parametrize("path", BAD_PAGES)
def test_eval_html_to_an_unwritable_place_is_a_one_line_error(cli, trained_run, corpus_file,
                                                              plain, monkeypatch, path):
    monkeypatch.setattr("charrnn.score.evaluate.eval_command", _no_work)  # refused before scoring
    _one_line_error(cli("eval", corpus_file, "-c", trained_run, "--html", path), path)


@pytest.mark.parametrize("path", BAD_PAGES)
def test_neurons_html_to_an_unwritable_place_is_a_one_line_error(cli, trained_run,
                                                                 corpus_file, plain,
                                                                 monkeypatch, path):
    monkeypatch.setattr("charrnn.inspect.neurons.activations", _no_work)
    _one_line_error(cli("neurons", corpus_file, "-c", trained_run, "--html", path), path)


@pytest.mark.parametrize("path", BAD_PAGES)
def test_report_to_an_unwritable_place_is_a_one_line_error(cli, trained_run, plain,
                                                           monkeypatch, path):
    monkeypatch.setattr("charrnn.generate.sampler.Sampler.generate", _no_work)  # before sampling
    _one_line_error(cli("report", trained_run, "-o", path), path)


def _no_work(*a, **kw):
    raise AssertionError("long work started before the output path was checked")


def test_a_failed_page_write_keeps_the_old_page(cli, trained_run, corpus_file, tmp_path,
                                                monkeypatch):
    page = tmp_path / "s.html"
    assert cli("eval", corpus_file, "-c", trained_run, "--html", page).exit_code == 0
    before = page.read_bytes()

    def full_disk(path, data):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(files, "atomic_write_bytes", full_disk)
    r = cli("eval", corpus_file, "-c", trained_run, "--html", page)
    assert r.exit_code == 1 and r.stderr.strip().splitlines()[-1] == (
        f"charrnn: error: cannot write {page}: No space left on device"), r
    assert page.read_bytes() == before


def test_a_page_into_new_folders_still_works_and_the_check_leaves_nothing(tmp_path):
    out = files.check_out(tmp_path / "new" / "deeper" / "p.html")
    assert out.name == "p.html" and list(tmp_path.iterdir()) == []  # no probe, no folders


@pytest.mark.parametrize("out, reason", [
    ("/proc/charrnn-test-run", "No such file or directory"),
    ("plain.txt", "it is a file, not a folder"),
])
def test_train_into_an_unusable_run_folder_is_a_one_line_error(cli, corpus_file, plain,
                                                               out, reason):
    """(A folder under a file: test_faults.py::test_unusable_output_folder_is_one_clear_line.)"""
    r = cli("train", corpus_file, "-o", out, *TINY, "--max-steps", "3")
    assert r.exit_code == 1, r
    assert r.stderr.strip().splitlines() == [
        f"charrnn: error: cannot use run folder {out}/: {reason}"], r
    assert plain.read_text() == "a regular file, not a folder\n"  # nothing overwritten


# --------------------------------------------------------------------------- SIGHUP
def _wait_training(run: Path, proc: subprocess.Popen, drain: int | None = None) -> None:
    """Until the first train-loss line is logged; ``drain`` reads a pty's master meanwhile."""
    log, end = run / "metrics.jsonl", time.monotonic() + 60
    while not (log.exists() and log.stat().st_size):
        assert proc.poll() is None and time.monotonic() < end
        if drain is not None and select.select([drain], [], [], 0.02)[0]:
            os.read(drain, 65536)
        time.sleep(0.01)


def _train_cmd(run: Path, corpus: Path) -> list[str]:
    return [sys.executable, "-m", "charrnn", "train", str(corpus), "-o", str(run), *TINY,
            "--max-steps", "100000", "--eval-every", "100000"]


def test_sighup_saves_and_exits_129_with_a_one_line_note(cli, corpus_file, monkeypatch,
                                                          tmp_path):
    def hang_up_at_4(self, p):
        if p.step == 4:
            os.kill(os.getpid(), signal.SIGHUP)

    monkeypatch.setattr(progress.ConsoleProgress, "on_step", hang_up_at_4)
    r = cli("train", corpus_file, "-o", "run", *TINY, "--max-steps", "50", "--eval-every", "100")
    assert r.exit_code == 128 + signal.SIGHUP, r
    assert r.stderr.splitlines()[-1] == (
        "charrnn: terminated; checkpoint saved in run/ (continue with --resume)")
    assert ckpt.inspect(tmp_path / "run" / "latest.safetensors").meta["progress"]["step"] == 4
    assert signal.getsignal(signal.SIGHUP) == signal.SIG_DFL  # handler restored


def test_under_nohup_a_hang_up_is_still_ignored(cli, corpus_file, monkeypatch, tmp_path):
    def hang_up_at_4(self, p):
        if p.step == 4:
            os.kill(os.getpid(), signal.SIGHUP)

    monkeypatch.setattr(progress.ConsoleProgress, "on_step", hang_up_at_4)
    old = signal.signal(signal.SIGHUP, signal.SIG_IGN)  # as nohup leaves it
    try:
        r = cli("train", corpus_file, "-o", "run", *TINY, "--max-steps", "8")
        assert signal.getsignal(signal.SIGHUP) == signal.SIG_IGN
    finally:
        signal.signal(signal.SIGHUP, old)
    assert r.exit_code == 0, r
    assert ckpt.inspect(tmp_path / "run" / "latest.safetensors").meta["progress"]["step"] == 8


def test_closing_the_terminal_saves_the_run(tmp_path, corpus_file):
    """A real hang-up: the run's controlling terminal is a pty whose master we close, so
    the kernel sends SIGHUP and every later write to the terminal fails."""
    import pty

    run = tmp_path / "run"
    master, slave = pty.openpty()

    def own_terminal() -> None:  # new session, with the pty as its controlling terminal
        import fcntl
        import termios

        os.setsid()
        fcntl.ioctl(0, termios.TIOCSCTTY, 0)

    proc = subprocess.Popen(_train_cmd(run, corpus_file), env=ENV, cwd=tmp_path,
                            stdin=slave, stdout=slave, stderr=slave, preexec_fn=own_terminal)
    os.close(slave)
    try:
        _wait_training(run, proc, drain=master)
    finally:
        os.close(master)  # the terminal window closes
    assert proc.wait(timeout=60) == 128 + signal.SIGHUP
    assert ckpt.inspect(run / "latest.safetensors").meta["progress"]["step"] > 0
