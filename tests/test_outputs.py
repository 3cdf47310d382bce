"""Output paths that cannot be written, and a closed terminal (SIGHUP) while training.

Tests run as root here, where permission bits deny nothing, so unwritable places are
/proc (no files can be created there) and a path under a regular file."""

from __future__ import annotations

import contextlib
import os
import select
import signal
import stat
import subprocess
import sys
import threading
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


# --------------------------------------------------------------------------- what is there
def _reader(fifo: Path, got: list) -> threading.Thread:
    def read() -> None:
        with open(fifo, "rb") as f:
            got.append(f.read())
    t = threading.Thread(target=read, daemon=True)
    t.start()
    return t


PAGE_COMMANDS = {  # command -> argv writing its page to OUT
    "export": lambda run, corpus: ["export", run, "--web"],
    "report": lambda run, corpus: ["report", run, "-n", "5", "-o"],
    "eval": lambda run, corpus: ["eval", corpus, "-c", run, "--max-chars", "50", "--html"],
    "neurons": lambda run, corpus: ["neurons", corpus, "-c", run, "--max-chars", "50",
                                    "--top", "3", "--html"],
}


@pytest.mark.parametrize("command", sorted(PAGE_COMMANDS))
def test_a_page_to_a_fifo_goes_through_it_and_the_fifo_stays(cli, trained_run, corpus_file,
                                                             tmp_path, command):
    """One writer for every page: a FIFO (as a device) is written through, never replaced
    by a regular file (before, the temp file was renamed over it)."""
    fifo = tmp_path / "page.fifo"
    os.mkfifo(fifo)
    got: list[bytes] = []
    reader = _reader(fifo, got)
    r = cli(*PAGE_COMMANDS[command](trained_run, corpus_file), fifo)
    reader.join(30)
    assert r.exit_code == 0, r
    assert stat.S_ISFIFO(os.lstat(fifo).st_mode)
    assert got and got[0].startswith(b"<!DOCTYPE html>") and got[0].rstrip().endswith(b"</html>")
    assert [p.name for p in tmp_path.iterdir()] == ["page.fifo"]  # no temp file left


def test_a_page_to_a_character_device_is_written_through_it(cli, trained_run, tmp_path):
    """A null device made in the test's own folder (never a real /dev node: a regression
    would replace it); root only, and only where the folder allows device nodes."""
    dev = tmp_path / "null"
    try:
        os.mknod(dev, stat.S_IFCHR | 0o666, os.makedev(1, 3))
        os.close(os.open(dev, os.O_WRONLY))
    except OSError:
        pytest.skip("cannot make a usable device node here (not root, or a nodev mount)")
    r = cli("report", trained_run, "-n", "5", "-o", dev)
    assert r.exit_code == 0 and r.stderr == f"charrnn: wrote {dev}\n", r
    assert stat.S_ISCHR(os.lstat(dev).st_mode) and os.lstat(dev).st_rdev == os.makedev(1, 3)


def test_a_page_to_a_symlink_replaces_its_target_and_keeps_the_link(cli, trained_run,
                                                                    tmp_path):
    (tmp_path / "pages").mkdir()
    target = tmp_path / "pages" / "real.html"
    target.write_text("old page")
    link = tmp_path / "report.html"
    link.symlink_to(Path("pages") / "real.html")
    dangling = tmp_path / "new.html"
    dangling.symlink_to(Path("pages") / "later.html")
    for out in (link, dangling):
        assert cli("report", trained_run, "-n", "5", "-o", out).exit_code == 0
        assert out.is_symlink()
    assert target.read_text().startswith("<!DOCTYPE html>")
    assert (tmp_path / "pages" / "later.html").read_text().startswith("<!DOCTYPE html>")
    assert sorted(p.name for p in (tmp_path / "pages").iterdir()) == ["later.html", "real.html"]


def test_a_page_to_an_open_descriptor_goes_to_that_descriptor(cli, trained_run):
    """/proc/self/fd/N (as /dev/stdout or >(gzip) name one): written into the open file,
    whatever it is; before, the write was refused (or, for /dev/stdout, the link replaced)."""
    r_fd, w_fd = os.pipe()
    got: list[bytes] = []

    def read() -> None:
        with os.fdopen(r_fd, "rb") as f:
            got.append(f.read())
    reader = threading.Thread(target=read, daemon=True)
    reader.start()
    try:
        r = cli("report", trained_run, "-n", "5", "-o", f"/proc/self/fd/{w_fd}")
    finally:
        os.close(w_fd)
    reader.join(30)
    assert r.exit_code == 0, r
    assert got[0].startswith(b"<!DOCTYPE html>")


def test_a_page_to_a_socket_is_refused_and_the_socket_stays(cli, trained_run, tmp_path,
                                                            monkeypatch):
    import socket

    path = tmp_path / "sock"
    with socket.socket(socket.AF_UNIX) as s:
        s.bind(str(path))
        monkeypatch.setattr("charrnn.generate.sampler.Sampler.generate", _no_work)
        r = cli("report", trained_run, "-o", path)
        assert stat.S_ISSOCK(os.lstat(path).st_mode)
    assert r.exit_code == 1 and r.stderr == (
        f"charrnn: error: cannot write {path}: it is a socket, not a regular file\n"), r


def test_a_kept_file_never_replaces_a_fifo(tmp_path):
    """Checkpoints, cache entries and notes (``atomic_write_bytes``, ``replacing``) refuse
    a path holding something other than a regular file; through a link they replace the
    link's target."""
    fifo = tmp_path / "best.safetensors"
    os.mkfifo(fifo)
    with pytest.raises(files.NotAFile, match="named pipe"):
        files.atomic_write_bytes(fifo, b"x")
    with pytest.raises(files.NotAFile, match="named pipe"), files.replacing(fifo) as f:
        f.write(b"x")
    assert stat.S_ISFIFO(os.lstat(fifo).st_mode) and sorted(tmp_path.iterdir()) == [fifo]
    (tmp_path / "real").write_bytes(b"old")
    (tmp_path / "link").symlink_to("real")
    files.atomic_write_bytes(tmp_path / "link", b"new")
    assert (tmp_path / "link").is_symlink() and (tmp_path / "real").read_bytes() == b"new"


# --------------------------------------------------------------------------- stdout
STDOUT_COMMANDS = [["info", "RUN"], ["info", "RUN", "--json"], ["list", "--root", "ROOT"],
                   ["list", "--root", "ROOT", "--json"], ["cache"],
                   ["neurons", "-c", "RUN", "--max-chars", "40", "--top", "3"],
                   ["eval", "CORPUS", "-c", "RUN", "--device", "cpu"],
                   ["sample", "-c", "RUN", "-n", "20000"]]


def test_a_full_disk_or_a_closed_pipe_on_stdout(trained_run, corpus_file, tmp_path):
    """stdout on a full disk: one line and exit 1 (before: 'internal error: OSError');
    into a closed pipe: exit 0 quietly, for every command as for sample (before: exit 1).
    /dev/full is only opened for writing here, as a shell's '>' would."""
    if not os.path.exists("/dev/full"):
        pytest.skip("no /dev/full here")
    env = {**ENV, "CHARRNN_CACHE_DIR": str(tmp_path / "cache")}
    subst = {"RUN": str(trained_run), "ROOT": str(trained_run.parent),
             "CORPUS": str(corpus_file)}
    procs = []
    for argv in STDOUT_COMMANDS:
        args = [sys.executable, "-m", "charrnn", *(subst.get(a, a) for a in argv)]
        with open("/dev/full", "wb") as full:
            procs.append(("full", argv, subprocess.Popen(args, stdout=full, env=env,
                                                         stderr=subprocess.PIPE)))
        r_fd, w_fd = os.pipe()
        os.close(r_fd)  # nobody will ever read: the first write fails with EPIPE
        procs.append(("closed", argv, subprocess.Popen(args, stdout=w_fd, env=env,
                                                       stderr=subprocess.PIPE)))
        os.close(w_fd)
    for how, argv, p in procs:
        err = p.communicate(timeout=120)[1].decode()
        if how == "full":
            assert (p.returncode, err) == (
                1, "charrnn: error: cannot write to stdout: No space left on device\n"), argv
        else:
            assert (p.returncode, err) == (0, ""), (argv, err)


def test_fifos_named_like_a_runs_files_or_a_cache_record_never_block(cli, trained_run,
                                                                       corpus_file, tmp_path,
                                                                       monkeypatch):
    """A FIFO is opened by nothing that expects a regular file: a run's metrics.jsonl or
    inputs.json, a cache record. A watchdog lets any blocked reader go after 8 s, so a
    regression fails here instead of hanging the suite."""
    import shutil

    run = tmp_path / "run"
    shutil.copytree(trained_run, run)
    cache_dir = tmp_path / "cache"
    cache_dir.mkdir()
    monkeypatch.setenv("CHARRNN_CACHE_DIR", str(cache_dir))
    fifos = [run / "metrics.jsonl", run / "inputs.json", cache_dir / "x-0123.json"]
    for f in fifos:
        f.unlink(missing_ok=True)
        os.mkfifo(f)
    done = threading.Event()

    def watchdog() -> None:  # opening the other end lets a blocked reader or writer go
        while not done.wait(8):
            for f, flags in ((f, fl) for f in fifos for fl in (os.O_RDONLY, os.O_WRONLY)):
                with contextlib.suppress(OSError):
                    os.close(os.open(f, flags | os.O_NONBLOCK))
    threading.Thread(target=watchdog, daemon=True).start()
    try:
        start = time.monotonic()
        r = cli("cache")
        assert r.exit_code == 0 and " damaged " in r.stdout, r
        r = cli("train", corpus_file, "-o", run, *TINY, "--resume", "--max-steps", "200")
        assert r.exit_code == 1 and r.stderr.splitlines()[-1] == (
            f"charrnn: error: cannot write to {run}/: it is a named pipe (FIFO), not a "
            "regular file"), r
        r = cli("report", run, "-n", "5", "-o", tmp_path / "r.html")
        assert r.exit_code == 0, r
        assert time.monotonic() - start < 8
    finally:
        done.set()


def test_an_export_folder_behind_a_symlink_is_replaced_and_the_link_kept(cli, trained_run,
                                                                        tmp_path):
    (tmp_path / "real").mkdir()
    (tmp_path / "site").symlink_to("real")
    for _ in range(2):  # a first export, then one replacing it
        r = cli("export", trained_run, "--web-dir", tmp_path / "site")
        assert r.exit_code == 0, r
        assert (tmp_path / "site").is_symlink() and (tmp_path / "real" / "index.html").is_file()
