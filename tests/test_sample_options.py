"""Sampling options are checked once, at both doors: the command line and the library's
types (Decoding for the controls, SampleConfig for the rest).

Each table row is one bad value and the one-line error it must give. The CLI table runs
`charrnn sample` in-process (bounds declared on the options give click's "Invalid value"
with exit 2; the rest is SampleConfig's ConfigError, also exit 2); the SampleConfig table
is the library's own check, which the API and the CLI share.
"""

from __future__ import annotations

import pytest

from charrnn.errors import ConfigError
from charrnn.generate.decoding import Decoding, SampleConfig


@pytest.mark.parametrize("args, code, message", [
    (["--temp", "-1"], 2, "Invalid value for '--temp'"),
    (["--temp", "-0.5"], 2, "Invalid value for '--temp'"),
    (["--temp", "nan"], 2, "Invalid value for '--temp'"),
    (["--temp", "inf"], 2, "temperature must be a finite number >= 0"),
    (["--length", "-5"], 2, "Invalid value for '--length'"),
    (["--length", "-1"], 2, "Invalid value for '--length'"),
    (["--top-k", "-1"], 2, "Invalid value for '--top-k'"),
    (["--top-p", "0"], 2, "top-p must be in (0, 1]"),
    (["--top-p", "-0.5"], 2, "Invalid value for '--top-p'"),
    (["--top-p", "1.01"], 2, "Invalid value for '--top-p'"),
    (["--top-p", "1.5"], 2, "Invalid value for '--top-p'"),
    (["--top-p", "nan"], 2, "Invalid value for '--top-p'"),
    (["--seed", "-1"], 2, "Invalid value for '--seed'"),
    (["--num-samples", "0"], 2, "Invalid value for '--num-samples'"),
    (["--stop", ""], 2, "stop string must not be empty"),
    (["-p", "XYZ"], 1, "never saw: 'XYZ'"),
    (["--min-p", "1.5"], 2, "Invalid value for '--min-p'"),
    (["--min-p", "-0.1"], 2, "Invalid value for '--min-p'"),
    (["--dry-multiplier", "-1"], 2, "Invalid value for '--dry-multiplier'"),
    (["--dry-base", "0.5"], 2, "Invalid value for '--dry-base'"),
    (["--dry-base", "inf"], 2, "dry-base must be a finite number >= 1"),
    (["--dry-allowed-length", "0"], 2, "Invalid value for '--dry-allowed-length'"),
    (["--regex", "a("], 2, "regex 'a(' is not a regular expression"),
    (["--regex", "QQ"], 2, "cannot match any text of the characters this model knows "
                           "(it never saw 'Q')"),
    (["--regex", "[a-z]{9}"], 2, "regex needs at least 9 characters; length is 5"),
    (["--regex", "^the"], 2, "cannot be made into an automaton"),
    (["--ban", "the cat sodgmln.\\n"], 2, "ban leaves no character to generate"),
    (["--logprobs", "-1", "--jsonl"], 2, "Invalid value for '--logprobs'"),
    (["-0"], 2, "-0/--null is for --prime-file"),
])
def test_cli_refuses_a_bad_sample_option_in_one_line(cli, trained_run, args, code, message):
    r = cli("sample", "-c", trained_run, "-n", "5", *args)
    assert r.exit_code == code, r
    assert message in r.stderr, r
    assert r.stderr.count("\n") == 1 and r.stderr.startswith("charrnn: "), r
    assert "Traceback" not in r.stderr and "internal error" not in r.stderr, r
    assert r.stdout == "", r


def test_top_k_zero_means_no_limit(cli, trained_run):
    r = cli("sample", "-c", trained_run, "-n", "20", "--top-k", "0", "--seed", "1")
    assert r.exit_code == 0 and len(r.stdout) == 20, r


@pytest.mark.parametrize("kind, kw, message", [
    (Decoding, {"temperature": -1}, "temperature must be a finite number >= 0"),
    (Decoding, {"temperature": float("nan")}, "temperature must be a finite number >= 0"),
    (SampleConfig, {"length": -1}, "length must be >= 0"),
    (Decoding, {"top_k": -2}, "top-k must be >= 1 (or 0 for all)"),
    (Decoding, {"top_p": 0}, "top-p must be in (0, 1]"),
    (Decoding, {"top_p": 1.5}, "top-p must be in (0, 1]"),
    (SampleConfig, {"seed": -1}, "seed must be an integer >= 0"),
    (SampleConfig, {"num_samples": 0}, "number of samples must be >= 1"),
    (SampleConfig, {"stop": ("",)}, "a stop string must not be empty"),
    (Decoding, {"min_p": 2}, "min-p must be in [0, 1]"),
    (Decoding, {"dry_allowed_length": 1.5}, "dry-allowed-length must be >= 1"),
    (Decoding, {"regex": 5}, "regex must be a text"),
    (Decoding, {"ban": None}, "ban must be a text"),
    (Decoding, {"dry_breakers": ["\n", "ab"]}, "dry-breakers must be a text"),
    (Decoding, {"logit_bias": {"ab": 1}}, "logit-bias must map single characters"),
    (Decoding, {"logit_bias": {"a": 101}}, "logit-bias must map single characters"),
    (Decoding, {"logit_bias": {"a": float("nan")}}, "logit-bias must map single characters"),
    (Decoding, {"logit_bias": "a"}, "logit-bias must map single characters"),
])
def test_sample_config_refuses_a_bad_setting(kind, kw, message):
    with pytest.raises(ConfigError) as refused:
        kind(**kw)
    assert message in str(refused.value)
