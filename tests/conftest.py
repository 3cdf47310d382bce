"""Shared fixtures: tiny corpora the tests write themselves and a tiny trained run."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from charrnn.cli import main

PATTERN = "the cat sat on the mat.\nthe dog ate the log.\n"


@pytest.fixture(scope="session", autouse=True)
def _corpus_cache(tmp_path_factory):
    """Keep encoded-corpus caches out of the user's ~/.cache."""
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("CHARRNN_CACHE_DIR", str(tmp_path_factory.mktemp("corpus-cache")))
        yield


class CliResult:
    def __init__(self, code: int, out: str, err: str) -> None:
        self.exit_code, self.stdout, self.stderr = code, out, err

    def __repr__(self) -> str:
        return f"exit {self.exit_code}\nstdout: {self.stdout!r}\nstderr: {self.stderr!r}"


@pytest.fixture
def cli(capfd, monkeypatch, tmp_path):
    """Run the CLI in-process from a scratch folder; returns exit code, stdout, stderr."""
    monkeypatch.chdir(tmp_path)

    def run(*args: str) -> CliResult:
        capfd.readouterr()
        code = main([str(a) for a in args])
        out, err = capfd.readouterr()
        return CliResult(code, out, err)

    return run


@pytest.fixture(scope="session")
def corpus_file(tmp_path_factory) -> Path:
    p = tmp_path_factory.mktemp("corpus") / "pattern.txt"
    p.write_text(PATTERN * 60, encoding="utf-8")
    return p


@pytest.fixture(scope="session")
def trained_run(tmp_path_factory, corpus_file) -> Path:
    """A small LSTM trained for a few seconds on a repeating text: its run folder."""
    run = tmp_path_factory.mktemp("run") / "pattern"
    code = main(["train", str(corpus_file), "-o", str(run), "--hidden-size", "48",
                 "--layers", "1", "--embed-size", "16", "--max-steps", "150",
                 "--batch-size", "8", "--seq-len", "32", "--lr", "0.01", "--dropout", "0"])
    assert code == 0
    return run


def page_data(path: Path) -> dict:
    """The DATA object an HTML page (eval --html, neurons --html) carries for its script."""
    page = path.read_text(encoding="utf-8")
    return json.loads(re.search(r"const DATA=(\{.*?\});", page).group(1))
