"""The corpus cache stays bounded: stale and orphaned entries pruned, a size cap, a command."""

from __future__ import annotations

import os

from charrnn.data import cache, cachedir, corpora


def _text(path, n: int = 50) -> str:
    path.write_text("some text to cache\n" * n)
    return str(path)


def test_prune_drops_gone_and_stale_entries_then_least_recently_used(tmp_path, monkeypatch):
    root = tmp_path / "c"
    a, b, c = (_text(tmp_path / f"{x}.txt") for x in "abc")
    for p in (a, b, c):
        cache.load(p, root, progress=False)
    d = tmp_path / "folder"
    d.mkdir()
    _text(d / "x.txt")
    corpora.split(corpora.load([str(d)], "\n", root, progress=False), 0.1)  # + a split file
    assert {e.status for e in cachedir.entries(root)} == {"ok"}
    os.remove(a)
    _text(tmp_path / "b.txt", 60)  # changed since it was encoded
    gone = {e.source: e.status for e in cachedir.prune(root, cap=10**9)}
    assert gone == {a: "gone", b: "stale"}
    left = cachedir.entries(root)
    assert len(left) == 2 and not any(root.glob("a-*")) and not any(root.glob("b-*"))
    folder = next(e for e in left if e.source == str(d))
    assert len(folder.files) == 3  # .json, .ids and the held-out split file
    other = next(e for e in left if e.source == c)
    os.utime(folder.meta, (1, 1))  # used long ago: the first to go over the cap
    removed = cachedir.prune(root, cap=other.size)
    assert [e.source for e in removed] == [str(d)]  # c fits under the cap alone
    assert cachedir.prune(root, keep=other.meta, cap=1) == []  # the entry in use stays
    monkeypatch.setenv("CHARRNN_CACHE_MAX", "2K")
    assert cachedir.cap_bytes() == 2000


def test_encoding_a_new_corpus_prunes_and_cache_command_lists_and_clears(
        cli, tmp_path, monkeypatch):
    monkeypatch.setenv("CHARRNN_CACHE_DIR", str(tmp_path / "c"))
    old = _text(tmp_path / "old.txt")
    cache.load(old, progress=False)
    os.remove(old)
    cache.load(_text(tmp_path / "new.txt"), progress=False)  # prunes the entry of old.txt
    r = cli("cache")
    assert r.exit_code == 0, r
    lines = r.stdout.splitlines()
    assert len(lines) == 2 and lines[0].endswith(str(tmp_path / "new.txt")) and " ok " in lines[0]
    assert "total in 1 entries" in lines[1]
    r = cli("cache", "--clear")
    assert r.exit_code == 0 and "removed 1 entries" in r.stderr and r.stdout == ""
    assert cachedir.entries() == []
    monkeypatch.setenv("CHARRNN_CACHE_MAX", "lots")
    r = cli("cache", "--prune")
    assert r.exit_code == 2 and "CHARRNN_CACHE_MAX='LOTS'" in r.stderr
