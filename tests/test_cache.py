"""The streamed, cached corpus encoding must be exactly read_text + Vocab, block edges or not."""

import os

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from charrnn.data import cache, cachedir
from charrnn.data.batches import val_windows
from charrnn.data.corpus import Corpus
from charrnn.data.text import Vocab, read_text, text_digest
from charrnn.errors import CharRNNError


def reference(path):
    text = read_text(path)
    vocab = Vocab.from_text(text)
    return vocab, vocab.encode(text), text_digest(text)


def assert_same(path, cache_dir, block_size):
    vocab, ids, digest = reference(path)
    got = cache.load(path, cache_dir, block_size=block_size, progress=False)
    assert got.vocab == vocab
    assert got.ids.dtype == vocab.dtype and np.array_equal(np.asarray(got.ids), ids)
    assert got.digest == digest


TRICKY = ("\ufeffcaf\u00e9\r\nna\u00efve\r\r\n\u4e00\u4e8c \U0001d11e\U0001f600\rend\r"
          "\u0e20\u0e32\u0e29\u0e32 \ud55c\uad6d\uc5b4\r\n")


@pytest.mark.parametrize("block_size", [1, 2, 3, 4, 5, 7, 64, 1 << 20])
def test_block_edges_split_characters_and_crlf(tmp_path, block_size):
    p = tmp_path / "t.txt"
    p.write_bytes(TRICKY.encode("utf-8") * 3)
    assert_same(p, tmp_path / f"c{block_size}", block_size)


@settings(max_examples=60, deadline=None)
@given(text=st.text(st.characters(blacklist_categories=("Cs",), blacklist_characters="\x00"),
                    min_size=1, max_size=60).filter(lambda s: s.lstrip("\ufeff").strip()),
       block_size=st.integers(1, 9))
def test_streamed_ids_equal_read_text_and_encode(tmp_path_factory, text, block_size):
    d = tmp_path_factory.mktemp("h")
    p = d / "t.txt"
    p.write_bytes(text.encode("utf-8"))
    assert_same(p, d / "cache", block_size)


def test_large_vocab_uses_wider_ids(tmp_path):
    p = tmp_path / "cjk.txt"
    p.write_text("".join(chr(0x4E00 + i % 700) for i in range(20_000)) + "a\r\n",
                 encoding="utf-8")
    got = cache.load(p, tmp_path / "c", block_size=1000, progress=False)
    assert got.ids.dtype == np.uint16
    assert_same(p, tmp_path / "c2", 1000)


def test_cache_is_reused_until_the_file_changes(tmp_path):
    p, c = tmp_path / "t.txt", tmp_path / "cache"
    p.write_text("hello world\n" * 5000, encoding="utf-8")
    first = cache.load(p, c, progress=False)
    built = first.ids_path.stat().st_mtime_ns
    os.utime(first.ids_path, ns=(built - 10**9, built - 10**9))  # mark the cached file
    again = cache.load(p, c, progress=False)
    assert again.ids_path == first.ids_path
    assert again.ids_path.stat().st_mtime_ns == built - 10**9  # not rewritten
    assert isinstance(again.ids, np.memmap)

    p.write_text("hello there\n" * 5000, encoding="utf-8")  # same size, new content
    st_ = p.stat()
    os.utime(p, ns=(st_.st_atime_ns, st_.st_mtime_ns + 10**9))
    changed = cache.load(p, c, progress=False)
    assert changed.ids_path.stat().st_mtime_ns != built - 10**9  # rebuilt
    assert changed.vocab.decode(changed.ids[:12]) == "hello there\n"
    assert len(list(c.iterdir())) == 2  # one entry per corpus: .ids and .json


def test_damaged_cache_is_rebuilt_or_refused(tmp_path):
    p, c = tmp_path / "t.txt", tmp_path / "cache"
    p.write_text("abc\n" * 100, encoding="utf-8")
    first = cache.load(p, c, progress=False)
    meta = first.ids_path.with_suffix(".json")
    meta.write_text("{not json", encoding="utf-8")
    assert np.array_equal(cache.load(p, c, progress=False).ids, first.ids)  # re-encoded
    first.ids_path.write_bytes(b"\x00" * 3)
    with pytest.raises(CharRNNError, match="damaged"):
        cache.load(p, c, progress=False)


def test_cache_dir_follows_the_environment(tmp_path, monkeypatch):
    monkeypatch.setenv("CHARRNN_CACHE_DIR", str(tmp_path / "mine"))
    assert cachedir.cache_root() == tmp_path / "mine"
    monkeypatch.delenv("CHARRNN_CACHE_DIR")
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert cachedir.cache_root() == tmp_path / "xdg" / "charrnn" / "corpora"


BAD = [
    b"",
    b"  \r\n\t\n",
    b"\xef\xbb\xbf",
    "hello".encode("utf-16"),
    "hello world, plain".encode("utf-16-le"),
    b"abcdefgh" * 5 + b"\x00" + b"tail",
    b"caf\xc3\xa9 " * 9 + b"\xff ok",
    b"x" * 37 + "\u20ac".encode()[:2] + b"y",  # a 3-byte sequence cut short mid-file
    b"x" * 37 + "\u20ac".encode()[:2],  # ... at the very end
    b"ab\xe2\x82\xac\xc3(" + b"x" * 40 + b"\x00",  # bad UTF-8, later a NUL: NUL reported
]


@pytest.mark.parametrize("content", BAD)
@pytest.mark.parametrize("block_size", [1, 3, 16, 1 << 20])
def test_errors_match_read_text_with_whole_file_offsets(tmp_path, content, block_size):
    p = tmp_path / "bad.txt"
    p.write_bytes(content)
    with pytest.raises(CharRNNError) as expected:
        read_text(p)
    with pytest.raises(CharRNNError) as got:
        cache.load(p, tmp_path / "c", block_size=block_size, progress=False)
    assert str(got.value) == str(expected.value)


def test_corpus_load_reads_the_cache_and_remaps_to_a_resumed_vocab(tmp_path):
    p = tmp_path / "t.txt"
    p.write_text("abcabd\n" * 100, encoding="utf-8")
    corpus = Corpus.load(str(p), 0.1)
    assert isinstance(corpus.train.base, np.memmap) or isinstance(corpus.train, np.memmap)
    assert corpus.digest == text_digest(read_text(p))
    wider = Vocab(("\n", "a", "b", "c", "d", "z"))
    resumed = Corpus.load(str(p), 0.1, vocab=wider)
    assert wider.decode(resumed.train[:7]) == "abcabd\n"
    with pytest.raises(CharRNNError, match="not in the model's vocabulary: 'd'"):
        Corpus.load(str(p), 0.1, vocab=Vocab(("\n", "a", "b", "c")))


def test_val_windows_are_bounded_spread_and_fixed():
    ids = np.arange(100_000, dtype=np.uint32)
    assert val_windows(ids, 0)[0] is ids and val_windows(ids, 200_000)[0] is ids
    wins = val_windows(ids, 8_000, pieces=8)
    assert sum(len(w) for w in wins) == 8_000 and len(wins) == 8
    assert wins[0][0] == 0 and wins[-1][-1] == 99_999  # spread from start to end
    assert all((np.diff(w) == 1).all() for w in wins)  # each window contiguous
    assert [w[0] for w in wins] == [w[0] for w in val_windows(ids, 8_000, pieces=8)]


def test_unwritable_cache_is_a_one_line_error(tmp_path):
    p, blocker = tmp_path / "t.txt", tmp_path / "not-a-folder"
    p.write_text("abc\n" * 10, encoding="utf-8")
    blocker.write_text("a file where the cache folder should be")
    with pytest.raises(CharRNNError, match="cannot write the corpus cache .*CHARRNN_CACHE_DIR"):
        cache.load(p, blocker / "cache", progress=False)


def test_eval_scores_the_same_held_out_sample_as_training(cli, tmp_path):
    import json

    from charrnn.runs import checkpoint as ckpt

    p = tmp_path / "lines.txt"
    p.write_text("".join(f"{i * 7919 % 1000} bottles of beer\n" for i in range(400)))
    r = cli("train", p, "-o", "run", "--hidden-size", "16", "--layers", "1", "--max-steps",
            "6", "--eval-every", "3", "-b", "4", "-t", "16", "--val-max-chars", "300")
    assert r.exit_code == 0, r
    r = cli("eval", "-c", "run", "--json")
    assert r.exit_code == 0, r
    report = json.loads(r.stdout)
    assert report["chars"] == 296  # 4 windows of 75 characters, 74 targets each
    assert "fixed sample of 300" in report["text"]
    best = ckpt.inspect(tmp_path / "run" / "best.safetensors").meta["progress"]
    assert report["loss"] == pytest.approx(best["best_val_loss"], abs=1e-6)
