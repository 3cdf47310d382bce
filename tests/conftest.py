"""Shared fixtures: tiny corpora the tests write themselves and a tiny trained run."""

from __future__ import annotations

import json
import os
import random
import re
import shutil
import sys
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import numpy as np
import pytest

from charrnn.cli import main

PATTERN = "the cat sat on the mat.\nthe dog ate the log.\n"
SEED = 0
TORCH_THREADS = 1  # as OMP_NUM_THREADS=1 in the tests' training subprocesses


@contextmanager
def fixed_seeds_and_threads() -> Iterator[None]:
    """The same global random state and torch thread count whatever ran before and however
    many cores the machine has (float sums in torch depend on how many threads share them).

    torch is set only if already imported (every test module that uses torch directly
    imports it): importing it here would load it into runs that never need it. No
    environment variable is set: subprocesses (sample's BLAS thread choice) see the
    environment the test gives them, as a user's shell would.
    """
    random.seed(SEED)
    np.random.seed(SEED)
    torch = sys.modules.get("torch")
    threads = None
    if torch is not None:
        torch.manual_seed(SEED)
        threads = torch.get_num_threads()
        torch.set_num_threads(TORCH_THREADS)
    try:
        yield
    finally:
        if threads is not None:
            torch.set_num_threads(threads)


@pytest.fixture(autouse=True)
def _fixed_seeds_and_threads():
    """Every test starts from the same seeds and thread count, whatever the test order."""
    with fixed_seeds_and_threads():
        yield


def pytest_configure(config):
    """Keep encoded-corpus caches out of the user's ~/.cache, for the tests and for every
    subprocess they start: set before any test module is imported (some build their
    subprocesses' environment then)."""
    config._charrnn_cache = tempfile.mkdtemp(prefix="charrnn-test-cache-")
    config._charrnn_cache_before = os.environ.get("CHARRNN_CACHE_DIR")
    os.environ["CHARRNN_CACHE_DIR"] = config._charrnn_cache


def pytest_unconfigure(config):
    shutil.rmtree(config._charrnn_cache, ignore_errors=True)
    if config._charrnn_cache_before is None:
        os.environ.pop("CHARRNN_CACHE_DIR", None)
    else:
        os.environ["CHARRNN_CACHE_DIR"] = config._charrnn_cache_before


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
    import torch  # noqa: F401  (training loads it anyway: loaded now, its threads are fixed)

    run = tmp_path_factory.mktemp("run") / "pattern"
    with fixed_seeds_and_threads():  # a session fixture is made before the per-test one
        code = main(["train", str(corpus_file), "-o", str(run), "--hidden-size", "48",
                     "--layers", "1", "--embed-size", "16", "--max-steps", "150",
                     "--batch-size", "8", "--seq-len", "32", "--lr", "0.01", "--dropout",
                     "0"])
    assert code == 0
    return run


def page_data(path: Path) -> dict:
    """The DATA object an HTML page (eval --html, neurons --html) carries for its script."""
    page = path.read_text(encoding="utf-8")
    return json.loads(re.search(r"const DATA=(\{.*?\});", page).group(1))
