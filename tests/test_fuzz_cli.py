"""Fuzzing the command line: random option values and random files, never a traceback.

Each example builds a command from option values drawn as valid or invalid (or random
text), and a file drawn from good text, known-bad files or random bytes. Whatever comes
out: no traceback and no internal error, every failure is exactly one line on stderr,
an invalid input never exits 0, and a fully valid command always succeeds.
"""

from __future__ import annotations

import json
import math
import os
import tempfile
from contextlib import contextmanager
from pathlib import Path

from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from charrnn.cli import main
from tests.conftest import PATTERN

VALID, INVALID, UNKNOWN = "valid", "invalid", "unknown"
# FUZZ_N=500 python -m pytest tests/test_fuzz_cli.py: a longer, freshly random hunt.
FUZZ = settings(max_examples=int(os.environ.get("FUZZ_N", 40)), deadline=None,
                derandomize=not os.environ.get("FUZZ_N"),
                suppress_health_check=[HealthCheck.function_scoped_fixture,
                                       HealthCheck.too_slow])
# Each example of a name trains a model: fewer by default (FUZZ_N raises it too).
FUZZ_TRAINING = settings(FUZZ, max_examples=int(os.environ.get("FUZZ_N", 15)))


def _number(s: str) -> bool:
    try:
        float(s)
    except ValueError:
        return False
    return True


# Random words that are no number (int() and float() accept more than digits: ' 1_0',
# Arabic-Indic digits, 'infinity'), and never a NUL, which no real argv can hold.
junk = st.text(st.characters(exclude_characters="\x00"), max_size=6).filter(
    lambda s: not _number(s)) | st.just("\udcff")


def opt(valid, invalid: list[str], random_junk: bool = True):
    """(valid values, bad values) of one option, as strings."""
    bad = st.sampled_from(invalid)
    return valid.map(str), (bad | junk) if random_junk else bad


@st.composite
def options(draw, space: dict) -> tuple[list[str], dict[str, str], bool]:
    """Some options with valid values, then at most two of them (often none) made bad:
    (argv, chosen values, whether any is bad)."""
    chosen = {name: draw(good) for name, (good, _) in space.items() if draw(st.booleans())}
    n_bad = draw(st.sampled_from([0, 0, 1, 2]))
    bad = draw(st.lists(st.sampled_from(sorted(space)), min_size=n_bad, max_size=n_bad,
                        unique=True))
    for name in bad:
        chosen[name] = draw(space[name][1])
    return [a for kv in chosen.items() for a in kv], chosen, bool(bad)


def floats(lo: float, hi: float):
    return st.floats(lo, hi, allow_nan=False, allow_infinity=False)


TRAIN_OPTIONS = {
    "--cell": opt(st.sampled_from(["lstm", "gru", "rnn"]), ["transformer", "LSTM2", ""]),
    "--layers": opt(st.integers(1, 2), ["0", "-1", "1.5"]),
    "--hidden-size": opt(st.integers(1, 12), ["0", "-3", ""]),
    "--embed-size": opt(st.integers(1, 8), ["0", "-8"]),
    "--dropout": opt(floats(0, 0.99), ["1", "1.5", "-0.1", "nan", "inf"]),
    "-b": opt(st.integers(1, 6), ["0", "-2"]),
    "-t": opt(st.integers(1, 24), ["0", "-5"]),
    "--lr": opt(floats(1e-5, 0.05), ["0", "-1", "nan", "inf", "-inf"]),
    "--weight-decay": opt(floats(0, 1), ["-1", "nan"]),
    "--grad-clip": opt(floats(0, 10), ["-1", "nan", "inf"]),
    "--ema": opt(floats(0, 0.999), ["-1", "1", "nan"]),
    "--warmup": opt(st.integers(0, 5), ["-1"]),
    "--max-steps": opt(st.just(1), ["0", "-1"]),
    "--max-time": opt(st.sampled_from(["30s", "1m", "1h30m", "2.5h"]),
                      ["0", "-1m", "soon", "1x", "", "5 m"], random_junk=False),
    "--patience": opt(st.integers(0, 3), ["-1"]),
    "--eval-every": opt(st.integers(0, 3), ["-1"]),
    "--val-fraction": opt(st.sampled_from([0, 0.05, 0.1, 0.3]), ["1", "-0.5", "nan"]),
    "--seed": opt(st.integers(0, 2**63 - 1), ["-1", str(2**64)]),
}

GOOD_TEXT = (PATTERN * 20).encode()
FILES = {  # name -> (content, validity as a corpus)
    "good": (GOOD_TEXT, VALID),
    "good-crlf-bom": (b"\xef\xbb\xbf" + GOOD_TEXT.replace(b"\n", b"\r\n"), VALID),
    "empty": (b"", INVALID),
    "blank": (b" \r\n\t \n", INVALID),
    "one-char": (b"x", INVALID),
    "nul": (GOOD_TEXT[:50] + b"\x00" + GOOD_TEXT[50:], INVALID),
    "bad-utf8": (GOOD_TEXT[:70] + b"\xff" + GOOD_TEXT[70:], INVALID),
    "utf16": (GOOD_TEXT.decode().encode("utf-16"), INVALID),
    "folder": (None, INVALID),
    "missing": (None, INVALID),
}
files = st.one_of(
    st.sampled_from(["good", "good-crlf-bom"]).map(lambda k: (k, *FILES[k])),
    st.sampled_from(sorted(FILES)).map(lambda k: (k, *FILES[k])),
    st.binary(max_size=400).map(lambda b: ("random-bytes", b, UNKNOWN)),
    st.binary(min_size=1, max_size=20).map(
        lambda b: ("good-and-bytes", GOOD_TEXT + b, UNKNOWN)),
    st.text(max_size=100).map(  # any Unicode is fine text, but a NUL makes it binary
        lambda t: ("good-and-text", GOOD_TEXT + t.encode(), INVALID if "\x00" in t else VALID)),
)


@contextmanager
def _scratch():
    """A fresh empty working folder per example (hypothesis reuses the test's fixtures)."""
    old = os.getcwd()
    with tempfile.TemporaryDirectory() as d:
        os.chdir(d)
        try:
            yield Path(d)
        finally:
            os.chdir(old)


def _make(kind: str, content: bytes | None) -> str:
    if kind == "folder":
        Path("corpus.txt").mkdir()
    elif kind != "missing":
        Path("corpus.txt").write_bytes(content)
    return "corpus.txt"


def _run(capfd, args: list[str]) -> tuple[int, str, str]:
    capfd.readouterr()
    code = main(args)
    out, err = capfd.readouterr()
    return code, out, err


def _check(code: int, out: str, err: str, validity: str, args) -> None:
    event(f"{args[0]}: {validity} input, exit {code}")
    where = f"{args!r}: exit {code}\n{err}"
    assert "Traceback" not in err and "internal error" not in err, where
    if code != 0:
        assert err.count("\n") == 1 and err.startswith("charrnn: "), where
        assert code in (1, 2, 130), where
    if validity == INVALID:
        assert code != 0, where
    elif validity == VALID:
        assert code == 0, where


@FUZZ
@given(file=files, opts=options(TRAIN_OPTIONS))
def test_fuzz_train(capfd, file, opts):
    kind, content, validity = file
    argv, chosen, bad = opts
    validity = INVALID if bad else validity
    args = ["train", "", "-o", "run", "--device", "cpu", *argv]
    if "--max-steps" not in chosen:  # keep every example to one step of a tiny model
        args += ["--max-steps", "1"]
    if "--hidden-size" not in chosen:
        args += ["--hidden-size", "8"]
    with _scratch() as d:
        args[1] = _make(kind, content)
        code, out, err = _run(capfd, args)
        _check(code, out, err, validity, args)
        assert out == "", args
        if code == 0:  # a finished run left a checkpoint and nothing half-written
            assert (d / "run" / "latest.safetensors").is_file()
            assert not list((d / "run").glob(".*.tmp"))


SAMPLE_OPTIONS = {
    "--temp": opt(floats(0, 5), ["-1", "nan", "inf", "-0.0001"]),
    "--top-k": opt(st.integers(0, 50), ["-1", "-100"]),
    "--top-p": opt(floats(1e-3, 1.0), ["0", "-0.1", "1.5", "nan", "inf"]),
    "--length": opt(st.integers(0, 40), ["-1"]),
    "--seed": opt(st.integers(0, 2**32), ["-1"]),
    "--min-p": opt(floats(0, 1), ["-0.1", "1.5", "nan"]),
    "--dry-multiplier": opt(floats(0, 3), ["-1", "nan", "inf"]),
    "--dry-base": opt(floats(1, 4), ["0.5", "-2", "nan", "inf"]),
    "--dry-allowed-length": opt(st.integers(1, 30), ["0", "-3", "1.5"]),
    "--dry-breakers": opt(st.sampled_from(["", r"\n", ". :"]), ["x" * 10_001],
                          random_junk=False),
    "--ban": opt(st.sampled_from(["", "xyz", "t", r"\n"]),
                 ["the cat sodgmln." + "\n"], random_junk=False),
    # each valid one matches the empty text and never has to end: --length is met exactly
    "--regex": opt(st.sampled_from(["[a-z .\n]*", "[^x]*", "(the |cat |dog |[a-z.\n])*"]),
                   ["(", "Q+", "^the", "(?<=a)b", "a{2000}"], random_junk=False),
}
CHECKPOINTS = st.one_of(
    st.just(("trained", VALID)),
    st.just(("trained", VALID)),
    st.sampled_from(["missing", "empty-folder", "text-file", "truncated"]).map(
        lambda k: (k, INVALID)),
    st.binary(max_size=200).map(lambda b: (b, INVALID)),
)


def _checkpoint(kind, trained: Path) -> str:
    if kind == "trained":
        return str(trained)
    if kind == "empty-folder":
        Path("empty").mkdir()
        return "empty"
    p = Path("c.safetensors")
    if kind == "text-file":
        p.write_text(PATTERN)
    elif kind == "truncated":
        p.write_bytes((trained / "best.safetensors").read_bytes()[:-7])
    elif isinstance(kind, bytes):
        p.write_bytes(kind)
    return str(p)


@FUZZ
@given(ck=CHECKPOINTS, opts=options(SAMPLE_OPTIONS),
       prime=st.one_of(st.sampled_from(["", "the ", "cat\n"]).map(lambda p: (p, VALID)),
                       st.sampled_from(["Q", "the ÿ", "\U0001f600"]).map(
                           lambda p: (p, INVALID))))
def test_fuzz_sample(capfd, trained_run, ck, opts, prime):
    kind, validity = ck
    argv, chosen, bad = opts
    validity = INVALID if bad or prime[1] == INVALID else validity
    args = ["sample", "-p", prime[0], *argv]
    with _scratch():
        args += ["-c", _checkpoint(kind, trained_run)]
        code, out, err = _run(capfd, args)
        _check(code, out, err, validity, args)
        if code == 0:
            length = int(chosen.get("--length", 1000))
            assert out.startswith(prime[0]) and len(out) == len(prime[0]) + length
            assert set(out) <= set(PATTERN)


@FUZZ
@given(file=files, as_json=st.booleans())
def test_fuzz_eval(capfd, trained_run, file, as_json):
    kind, content, validity = file
    if kind in ("good", "good-crlf-bom"):
        validity = VALID
    with _scratch():
        args = ["eval", _make(kind, content), "-c", str(trained_run), "--device", "cpu"]
        args += ["--json"] if as_json else []
        code, out, err = _run(capfd, args)
        _check(code, out, err, validity, args)
        if code == 0 and as_json:
            import json

            report = json.loads(out)
            assert math.isfinite(report["loss"]) and report["chars"] >= 1


@FUZZ
@given(ck=CHECKPOINTS, command=st.sampled_from(["info", "info --json", "list", "report"]))
def test_fuzz_commands_that_read_checkpoints(capfd, trained_run, ck, command):
    """info, list and report over good, damaged and random checkpoint files."""
    kind, validity = ck
    with _scratch():
        target = _checkpoint(kind, trained_run)
        if command == "list":  # one run folder under a root, good or not: listing never fails
            Path("root", "r").mkdir(parents=True)
            if Path(target).is_file():
                Path(target).replace(Path("root", "r", "latest.safetensors"))
            args, validity = ["list", "--root", "root"], VALID
        elif command == "report":
            args = ["report", target, "-o", "r.html", "-n", "5"]
        else:
            args = [*command.split(), target]
        code, out, err = _run(capfd, args)
        _check(code, out, err, validity, args)


# --------------------------------------------------------------------------- names, text,
# environment and JSON (issue 31): names that are not UTF-8 (a byte such as 0xff, which
# Python holds as a lone surrogate), text options holding one, settings from the
# environment, and JSON output that must stay valid JSON whatever the names hold.
names = st.binary(min_size=1, max_size=10).filter(
    lambda b: b"/" not in b and b"\x00" not in b and not b.startswith(b"-")
    and b not in (b".", b"..")).map(os.fsdecode)
texts = st.text(max_size=6) | st.text(st.characters(exclude_categories=()), max_size=4)


def _strict_json(line: str):
    def refuse(name: str):
        raise ValueError(f"{name} is not JSON")
    assert "\ufffd" not in line  # capfd decodes invalid UTF-8 as U+FFFD
    return json.loads(line, parse_constant=refuse)


def _has_surrogate(text: str) -> bool:
    return any(0xD800 <= ord(c) <= 0xDFFF for c in text)


@FUZZ_TRAINING
@given(corpus=names, run=names, prime=texts)
def test_fuzz_names_and_text(capfd, corpus, run, prime):
    """Any file and run-folder name trains, samples and lists (JSON valid, UTF-8 clean);
    a prime that is not real text is a usage error (2), never an internal error."""
    with _scratch() as d:
        Path(corpus).write_bytes(GOOD_TEXT)
        run = f"r{run}"  # never the corpus file itself
        args = ["train", corpus, "-o", run, "--device", "cpu", "--max-steps", "1",
                "--hidden-size", "8", "--layers", "1", "--embed-size", "4"]
        code, out, err = _run(capfd, args)
        _check(code, out, err, VALID, args)
        assert (d / run / "latest.safetensors").is_file()
        args = ["sample", "-c", run, "-n", "5", "--jsonl", "-p", prime, "--drop-unknown"]
        code, out, err = _run(capfd, args)
        _check(code, out, err, INVALID if _has_surrogate(prime) else VALID, args)
        if code == 0:
            record = _strict_json(out)
            assert len(record["text"]) == 5 and record["prime"] == "".join(
                c for c in prime.replace("\r\n", "\n").replace("\r", "\n") if c in PATTERN)
        for args in (["info", run, "--json"], ["list", "--root", ".", "--json"]):
            code, out, err = _run(capfd, args)
            _check(code, out, err, VALID, args)
            if args[0] == "info":
                assert _strict_json(out)["corpus"]["source"]
            else:
                assert [_strict_json(line)["run"] for line in out.splitlines()]


SIZES = st.sampled_from(["", "500M", "10G", "1.5G", "0", "7 K", "12kb"])
def _environ_value(s: str) -> bool:
    """Whether an environment variable can hold ``s`` (bytes: only the surrogates that
    stand for undecodable bytes, \\udc80-\\udcff)."""
    try:
        return b"\0" not in os.fsencode(s)
    except UnicodeEncodeError:
        return False


BAD_SIZES = st.sampled_from(["lots", "-1G", "9" * 400 + "T", "1e5G", "\udcff", "2000000T",
                             "nan", "inf"]) | junk.filter(
    lambda s: s.strip() != "" and _environ_value(s))


@FUZZ
@given(cap=st.one_of(SIZES.map(lambda s: (s, VALID)), BAD_SIZES.map(lambda s: (s, INVALID))),
       folder=st.one_of(names.map(lambda n: (n, VALID)), st.just(("a-file", INVALID))),
       key=st.one_of(st.sampled_from(["s3cret", "k" * 40]).map(lambda k: (k, VALID)),
                     st.sampled_from(["", " ", "caf\u00e9", "\udcff", "tab\t"]).map(
                         lambda k: (k, INVALID))),
       command=st.sampled_from(["cache", "cache --json", "cache --prune", "eval",
                                "sample --show-copies -n 5", "serve"]))
def test_fuzz_environment(capfd, monkeypatch, trained_run, cap, folder, key, command):
    """$CHARRNN_CACHE_MAX, $CHARRNN_CACHE_DIR and $CHARRNN_API_KEY: a bad value is one
    line and exit 2, checked before any work, for every command that reads it."""
    served = []
    monkeypatch.setattr("charrnn.serve.runner.serve", served.append)  # never listens
    with _scratch():
        Path("a-file").write_text("not a folder\n")
        monkeypatch.setenv("CHARRNN_CACHE_MAX", cap[0])
        monkeypatch.setenv("CHARRNN_CACHE_DIR", folder[0])
        monkeypatch.setenv("CHARRNN_API_KEY", key[0])
        args = command.split()
        if command != "cache" and not command.startswith("cache "):
            args += ["-c", str(trained_run)]
        if args[0] == "eval":
            args += ["--device", "cpu"]
        validity = key[1] if args[0] == "serve" else (
            VALID if cap[1] == folder[1] == VALID else INVALID)
        code, out, err = _run(capfd, args)
        _check(code, out, err, validity, args)
        if code:
            assert code == 2 and ("CHARRNN_" in err or "API key" in err), (args, err)
        assert bool(served) == (args[0] == "serve" and code == 0)
        if command == "cache --json":
            for line in out.splitlines():
                _strict_json(line)
