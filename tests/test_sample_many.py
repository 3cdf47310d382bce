"""charrnn sample --prime-file (many primes, one batch) and --jsonl --logprobs."""

from __future__ import annotations

import json
import math
import re

import pytest

from charrnn.generate.decoding import Decoding, SampleConfig
from charrnn.generate.sampler import END, Sampler


def _alone(run, prime: str, seed: int, length: int, **controls) -> str:
    s = Sampler.load(run)
    config = SampleConfig(length=length, seed=seed, decoding=Decoding(**controls))
    return "".join(ch for _, ch in s.stream(prime, config) if ch != END)


def test_prime_file_gives_one_sample_per_prime_in_order_with_seed_plus_i(cli, trained_run,
                                                                       tmp_path):
    primes = ["the c", "the dog ate", "", "the m"]
    f = tmp_path / "primes.txt"
    f.write_text("\n".join(primes) + "\n", encoding="utf-8")
    r = cli("sample", "-c", trained_run, "--prime-file", f, "-n", "30", "--seed", "5",
            "--jsonl")
    assert r.exit_code == 0, r
    records = [json.loads(line) for line in r.stdout.splitlines()]
    assert [(x["index"], x["seed"], x["prime"]) for x in records] == [
        (i, 5 + i, p) for i, p in enumerate(primes)]
    for i, p in enumerate(primes):  # sample i is what -p PRIME_i --seed 5+i gives alone
        assert records[i]["text"] == _alone(trained_run, p, 5 + i, 30)
    plain = cli("sample", "-c", trained_run, "--prime-file", f, "-n", "30", "--seed", "5",
                "--separator", "|")
    assert plain.stdout == "|".join(p + x["text"] for p, x in zip(primes, records,
                                                                  strict=True))
    # two samples of each prime: sample i continues prime i // 2, seed 5 + i
    two = cli("sample", "-c", trained_run, "--prime-file", f, "-n", "10", "--seed", "5",
              "--num-samples", "2", "--jsonl")
    got = [json.loads(line) for line in two.stdout.splitlines()]
    assert [x["prime"] for x in got] == [p for p in primes for _ in range(2)]
    assert got[3]["text"] == _alone(trained_run, primes[1], 8, 10)


def test_prime_file_separated_by_nul_keeps_line_breaks(cli, trained_run, tmp_path):
    f = tmp_path / "primes.bin"
    f.write_bytes(b"the cat\nsat\0the dog\0")
    r = cli("sample", "-c", trained_run, "--prime-file", f, "-0", "-n", "5", "--jsonl",
            "--seed", "1")
    assert r.exit_code == 0, r
    assert [json.loads(x)["prime"] for x in r.stdout.splitlines()] == ["the cat\nsat", "the dog"]


@pytest.mark.parametrize("content, args, message", [
    (b"", [], "holds no primes"),
    (b"the\nQ cat\n", [], "prime 2: prime has characters the model never saw: 'Q'"),
    (b"\xff\xfe\x00t", [], "UTF-16"),
    (b"the", ["-p", "x"], "--prime-file takes no -p"),
    (b"the", ["--novel"], "--prime-file takes no -p, --show-copies, --novel or --max-copy"),
    (None, [], "no such file"),
])
def test_bad_prime_files_are_one_line(cli, trained_run, tmp_path, content, args, message):
    f = tmp_path / "p.txt"
    if content is not None:
        f.write_bytes(content)
    r = cli("sample", "-c", trained_run, "--prime-file", f, "-n", "5", *args)
    assert r.exit_code in (1, 2) and r.stdout == "", r
    assert message in r.stderr and r.stderr.count("\n") == 1, r


def test_jsonl_logprobs_are_the_models_own(cli, trained_run):
    r = cli("sample", "-c", trained_run, "-p", "the ", "-n", "40", "--seed", "3", "--temp",
            "1.5", "--top-k", "3", "--jsonl", "--logprobs", "3")
    assert r.exit_code == 0, r
    (record,) = [json.loads(line) for line in r.stdout.splitlines()]
    lp = record["logprobs"]
    assert "".join(lp["tokens"]) == record["text"] and lp["text_offset"] == list(range(40))
    api = Sampler.load(trained_run)
    logits, state = api.engine.warm(api.start_ids("the ")[None, :], api.engine.init_state(1))
    for ch, got, top in zip(record["text"], lp["token_logprobs"], lp["top_logprobs"],
                            strict=True):
        z = logits[0].astype(float)
        want = z - max(z) - math.log(sum(math.exp(v - max(z)) for v in z))
        c = api.vocab.chars.index(ch)
        assert got == pytest.approx(want[c], abs=1e-9)  # before temperature and top-k
        best = sorted(range(len(z)), key=lambda j: -want[j])[:3]
        assert list(top)[:3] == [api.vocab.chars[j] for j in best]
        assert top[ch] == got
        logits, state = api.engine.step(api.vocab.encode(ch).astype("int64"), state)


def test_logprobs_needs_jsonl(cli, trained_run):
    r = cli("sample", "-c", trained_run, "--logprobs", "2", "-n", "5")
    assert r.exit_code == 2 and "--logprobs needs --jsonl" in r.stderr, r


def test_steering_composes_with_the_copy_checks(cli, trained_run):
    pytest.importorskip("pydivsufsort")
    r = cli("sample", "-c", trained_run, "-p", "the ", "-n", "30", "--num-samples", "3",
            "--seed", "2", "--regex", "[a-z ]+", "--dry-multiplier", "1", "--max-copy", "12",
            "--tries", "200", "--jsonl")
    assert r.exit_code == 0, r
    records = [json.loads(line) for line in r.stdout.splitlines()]
    assert len(records) == 3
    for x in records:
        assert re.fullmatch("[a-z ]+", x["text"]) and x["longest_copy"] <= 12
        assert x["regex"] == "[a-z ]+" and x["dry_multiplier"] == 1.0
        assert x["text"] == _alone(trained_run, "the ", x["seed"], 30, regex="[a-z ]+",
                                   dry_multiplier=1.0)


def test_api_takes_many_primes_and_every_control(trained_run):
    from charrnn import api

    model = api.load(trained_run)
    got = model.samples(2, ["the c", "the d"], length=20, seed=4, min_p=0.1, ban="g")
    assert got == [_alone(trained_run, p, 4 + i, 20, min_p=0.1, ban="g")
                   for i, p in enumerate(["the c", "the c", "the d", "the d"])]
