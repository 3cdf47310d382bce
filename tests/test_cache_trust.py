"""What the corpus cache and the copy index may be trusted with (issue 31).

A cache entry must follow the text, not just its size and time; a damaged index must
never pass a verbatim copy as novel; the cache must not leak a private file, nor keep a
file an untrusted checkpoint names; and it must be counted, listed and cleared whole.
"""

from __future__ import annotations

import json
import os
import stat
from pathlib import Path

import numpy as np
import pytest

from charrnn.data import cache, cachedir, corpora
from charrnn.errors import ConfigError
from charrnn.novelty import source
from charrnn.runs import checkpoint as ckpt
from tests.conftest import PATTERN

TINY = ["--hidden-size", "8", "--layers", "1", "--embed-size", "4", "-b", "4", "-t", "16",
        "--device", "cpu", "--dropout", "0"]
NS = 1_700_000_000 * 10**9  # one modification time for files that must look alike


def _same_time(*paths: Path) -> None:
    for p in paths:
        os.utime(p, ns=(NS, NS))


# --------------------------------------------------------------------------- item 2
def test_a_file_swapped_for_another_of_the_same_size_and_mtime_is_encoded_again(tmp_path):
    """Before, the cache keyed a file on (size, mtime): `mv b.txt a.txt` (or cp -p,
    rsync -t, tar x) trained on the old text. Now the inode and change time count too."""
    root, a, b = tmp_path / "c", tmp_path / "a.txt", tmp_path / "b.txt"
    a.write_text("ab\n" * 100)
    b.write_text("cd\n" * 100)
    _same_time(a, b)
    assert cache.load(a, root, progress=False).vocab.chars == ("\n", "a", "b")
    os.replace(b, a)  # same size, same mtime, another file
    assert cache.load(a, root, progress=False).vocab.chars == ("\n", "c", "d")
    a.write_text("ab\n" * 100)  # rewritten in place, its old mtime put back (same inode)
    _same_time(a)
    encoded = cache.load(a, root, progress=False)
    assert encoded.vocab.chars == ("\n", "a", "b")
    assert "".join(encoded.vocab.chars[i] for i in encoded.ids[:3]) == "ab\n"


def test_train_force_after_a_same_size_swap_trains_on_the_new_text(cli, tmp_path):
    (tmp_path / "a.txt").write_text(PATTERN * 10)
    (tmp_path / "b.txt").write_text(PATTERN.upper() * 10)
    _same_time(tmp_path / "a.txt", tmp_path / "b.txt")
    assert cli("train", "a.txt", "-o", "run", *TINY, "--max-steps", "1").exit_code == 0
    os.replace(tmp_path / "b.txt", tmp_path / "a.txt")
    r = cli("train", "a.txt", "-o", "run", *TINY, "--max-steps", "1", "--force")
    assert r.exit_code == 0, r
    vocab = ckpt.inspect(tmp_path / "run" / "latest.safetensors").meta["vocab"]
    assert set(vocab) == set(PATTERN.upper())


# --------------------------------------------------------------------------- item 3
@pytest.mark.parametrize("which", ["sa", "sak", "ids"])
def test_damage_in_place_with_size_and_times_kept_never_passes_a_copy_as_novel(tmp_path,
                                                                              which):
    """Before: zeroing 64 entries of the suffix array (or 40 keys) in place, size and
    mtime kept, passed the spot check, and a verbatim 40-character passage was 'novel'."""
    rng = np.random.default_rng(3)
    words = ["alpha", "beta", "gamma", "delta", "omega", "sigma", "kappa", "\n"]
    text = " ".join(rng.choice(words, 4000)) + "\n"
    path = tmp_path / "c.txt"
    path.write_text(text)
    logged: list[str] = []
    index = source.open_source(str(path), log=logged.append)
    passage = text[5000:5040]
    assert index.occurs(passage) and len(logged) == 1
    ids_path = cache.load(path, progress=False).ids_path
    target = {"ids": ids_path, "sa": ids_path.with_suffix(".sa"),
              "sak": ids_path.with_suffix(".sak")}[which]
    st, good = target.stat(), target.read_bytes()
    data = bytearray(good)
    width = {"ids": 1, "sa": 4, "sak": 8}[which]
    for j in rng.choice(len(data) // width, 64 if which != "sak" else 40, replace=False):
        data[j * width:(j + 1) * width] = bytes(width)
    with open(target, "r+b") as f:  # in place: same inode, same size
        f.write(data)
    os.utime(target, ns=(st.st_atime_ns, st.st_mtime_ns))
    logged.clear()
    index = source.open_source(str(path), log=logged.append)
    # the damage was seen: the array or keys rebuilt, the ids encoded again from the text
    assert len(logged) == (which != "ids") and target.read_bytes() == good, which
    assert index.occurs(passage) and index.report("x" + passage + "x", 1).longest == 40


# --------------------------------------------------------------------------- item 10
def test_the_cache_is_private_and_no_more_readable_than_its_sources(tmp_path, monkeypatch):
    monkeypatch.delenv("CHARRNN_CACHE_DIR")
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    old = tmp_path / "xdg" / "charrnn" / "corpora"
    old.mkdir(parents=True, mode=0o755)  # as an older version left it
    old.chmod(0o755)
    monkeypatch.setattr(os, "umask", lambda mask=0: 0o022)  # a common umask, whatever ours
    secret, public = tmp_path / "secret.txt", tmp_path / "public.txt"
    secret.write_text(PATTERN * 20)
    secret.chmod(0o600)
    public.write_text(PATTERN * 21)
    public.chmod(0o644)
    source.open_source(str(secret))  # ids, record and copy index
    cache.load(public, progress=False)
    assert stat.S_IMODE(old.stat().st_mode) == 0o700
    modes = {p.name.split("-")[0] + p.suffix: stat.S_IMODE(p.stat().st_mode)
             for p in old.iterdir()}  # .ids, .json, .sa, .sak, .sa.json
    secret_modes = {p.name: stat.S_IMODE(p.stat().st_mode) for p in old.iterdir()
                    if p.name.startswith("secret")}
    assert len(secret_modes) == 5 and set(secret_modes.values()) == {0o600}, secret_modes
    assert modes["public.ids"] == 0o644  # a readable source keeps a readable entry
    fresh = tmp_path / "made"
    cache.load(public, fresh, progress=False)
    assert stat.S_IMODE(fresh.stat().st_mode) == 0o700


# --------------------------------------------------------------------------- item 11
def test_a_checkpoint_naming_another_file_as_its_corpus_gets_nothing_cached(
        cli, trained_run, tmp_path, monkeypatch):
    """Before: a header whose corpus.source was /etc/passwd made --show-copies read it,
    keep an encoded copy in the cache and print its digest."""
    monkeypatch.setenv("CHARRNN_CACHE_DIR", str(tmp_path / "cache"))
    private = tmp_path / "private.txt"
    private.write_text("my private notes\n" * 50)
    for corpus, message in (
            ({"source": str(private), "digest": "0123456789abcdef"},
             f"{private} is not the text c.safetensors was trained on (its content does "
             "not match the recorded digest)"),
            ({"source": str(private)}, "does not record its training text's digest")):
        c = ckpt.inspect(trained_run / "best.safetensors")
        ckpt.write(tmp_path / "c.safetensors", c.numpy_weights(), {**c.meta, "corpus": corpus})
        r = cli("sample", "-c", "c.safetensors", "--show-copies", "-n", "5")
        assert r.exit_code == 1 and message in r.stderr and r.stderr.count("\n") == 1, r
        r = cli("eval", "-c", "c.safetensors", "--device", "cpu")  # scored, never kept
        assert r.exit_code in (0, 1), r
        assert not [e for e in cachedir.entries() if e.source == str(private)]
    assert cache.load(private, progress=False).digest not in r.stderr


# --------------------------------------------------------------------------- item 16
@pytest.mark.parametrize("value", ["garbage", "9" * 400 + "T"])
def test_a_bad_cache_max_is_refused_before_any_work_every_time(cli, corpus_file, trained_run,
                                                               tmp_path, monkeypatch, value):
    """Before: exit 2 the first time, after encoding; exit 0 the second (and an internal
    error for 400 nines)."""
    monkeypatch.setenv("CHARRNN_CACHE_DIR", str(tmp_path / "cache"))
    monkeypatch.setenv("CHARRNN_CACHE_MAX", value)
    for args in (["eval", "-c", trained_run], ["eval", "-c", trained_run],
                 ["sample", "-c", trained_run, "--show-copies"],
                 ["train", corpus_file, "-o", "run", *TINY],
                 ["cache"], ["cache", "--prune"]):
        r = cli(*args)
        assert r.exit_code == 2 and r.stderr.startswith(
            "charrnn: error: CHARRNN_CACHE_MAX=") and r.stderr.count("\n") == 1, (args, r)
    assert not (tmp_path / "cache").exists() and not (tmp_path / "run").exists()
    with pytest.raises(ConfigError):
        cachedir.cap_bytes()


def test_a_cache_dir_that_is_a_file_is_one_line(cli, tmp_path, monkeypatch):
    """Before: `charrnn cache` listed 0 entries and exited 0."""
    (tmp_path / "f").write_text("a file\n")
    monkeypatch.setenv("CHARRNN_CACHE_DIR", str(tmp_path / "f"))
    r = cli("cache")
    assert r.exit_code == 2 and r.stderr == (
        f"charrnn: error: CHARRNN_CACHE_DIR={tmp_path / 'f'} is a file, not a folder\n"), r


# --------------------------------------------------------------------------- item 18
def test_index_files_are_counted_listed_and_cleared_with_their_entry(cli, tmp_path,
                                                                     monkeypatch):
    """Before: .sa/.sak were outside the cap, the sidecar a 'damaged ?' entry, and all
    three survived `charrnn cache --clear`."""
    root = tmp_path / "cache"
    monkeypatch.setenv("CHARRNN_CACHE_DIR", str(root))
    path = tmp_path / "c.txt"
    path.write_text(PATTERN * 30)
    source.open_source(str(path))
    [entry] = cachedir.entries()
    assert sorted(p.suffix for p in entry.files) == [".ids", ".json", ".json", ".sa", ".sak"]
    assert entry.size == sum(p.stat().st_size for p in root.iterdir()) and entry.status == "ok"
    r = cli("cache", "--json")
    assert [json.loads(line)["status"] for line in r.stdout.splitlines()] == ["ok"]
    assert cli("cache", "--clear").exit_code == 0
    assert list(root.iterdir()) == []


# --------------------------------------------------------------------------- item 4
def test_training_on_the_current_folder_leaves_run_folders_and_the_cache_out(
        cli, tmp_path, monkeypatch):
    """Before: `cd proj; charrnn train .` put the run folder inside the corpus; --resume
    then failed forever and --force trained on its own metrics, notes and lock."""
    proj = tmp_path / "proj"
    (proj / "other" / "run").mkdir(parents=True)
    (proj / "a.txt").write_text(PATTERN * 10)
    (proj / "b.txt").write_text(PATTERN.upper() * 10)
    (proj / "other" / "run" / "metrics.jsonl").write_text('{"kind": "train"}\n')
    (proj / "other" / "run" / ".lock").write_text("123\n")  # another run's folder
    monkeypatch.setenv("CHARRNN_CACHE_DIR", str(proj / "cache"))  # the cache inside too
    monkeypatch.chdir(proj)
    for extra in ([], ["--resume"], ["--force"]):
        r = cli("train", ".", *TINY, "--max-steps", "2", *extra)
        assert r.exit_code == 0 and "changed" not in r.stderr, (extra, r)
        corpus = ckpt.inspect(proj / "checkpoints" / "proj" / "latest.safetensors").meta[
            "corpus"]
        assert corpus["files"] == 2 and corpus["skipped"] == 0, corpus
    found = corpora.walk(["."]).files
    assert sorted(map(str, found)) == ["a.txt", "b.txt"]


# --------------------------------------------------------------------------- item 17
def test_copy_checks_work_on_a_folder_run_and_a_several_file_run(cli, tmp_path):
    """Before: 'the training text ... is missing: dir1' though it existed, and --corpus
    dir1 said 'no such file'."""
    from charrnn import api

    d = tmp_path / "dir1"
    d.mkdir()
    (d / "a.txt").write_text(PATTERN * 10)
    (d / "b.txt").write_text("the owl and the pussycat went to sea.\n" * 10)
    (tmp_path / "c.txt").write_text(PATTERN * 5)
    assert cli("train", "dir1", "-o", "folder", *TINY, "--max-steps", "3").exit_code == 0
    assert cli("train", "dir1/a.txt", "c.txt", "-o", "two", *TINY,
               "--max-steps", "3").exit_code == 0
    for run, corpus in (("folder", []), ("folder", ["--corpus", "dir1"]), ("two", []),
                        ("two", ["--corpus", "dir1/a.txt", "--corpus", "c.txt"])):
        r = cli("sample", "-c", run, "-n", "5", "--show-copies", "--seed", "1", *corpus)
        assert r.exit_code == 0, (run, corpus, r)
        assert r.stderr.strip().splitlines()[-1].startswith("charrnn: seed 1: "), r
    model = api.load(tmp_path / "folder")
    owl = "the owl and the pussycat went to sea.\n"
    assert model.copies(owl).longest == len(owl)  # b.txt's text: the folder was indexed
    assert not model.is_novel(owl) and model.is_novel(owl.upper())
    r = cli("sample", "-c", "folder", "--novel", "-n", "5", "--corpus", "c.txt")
    assert r.exit_code == 1 and "is not the text" in r.stderr, r
