"""Training on folders, several files and pipes (charrnn.data.corpora, charrnn.data.inputs)."""

from __future__ import annotations

import io
import json
import os
import sys
import threading
from pathlib import Path

import numpy as np
import pytest

from charrnn.data import corpora
from charrnn.data.corpus import Corpus
from charrnn.runs import checkpoint as ckpt

TINY = ["--hidden-size", "16", "--layers", "1", "--embed-size", "8", "-b", "4", "-t", "16"]


def _folder(root: Path) -> Path:
    """Two text files that differ, one nested, plus files that must be skipped."""
    d = root / "notes"
    (d / "sub").mkdir(parents=True)
    (d / ".git").mkdir()
    (d / "a.txt").write_text("one fish two fish\n" * 40, encoding="utf-8")
    (d / "sub" / "b.md").write_text("RED BLUE GREEN " * 50, encoding="utf-8")  # no newline
    (d / ".git" / "config").write_text("hidden folder: never read\n")
    (d / "img.bin").write_bytes(b"\x89PNG\x00\x00\x01" * 20)
    (d / "latin1.txt").write_bytes("caf\xe9 ".encode("latin-1") * 20)
    (d / "empty.txt").write_bytes(b"")
    (d / "sub" / "loop").symlink_to("..")  # a link back up: must not hang
    return d


def test_folder_is_joined_sorted_with_separator_and_skips_unusable(tmp_path):
    d = _folder(tmp_path)
    joined = corpora.load([str(d)], "\n==\n", tmp_path / "cache", progress=False)
    assert joined.files == [str(d / "a.txt"), str(d / "sub" / "b.md")]
    text = joined.vocab.decode(joined.ids)
    a, b = (d / "a.txt").read_text(), (d / "sub" / "b.md").read_text()
    assert text == a + "\n==\n" + b + "\n"  # b gets its final newline
    assert sorted(r for _, r in joined.skipped) == ["binary", "empty", "not UTF-8"]
    starts, ends = joined.spans.T
    assert text[starts[1]:ends[1]] == b + "\n" and text[starts[0]:ends[0]] == a


def test_held_out_part_comes_from_every_file(tmp_path):
    d = _folder(tmp_path)
    corpus = Corpus.load([str(d)], 0.2)
    val = corpus.vocab.decode(corpus.val)
    train = corpus.vocab.decode(corpus.train)
    assert "fish" in val and "GREEN" in val  # both files, not only the last one
    assert len(val) == int(len(corpus.train) + len(corpus.val)) // 5
    assert val.startswith("sh\n") or "fish" in val.split("\n")[0]  # a's tail first
    assert "fish" in train and "RED" in train
    assert corpus.describe()["files"] == 2


def test_cache_entry_follows_every_file(tmp_path):
    d = _folder(tmp_path)
    cache = tmp_path / "cache"
    first = corpora.load([str(d)], "\n", cache, progress=False)
    again = corpora.load([str(d)], "\n", cache, progress=False)
    assert again.digest == first.digest and again.ids_path == first.ids_path
    (d / "sub" / "b.md").write_text("RED BLUE GREEN YELLOW\n" * 30)
    changed = corpora.load([str(d)], "\n", cache, progress=False)
    assert changed.digest != first.digest and "Y" in changed.vocab
    (d / "c.txt").write_text("a new file\n")
    added = corpora.load([str(d)], "\n", cache, progress=False)
    assert len(added.files) == 3


def test_cli_folder_run_skips_with_one_line_and_eval_scores_what_training_held_out(
        cli, tmp_path):
    d = _folder(tmp_path)
    r = cli("train", d, "--max-steps", "4", "--eval-every", "2", *TINY)
    assert r.exit_code == 0, r
    skipped = [ln for ln in r.stderr.splitlines() if ln.startswith("skipped")]
    assert skipped == [f"skipped 3 of 5 files: 1 binary, 1 empty, 1 not UTF-8; first: "
                       f"{d / 'empty.txt'} (empty) (--verbose lists them all)"], r
    run = tmp_path / "checkpoints" / "notes"  # named after the folder
    meta = ckpt.inspect(run / "best.safetensors").meta
    assert meta["corpus"]["inputs"] == [str(d)] and meta["corpus"]["files"] == 2
    r = cli("eval", "-c", run, "--json")
    assert r.exit_code == 0, r
    report = json.loads(r.stdout)
    assert report["loss"] == pytest.approx(meta["progress"]["best_val_loss"], abs=1e-6)
    assert report["chars"] == meta["corpus"]["val_chars"] - 1
    r = cli("info", run)
    assert "2 used, 3 skipped" in r.stdout


def test_verbose_lists_every_skipped_file_and_resume_says_what_changed(cli, tmp_path):
    d = _folder(tmp_path)
    (tmp_path / "extra.txt").write_text("three fish\n" * 20)
    r = cli("train", d, "extra.txt", "-o", "run", "--verbose", "--max-steps", "2", *TINY)
    assert r.exit_code == 0, r
    assert "inputs: run folder" not in r.stderr  # -o given: no note
    assert sum("  skipped " in ln for ln in r.stderr.splitlines()) == 3
    (d / "a.txt").write_text("two fish one fish\n" * 40)
    (d / "new.txt").write_text("two fish\n" * 10)
    r = cli("train", "-o", "run", "--resume", "--max-steps", "4")
    assert r.exit_code == 0, r
    line = next(ln for ln in r.stderr.splitlines() if "changed since this run started" in ln)
    assert f"1 changed ({d / 'a.txt'})" in line and f"1 new ({d / 'new.txt'})" in line


def test_several_inputs_get_a_default_run_name_shown_at_the_start(cli, tmp_path):
    (tmp_path / "x.txt").write_text("the quick brown fox\n" * 30)
    (tmp_path / "y.txt").write_text("jumps over the lazy dog\n" * 30)
    r = cli("train", "x.txt", "y.txt", "x.txt", "--max-steps", "1", "--file-separator",
            "\\n~~\\n", *TINY)
    assert r.exit_code == 0, r
    assert r.stderr.splitlines()[0] == ("3 inputs: run folder checkpoints/x-plus-2/ "
                                        "(choose one with -o)")
    meta = ckpt.inspect(tmp_path / "checkpoints" / "x-plus-2" / "latest.safetensors").meta
    assert meta["corpus"]["separator"] == "\n~~\n" and "~" in meta["vocab"]
    assert meta["corpus"]["files"] == 2  # x.txt named twice is read once


def _one_line(r, code: int = 1) -> None:
    assert r.exit_code == code, r
    assert r.stderr.count("\n") == 1 and "Traceback" not in r.stderr, r


def test_folder_without_text_and_vanishing_files_are_one_line_errors(cli, tmp_path,
                                                                     monkeypatch):
    (tmp_path / "bin").mkdir()
    (tmp_path / "bin" / "a.so").write_bytes(b"\x7fELF\x00\x00" * 10)
    (tmp_path / "nothing").mkdir()
    r = cli("train", "bin")
    _one_line(r)
    assert "no usable text in 1 files: skipped all 1 of 1 files: 1 binary" in r.stderr
    _one_line(cli("train", "nothing"))
    d = _folder(tmp_path)
    real = corpora.file_blocks

    def vanishing(path, *a, **k):  # b.md disappears while a.txt is being read
        (d / "sub" / "b.md").unlink(missing_ok=True)
        return real(path, *a, **k)

    monkeypatch.setattr(corpora, "file_blocks", vanishing)
    r = cli("train", d, "--max-steps", "1")
    _one_line(r)
    assert "vanished" in r.stderr or "changed while" in r.stderr
    assert not (tmp_path / "checkpoints" / "notes" / "latest.safetensors").exists()


def _stdin(monkeypatch, data: bytes) -> None:
    monkeypatch.setattr(sys, "stdin", io.TextIOWrapper(io.BytesIO(data)))


def test_stdin_is_kept_with_the_run_for_resume_and_eval(cli, tmp_path, monkeypatch):
    text = "".join(f"line {i} of the log\n" for i in range(300)).encode()
    _stdin(monkeypatch, text)
    r = cli("train", "-", "--max-steps", "2", *TINY)
    assert r.exit_code == 0, r
    assert "checkpoints/stdin/" in r.stderr.splitlines()[0]
    run = tmp_path / "checkpoints" / "stdin"
    assert (run / "stdin.txt").read_bytes() == text
    _stdin(monkeypatch, b"")  # nothing piped the second time
    r = cli("train", "-o", run, "--resume", "--max-steps", "4")
    assert r.exit_code == 0, r
    assert ckpt.inspect(run / "latest.safetensors").meta["progress"]["step"] == 4
    assert cli("eval", "-c", run).exit_code == 0


@pytest.mark.parametrize("data, message", [
    (b"", "stdin closed before any text came through (0 bytes)"),
    (b"\x7fELF\x02\x01\x01\x00" + bytes(range(256)), "stdin looks like a binary file"),
    (b"  \n\n", "stdin held only whitespace"),
])
def test_bad_pipes_are_one_line_errors(cli, tmp_path, monkeypatch, data, message):
    _stdin(monkeypatch, data)
    r = cli("train", "-", "-o", "run")
    _one_line(r)
    assert message in r.stderr, r
    assert not (tmp_path / "run" / "stdin.txt").exists()


@pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="needs named pipes")
def test_named_pipe_is_read_as_a_stream(cli, tmp_path):
    fifo = tmp_path / "fifo"
    os.mkfifo(fifo)
    text = "piped through a named pipe\n" * 50

    def writer() -> None:
        with open(fifo, "w") as f:
            f.write(text)

    t = threading.Thread(target=writer)
    t.start()
    r = cli("train", fifo, "-o", "run", "--max-steps", "1", *TINY)
    t.join(timeout=30)
    assert r.exit_code == 0, r
    assert (tmp_path / "run" / "pipe-1.txt").read_text() == text
    meta = ckpt.inspect(tmp_path / "run" / "latest.safetensors").meta
    assert meta["corpus"]["source"] == "run/pipe-1.txt"


def test_resume_with_a_pipe_is_refused(cli, tmp_path, monkeypatch, corpus_file):
    assert cli("train", corpus_file, "-o", "run", "--max-steps", "1", *TINY).exit_code == 0
    _stdin(monkeypatch, b"more text\n")
    r = cli("train", "-", "-o", "run", "--resume")
    _one_line(r)
    assert "--resume cannot read a pipe" in r.stderr


def test_split_shares_add_up_across_tiny_files(tmp_path):
    d = tmp_path / "many"
    d.mkdir()
    for i in range(30):
        (d / f"{i:02d}.txt").write_text(f"f{i}\n")  # 4 characters each
    joined = corpora.load([str(d)], "", tmp_path / "c", progress=False)
    train, val = corpora.split(joined, 0.25)
    assert len(val) == len(joined.ids) // 4 and len(train) + len(val) == len(joined.ids)
    assert np.array_equal(np.sort(np.concatenate([train, val])), np.sort(joined.ids))


def test_force_with_an_unusable_new_pipe_keeps_the_old_runs_text(cli, tmp_path, monkeypatch):
    """Before: `printf 'hello\\n' | charrnn train - -o run --force` failed ('text too
    short') after overwriting run/stdin.txt, the old run's only copy of its corpus."""
    text = "".join(f"line {i} of the log\n" for i in range(300)).encode()
    _stdin(monkeypatch, text)
    assert cli("train", "-", "-o", "run", "--max-steps", "2", *TINY).exit_code == 0
    before = {p.name: p.read_bytes() for p in (tmp_path / "run").iterdir() if p.is_file()}
    _stdin(monkeypatch, b"hello\n")
    r = cli("train", "-", "-o", "run", "--max-steps", "2", *TINY, "--force")
    assert r.exit_code == 1 and "text too short" in r.stderr, r
    after = {p.name: p.read_bytes() for p in (tmp_path / "run").iterdir() if p.is_file()}
    assert after == before  # checkpoints, log and stdin.txt all as they were
    _stdin(monkeypatch, b"")
    r = cli("train", "-o", "run", "--resume", "--max-steps", "3")
    assert r.exit_code == 0, r  # the old run goes on with its own text


def test_a_lone_nul_on_stdin_is_binary_not_utf16(cli, monkeypatch):
    for data in (b"\x00", b"ab\x00", b"\x00a"):
        _stdin(monkeypatch, data)
        r = cli("train", "-", "-o", "run")
        _one_line(r)
        assert "stdin looks like a binary file (NUL byte at offset" in r.stderr, (data, r)


def test_text_set_aside_by_a_killed_start_is_put_back(cli, tmp_path, monkeypatch):
    """A --force start killed after setting the old run's text aside leaves
    .stdin.txt.aside: the next run in that folder puts it back before anything else."""
    _stdin(monkeypatch, "".join(f"line {i}\n" for i in range(300)).encode())
    assert cli("train", "-", "-o", "run", "--max-steps", "2", *TINY).exit_code == 0
    os.replace(tmp_path / "run" / "stdin.txt", tmp_path / "run" / ".stdin.txt.aside")
    _stdin(monkeypatch, b"")
    r = cli("train", "-o", "run", "--resume", "--max-steps", "3")
    assert r.exit_code == 0 and "put back stdin.txt" in r.stderr, r
    assert not (tmp_path / "run" / ".stdin.txt.aside").exists()
