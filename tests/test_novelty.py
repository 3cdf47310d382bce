"""Copy checks against the training text: the index, its queries, and sample's options."""

from __future__ import annotations

import json
import os
import random

import numpy as np
import pytest

from charrnn.cli import sample_command as sample
from charrnn.cli.fastpath import sample_options
from charrnn.data import cache
from charrnn.data.text import BUILTIN_CORPUS, Vocab, read_text
from charrnn.errors import CharRNNError
from charrnn.novelty import index as novelty
from charrnn.novelty import source
from charrnn.novelty.filter import CopyFilter
from charrnn.novelty.suffixarray import sample_keys, suffix_array
from tests.conftest import PATTERN


def _random_text(rng: random.Random, alphabet: str, n: int) -> str:
    return "".join(rng.choice(alphabet) for _ in range(n))


def _brute_longest(corpus: str, text: str, i: int) -> int:
    best = 0
    while i + best < len(text) and text[i:i + best + 1] in corpus:
        best += 1
    return best


@pytest.mark.parametrize("alphabet", ["ab", "abcd \n",
                                      "".join(map(chr, range(0x4E00, 0x4E00 + 300)))])
def test_matching_statistics_agree_with_brute_force(alphabet):
    rng = random.Random(len(alphabet))
    for _ in range(60):
        corpus = _random_text(rng, alphabet[:rng.randint(1, len(alphabet))], rng.randint(1, 300))
        vocab = Vocab.from_text(corpus)
        ids = vocab.encode(corpus)
        sa = suffix_array(ids)
        assert sorted(sa.tolist()) == list(range(len(ids)))
        index = novelty.Index(ids, sa, sample_keys(ids, sa, len(vocab)), vocab, "t", "d")
        start = rng.randrange(len(corpus))
        text = _random_text(rng, alphabet[:6] + "zy", rng.randint(0, 12)) + corpus[
            start:start + rng.randint(0, 50)]
        length, at = index.matching(index._padded(text), np.arange(len(text)))
        for i in range(len(text)):
            assert length[i] == _brute_longest(corpus, text, i)
            assert corpus[at[i]:at[i] + length[i]] == text[i:i + length[i]]
        # every start, most of them filled in from the grid of searched ones
        lengths, ats = index.statistics(index._padded(text), len(text))
        assert lengths.tolist() == length.tolist()
        for i in range(len(text)):
            assert corpus[ats[i]:ats[i] + lengths[i]] == text[i:i + lengths[i]]
        assert index.occurs(text) == (text in corpus)


@pytest.mark.parametrize("alphabet", [
    "abcdefghijklmnopqrstuvwxyz .,\n",  # uint8 ids
    "".join(map(chr, range(0x4E00, 0x4E00 + 400))),  # 400 characters: uint16 ids
])
def test_a_copied_span_is_reported_exactly(tmp_path, alphabet):
    rng = random.Random(1)
    corpus = _random_text(rng, alphabet, 20_000)
    path = tmp_path / "corpus.txt"
    path.write_text(corpus, encoding="utf-8")
    index = source.open_source(str(path))
    assert index.ids.dtype == (np.uint8 if len(alphabet) < 256 else np.uint16)
    at, span = 12_345, 150
    copied = corpus[at:at + span]
    text = "QQQ" + copied + "ZZZZ"  # Q and Z are not in the corpus: nothing else matches
    report = index.report(text, generated_from=2, min_copy=20)
    assert (report.longest, report.corpus_at, report.text_at) == (span, at, 3)
    assert report.share == pytest.approx(span / (len(text) - 2))
    assert index.occurs(copied) and not index.occurs("Q" + copied)
    # copies that lie wholly in the prime do not count
    assert index.report(text, generated_from=3 + span).longest == 0


def test_start_and_end_of_the_corpus_count_as_line_breaks(tmp_path):
    path = tmp_path / "names.txt"
    path.write_text("Alice\nBob\nCarol", encoding="utf-8")
    index = source.open_source(str(path))
    assert all(index.occurs(f"\n{name}\n") for name in ("Alice", "Bob", "Carol"))
    assert not any(index.occurs(f"\n{name}\n") for name in ("Ali", "ob", "Carola", "Dave"))


def test_builtin_corpus_is_indexed_in_memory():
    index = source.open_source(BUILTIN_CORPUS)
    line = read_text(BUILTIN_CORPUS).splitlines()[10]
    assert index.occurs(line) and not index.occurs(line + "\u2603")


def _logged(path) -> tuple[novelty.Index, list[str]]:
    messages: list[str] = []
    return source.open_source(str(path), log=messages.append), messages


@pytest.mark.parametrize("damage", ["truncate", "garbage same stat", "sidecar", "keys"])
def test_a_damaged_index_is_rebuilt_not_trusted(tmp_path, damage):
    rng = random.Random(2)
    corpus = _random_text(rng, "abcdef\n", 5_000)
    path = tmp_path / "c.txt"
    path.write_text(corpus, encoding="utf-8")
    index, messages = _logged(path)
    assert len(messages) == 1  # built once ...
    _, messages = _logged(path)
    assert messages == []  # ... and reused
    ids_path = cache.load(path, progress=False).ids_path
    sa_path, keys_path = ids_path.with_suffix(".sa"), ids_path.with_suffix(".sak")
    good = sa_path.read_bytes()
    if damage == "truncate":
        sa_path.write_bytes(good[:-4])
    elif damage == "garbage same stat":  # same size and time: only the spot check sees it
        st = sa_path.stat()
        sa_path.write_bytes(np.zeros(len(corpus), np.int32).tobytes())
        os.utime(sa_path, ns=(st.st_atime_ns, st.st_mtime_ns))
    elif damage == "sidecar":
        ids_path.with_suffix(".sa.json").write_text("{not json")
    else:
        keys_path.write_bytes(keys_path.read_bytes()[:8])
    index, messages = _logged(path)
    assert len(messages) == 1 and sa_path.read_bytes() == good
    assert index.report("x" + corpus[100:180] + "x").longest == 80


def test_a_changed_corpus_gets_a_new_index(tmp_path):
    path = tmp_path / "c.txt"
    path.write_text("one two three\n", encoding="utf-8")
    assert source.open_source(str(path)).occurs("two")
    path.write_text("four five six\n", encoding="utf-8")
    index, messages = _logged(path)
    assert len(messages) == 1
    assert index.occurs("five") and not index.occurs("two")


def test_wrong_or_missing_training_text_is_one_line(tmp_path, trained_run, cli):
    meta = {"corpus": {"source": str(tmp_path / "gone.txt"), "digest": "0123456789abcdef"}}
    with pytest.raises(CharRNNError, match="training text of ck is missing: .*gone.txt"):
        source.for_checkpoint(meta, "ck")
    with pytest.raises(CharRNNError, match="does not record its training text"):
        source.for_checkpoint({}, "ck")
    other = tmp_path / "other.txt"
    other.write_text("something else entirely\n", encoding="utf-8")
    r = cli("sample", "-c", trained_run, "--show-copies", "--corpus", other, "-n", "5")
    assert r.exit_code == 1 and r.stdout == ""
    assert r.stderr.startswith("charrnn: error: ") and "is not the text" in r.stderr
    assert len(r.stderr.strip().splitlines()) == 1
    r = cli("sample", "-c", trained_run, "--novel", "--corpus", tmp_path / "nope.txt")
    assert r.exit_code == 1 and "no such file" in r.stderr


def test_novel_gives_only_lines_absent_from_the_corpus(cli, trained_run):
    lines = set(PATTERN.splitlines())
    r = cli("sample", "-c", trained_run, "-p", "\n", "--stop", "\\n", "--novel", "--temp", "1.5",
            "--num-samples", "6", "--no-echo", "--separator", "", "--seed", "3", "-n", "60")
    assert r.exit_code == 0, r
    got = r.stdout.splitlines()
    assert len(got) == 6 and not lines & set(got)
    assert "--novel: kept 6 of " in r.stderr


def test_show_copies_leaves_stdout_alone_and_reports_each_sample(cli, trained_run):
    args = ["sample", "-c", trained_run, "-n", "80", "--num-samples", "3", "--seed", "5"]
    plain = cli(*args)
    shown = cli(*args, "--show-copies")
    assert shown.exit_code == 0 and shown.stdout == plain.stdout
    assert len([x for x in shown.stderr.splitlines() if "longest copy" in x]) == 3
    records = [json.loads(x) for x in cli(*args, "--show-copies", "--jsonl",
                                          "--min-copy", "5").stdout.splitlines()]
    corpus = PATTERN * 60
    assert [r["seed"] for r in records] == [5, 6, 7]
    for r in records:
        n, at, start = r["longest_copy"], r["copy_at"], r["copy_start"]
        assert n > 0 and corpus[at:at + n] == r["text"][start:start + n]
        assert not any(r["text"][i:i + n + 1] in corpus for i in range(len(r["text"]) - n))
        assert 0 <= r["copied_share"] <= 1 and r["min_copy"] == 5


def test_too_few_samples_pass_is_a_clear_error(cli, trained_run):
    r = cli("sample", "-c", trained_run, "--max-copy", "0", "--num-samples", "2", "-n", "5",
            "--tries", "3", "--seed", "1")
    assert r.exit_code == 1 and r.stdout == ""
    assert "only 0 of 2 samples passed --max-copy 0 in 6 draws" in r.stderr


def test_options_reach_the_fast_path_and_bad_values_are_refused(cli, trained_run):
    fast = sample_options(sample, ["sample", "--novel", "--max-copy", "5", "--corpus", "x",
                              "--min-copy", "7", "--show-copies", "--tries", "4"])
    assert fast is not None
    assert (fast["novel"], fast["max_copy"], fast["corpus"], fast["min_copy"],
            fast["show_copies"], fast["tries"]) == (True, 5, ["x"], 7, True, 4)
    for bad in (["--min-copy", "0"], ["--max-copy", "-1"], ["--tries", "0"]):
        r = cli("sample", "-c", trained_run, *bad)
        assert r.exit_code == 2 and "error" in r.stderr
    with pytest.raises(CharRNNError):
        CopyFilter(min_copy=0)


def test_python_api_reports_copies(trained_run):
    from charrnn import api

    model = api.load(trained_run)
    line = PATTERN.splitlines()[0]
    report = model.copies(line + "\n", prime="\n")
    assert (report.longest, report.text_at, report.share) == (len(line) + 2, 0, 1)
    assert model.copies(line + "\n", prime="\n", min_copy=30).share == 0
    assert not model.is_novel(f"\n{line}\n") and model.is_novel("\nthe cat ate the dog.\n")
