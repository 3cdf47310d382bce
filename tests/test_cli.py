"""The command line as a user meets it: exact stdout, one-line errors, exit codes."""

import json
import os
import subprocess
import sys

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from charrnn.config import TrainConfig
from charrnn.runs import checkpoint as ckpt


def test_sample_stdout_is_exactly_the_sample(cli, trained_run):
    from charrnn.generate.decoding import SampleConfig
    from charrnn.generate.sampler import Sampler

    r = cli("sample", "-c", trained_run, "-p", "the ", "-n", "80", "--seed", "5")
    assert r.exit_code == 0, r
    expected = "".join(Sampler.load(trained_run).generate("the ", SampleConfig(80, seed=5)))
    assert r.stdout == "the " + expected
    assert r.stderr == ""
    r2 = cli("sample", "-c", trained_run, "-p", "the ", "-n", "80", "--seed", "5", "--no-echo")
    assert r2.stdout == expected


def test_sample_uses_newest_run_under_checkpoints(cli, trained_run, tmp_path):
    target = tmp_path / "checkpoints" / "pattern"
    target.mkdir(parents=True)
    (target / "best.safetensors").write_bytes((trained_run / "best.safetensors").read_bytes())
    r = cli("sample", "--temp", "0", "-n", "20", "-p", "the cat ")
    assert r.exit_code == 0, r
    assert r.stdout.startswith("the cat sat on the mat")


def test_eval_reports_bits_per_char(cli, trained_run, corpus_file):
    r = cli("eval", "-c", trained_run, "--json")
    assert r.exit_code == 0, r
    held_out = json.loads(r.stdout)
    assert held_out["bits_per_char"] == pytest.approx(held_out["loss"] / 0.6931471805599453)
    assert held_out["loss"] < 0.5  # the pattern is learned
    other = corpus_file.parent / "other.txt"
    other.write_text("the cat ate the QUIZ.\n" * 5)
    r = cli("eval", other, "-c", trained_run)
    assert r.exit_code == 0, r
    assert "bits/char" in r.stdout and "perplexity" in r.stdout
    assert "20 characters not in the vocabulary were skipped" in r.stdout


def test_train_refuses_to_overwrite_a_run_and_resumes_it(cli, corpus_file, tmp_path):
    args = ["train", corpus_file, "-o", "run", "--hidden-size", "16", "--layers", "1",
            "--max-steps", "4", "-b", "4", "-t", "16"]
    r = cli(*args)
    assert r.exit_code == 0, r
    assert r.stdout == ""  # progress and logs go to stderr
    before = (tmp_path / "run" / "latest.safetensors").read_bytes()
    r = cli(*args)
    assert r.exit_code == 1 and "already holds a run" in r.stderr
    assert (tmp_path / "run" / "latest.safetensors").read_bytes() == before
    r = cli("train", corpus_file, "-o", "run", "--resume", "--max-steps", "8")
    assert r.exit_code == 0, r
    assert ckpt.inspect(tmp_path / "run" / "latest.safetensors").meta["progress"]["step"] == 8


def test_resume_keeps_the_runs_patience_unless_given(cli, corpus_file, tmp_path):
    def patience():
        return ckpt.inspect(tmp_path / "run" / "latest.safetensors").meta["train"]["patience"]

    args = ["--max-steps", "2", "-b", "4", "-t", "16"]
    cli("train", corpus_file, "-o", "run", "--hidden-size", "16", "--patience", "2", *args)
    assert patience() == 2
    assert cli("train", corpus_file, "-o", "run", "--resume", "--max-steps", "3").exit_code == 0
    assert patience() == 2  # not the command line's default
    r = cli("train", corpus_file, "-o", "run", "--resume", "--max-steps", "4", "--patience", "0")
    assert r.exit_code == 0 and patience() == 0
    cli("train", corpus_file, "-o", "new", "--hidden-size", "16", *args)
    new = ckpt.inspect(tmp_path / "new" / "latest.safetensors").meta["train"]["patience"]
    assert new == TrainConfig.patience


@pytest.mark.parametrize("make, args, message, code", [
    (None, ["train", "missing.txt"], "no such file: missing.txt", 1),
    ("dir", ["train", "d"], "no files found under d", 1),
    (b"", ["train", "f.txt"], "f.txt is empty", 1),
    (b"\x00\x01\x02binary", ["train", "f.txt"], "binary file", 1),
    (b"ok \xfe\xff", ["train", "f.txt"], "not valid UTF-8 (byte 0xfe at offset 3)", 1),
    (b"short text\n", ["train", "f.txt", "-b", "32", "-t", "128"], "too short", 1),
    (None, ["train", "--dropout", "1.5"], "dropout must be in [0, 1)", 2),
    (None, ["train", "--hidden-size", "0"], "Invalid value for '--hidden-size'", 2),
    (None, ["train", "--max-time", "soon"], "bad duration 'soon'", 2),
    (None, ["train", "--cell", "transformer"], "Invalid value for '--cell'", 2),
    (None, ["sample"], "no checkpoints found", 1),
    (None, ["sample", "-c", "nope.safetensors"], "no such checkpoint", 1),
    (b"junk", ["sample", "-c", "f.safetensors"], "not a usable charrnn checkpoint", 1),
    (None, ["eval"], "no checkpoints found", 1),
    (None, ["frobnicate"], "No such command", 2),
])
def test_each_command_refuses_bad_input_in_one_line_with_its_exit_code(
        cli, tmp_path, make, args, message, code):
    if make == "dir":
        (tmp_path / "d").mkdir()
    elif make is not None:
        (tmp_path / args[-1] if args[-1].endswith("safetensors") else tmp_path / "f.txt"
         ).write_bytes(make)
    r = cli(*args)
    assert r.exit_code == code, r
    assert message in r.stderr, r
    assert r.stderr.count("\n") == 1 and "Traceback" not in r.stderr
    assert r.stdout == ""


def _run(*args, **kw):
    env = {**os.environ, "PYTHONPATH": os.getcwd()}
    return subprocess.run([sys.executable, "-m", "charrnn", *args], capture_output=True,
                          env=env, **kw)


def test_closed_pipe_ends_quietly(trained_run):
    proc = subprocess.Popen(
        f"{sys.executable} -m charrnn sample -c {trained_run} -n 200000 | head -c 10",
        shell=True, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
        env={**os.environ, "PYTHONPATH": os.getcwd()}, executable="/bin/bash")
    out, err = proc.communicate(timeout=120)
    assert len(out) == 10 and err == b""
    for extra in ("", "--num-samples 4", "--jsonl --num-samples 3 -n 5000"):
        r = subprocess.run(  # pipefail: the status is charrnn's own, which must be 0
            f"set -o pipefail; {sys.executable} -m charrnn sample -c {trained_run} "
            f"-n 200000 {extra} | head -c 10", shell=True, capture_output=True,
            env={**os.environ, "PYTHONPATH": os.getcwd()}, executable="/bin/bash", timeout=120)
        assert (r.returncode, len(r.stdout), r.stderr) == (0, 10, b""), (extra, r)


def test_help_and_version_do_not_import_torch():
    code = ("import sys; from charrnn.cli import main; main(['--version']); "
            "main(['sample', '--help']); print('torch' in sys.modules)")
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert r.stdout.splitlines()[0].startswith("charrnn ")
    assert r.stdout.strip().endswith("False")


def test_python_dash_m_and_sample_never_import_torch(trained_run):
    code = ("import sys; from charrnn.cli import main; "
            f"main(['sample', '-c', {str(trained_run)!r}, '-n', '5']); "
            "print('', 'torch' in sys.modules)")
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert r.stdout.endswith(" False\n"), r.stdout
    assert _run("--version").stdout.startswith(b"charrnn ")


# ----------------------------------------------------------------------------- sample
@pytest.mark.parametrize(("cores", "loadavg", "threads"), [
    ("01", "0.50 0.60 0.70 1/321 4242", 2),  # only this process runs: use the idle core
    ("01", "2.00 2.00 2.00 3/321 4242", 1),  # training (2 threads) runs beside us
    ("01", "1.00 1.00 1.00 2/321 4242", 1),  # another sampler runs
    ("0", "0.00 0.00 0.00 1/100 42", 1),  # one core
    ("01234567", "6.00 6.00 6.00 5/999 42", 2),
    ("01", "garbage", 1)])
def test_sampling_uses_a_second_blas_thread_only_while_a_core_is_idle(
        monkeypatch, tmp_path, cores, loadavg, threads):
    from charrnn import threads as blas

    (tmp_path / "loadavg").write_text(loadavg + "\n")
    monkeypatch.setattr(blas, "_LOADAVG", tmp_path / "loadavg")
    monkeypatch.setattr(os, "sched_getaffinity", lambda pid: set(cores), raising=False)
    assert blas.sampling_threads() == threads
    monkeypatch.setattr(blas, "_LOADAVG", tmp_path / "missing")
    assert blas.sampling_threads() == 1


def test_sample_sets_blas_threads_before_numpy_unless_the_user_did(trained_run):
    code = ("import os, sys; from charrnn.cli import main; "
            f"main(['sample', '-c', {str(trained_run)!r}, '-n', '1']); "
            "print('', os.environ['OPENBLAS_NUM_THREADS'])")
    env = {k: v for k, v in os.environ.items()
           if k not in ("OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS", "OMP_NUM_THREADS")}
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env)
    assert r.stdout.split()[-1] in ("1", "2"), r
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                       env={**env, "OPENBLAS_NUM_THREADS": "3"})
    assert r.stdout.split()[-1] == "3", r


def _alone(run, prime, temperature=1.0, top_k=0, top_p=1.0, **kw):
    from charrnn.generate.decoding import Decoding, SampleConfig
    from charrnn.generate.sampler import Sampler

    config = SampleConfig(**kw, decoding=Decoding(temperature, top_k, top_p))
    return "".join(Sampler.load(run).generate(prime, config))


def test_num_samples_are_separated_and_each_is_its_seeds_sample(cli, trained_run):
    r = cli("sample", "-c", trained_run, "-p", "the ", "-n", "60", "--seed", "9",
            "--num-samples", "3", "--separator", r"\n==\n")
    assert r.exit_code == 0, r
    expected = [_alone(trained_run, "the ", length=60, seed=9 + i) for i in range(3)]
    assert r.stdout == "\n==\n".join("the " + t for t in expected)
    r = cli("sample", "-c", trained_run, "-p", "the ", "-n", "60", "--seed", "9",
            "--num-samples", "3", "--separator", r"\0", "--no-echo")
    assert r.stdout.split("\0") == expected  # ready for xargs -0


def test_jsonl_has_text_seed_and_settings(cli, trained_run):
    r = cli("sample", "-c", trained_run, "-p", "the ", "-n", "80", "--seed", "3",
            "--num-samples", "2", "--jsonl", "--temp", "0.7", "--top-k", "5",
            "--top-p", "0.9", "--stop", r"\n")
    assert r.exit_code == 0, r
    records = [json.loads(line) for line in r.stdout.splitlines()]
    assert [(d["index"], d["seed"]) for d in records] == [(0, 3), (1, 4)]
    for d in records:
        assert d["text"] == _alone(trained_run, "the ", length=80, seed=d["seed"],
                                   temperature=0.7, top_k=5, top_p=0.9, stop=("\n",))
        assert d["stopped"] == d["text"].endswith("\n")
        assert {k: d[k] for k in ("prime", "temperature", "top_k", "top_p", "length", "stop")
                } == {"prime": "the ", "temperature": 0.7, "top_k": 5, "top_p": 0.9,
                      "length": 80, "stop": ["\n"]}
        assert d["checkpoint"].endswith("best.safetensors")
    r = cli("sample", "-c", trained_run, "-n", "5", "--jsonl")  # no seed: a fresh one, shown
    assert isinstance(json.loads(r.stdout)["seed"], int)


def test_stop_takes_escapes_and_no_echo_leaves_out_the_prime(cli, trained_run):
    r = cli("sample", "-c", trained_run, "-p", "the cat ", "--temp", "0", "--stop", r"\n")
    assert r.exit_code == 0, r
    assert r.stdout == "the cat sat on the mat.\n"
    r = cli("sample", "-c", trained_run, "-p", "the cat ", "--temp", "0", "--stop", "mat",
            "--no-echo")
    assert r.stdout == "sat on the mat"


def test_unknown_prime_characters_can_be_dropped(cli, trained_run):
    r = cli("sample", "-c", trained_run, "-p", "QthQe cat ", "--temp", "0", "-n", "7",
            "--drop-unknown")
    assert r.exit_code == 0, r
    assert r.stdout == "the cat sat on "
    assert r.stderr == "charrnn: warning: dropped prime characters the model never saw: 'Q'\n"


def test_seeded_runs_are_identical_across_processes_and_prime_reads_stdin(trained_run):
    args = ["sample", "-c", str(trained_run), "-n", "100", "--seed", "11", "-p", "-"]
    a = _run(*args, input=b"the dog ")
    b = _run(*args, input=b"the dog ")
    assert a.returncode == 0 and a.stderr == b"", a
    assert a.stdout == b.stdout
    assert a.stdout.decode() == "the dog " + _alone(trained_run, "the dog ", length=100,
                                                     seed=11)
    bad = _run(*args, input=b"the \xff")
    assert bad.returncode == 1 and b"stdin is not valid UTF-8" in bad.stderr


def test_output_is_flushed_while_generating(trained_run):
    """The first line reaches a pipe long before a long sample ends."""
    proc = subprocess.Popen([sys.executable, "-m", "charrnn", "sample", "-c", str(trained_run),
                             "-n", "10000000", "--temp", "0", "-p", "the "],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            env={**os.environ, "PYTHONPATH": os.getcwd()})
    try:
        line = proc.stdout.readline()
        assert proc.poll() is None  # still running: the line was not held back
        assert line == b"the cat sat on the mat.\n"
    finally:
        proc.kill()
        proc.communicate()


_TOKENS = ["-c", "run", "--checkpoint=x.safetensors", "--temp", "--temperature=0.5", "0",
           "0.8", "1e-3", "nan", "-1", "--top-k", "5", "--top-p", "0.9", "1.5", "--seed",
           "42", "-n", "-n80", "300", "-p", "-", "ROMEO:", "--prime=a b", "--stop", r"\n",
           "--stop=x", "--num-samples", "4", "--echo", "--no-echo", "--separator", "--jsonl",
           "--jsonl=1", "--drop-unknown", "--no-drop-unknown", "--help", "-h", "--", "extra",
           "--bogus", "-x", "--length", "--min-p", "--regex", "[a-z]+", "--ban", r"\t",
           "--dry-multiplier", "--dry-breakers", "--dry-allowed-length", "--prime-file", "-0",
           "--null", "--logprobs", "--logprobs=3"]


@settings(max_examples=150, deadline=None)
@given(st.lists(st.sampled_from(_TOKENS), max_size=8))
def test_sample_fast_path_parses_exactly_as_typer(args):
    """Start-up skips Typer's parser for plain options; it must never disagree with it."""
    import typer

    from charrnn.cli import app
    from charrnn.cli import sample_command as sample
    from charrnn.cli.fastpath import sample_options

    cmd = typer.main.get_command(app).commands["sample"]
    fast = sample_options(sample, ["sample", *args])
    try:
        full = cmd.make_context("sample", list(args)).params
    except (Exception, SystemExit):  # Typer refuses it (or prints help): so must we
        assert fast is None
        return
    if fast is not None:
        lists = ("stop", "corpus")  # repeatable options: None (fast) or () (Typer) if not given
        assert {**fast, **{k: tuple(fast[k] or ()) for k in lists}} == {
            **full, **{k: tuple(full[k] or ()) for k in lists}}


def test_sample_fast_path_takes_ordinary_command_lines():
    from charrnn.cli import sample_command as sample
    from charrnn.cli.fastpath import sample_options

    args = ["sample", "-c", "run", "-n500", "--temp=0.8", "--top-k", "40", "--top-p", ".9",
            "--seed", "1", "-p", "-", "--stop", r"\n\n", "--stop", "END", "--num-samples",
            "4", "--no-echo", "--separator", r"\0", "--jsonl", "--drop-unknown", "--min-p",
            "0.05", "--regex", "[A-Z][a-z]+", "--dry-multiplier", "0.8", "--dry-breakers",
            r"\n:", "--ban", "xyz", "--logprobs", "2", "--prime-file", "p.txt", "-0"]
    assert sample_options(sample, args) == {
        "checkpoint": "run", "length": 500, "temperature": 0.8, "top_k": 40, "top_p": 0.9,
        "seed": 1, "min_p": 0.05, "dry_multiplier": 0.8, "dry_base": 1.75,
        "dry_allowed_length": 20, "dry_breakers": r"\n:", "regex": "[A-Z][a-z]+", "ban": "xyz",
        "prime": "-", "stop": [r"\n\n", "END"], "num_samples": 4, "echo": False,
        "separator": r"\0", "jsonl": True, "drop_unknown": True, "show_copies": False,
        "min_copy": 20, "max_copy": None, "novel": False, "tries": 20, "corpus": None,
        "prime_file": "p.txt", "null": True, "logprobs": 2}
    assert sample_options(sample, ["sample"]) is not None
    assert sample_options(sample, ["sample", "--help"]) is None
    assert sample_options(sample, ["train", "-n", "5"]) is None


def test_bash_completion_works_and_every_help_shows_examples(cli):
    import os
    from pathlib import Path

    import charrnn

    env = {**os.environ, "_CHARRNN_COMPLETE": "complete_bash", "COMP_WORDS": "charrnn ne",
           "COMP_CWORD": "1", "PYTHONPATH": str(Path(charrnn.__file__).parents[1])}
    r = subprocess.run([sys.executable, "-m", "charrnn"], env=env, capture_output=True,
                       text=True, timeout=60)
    assert r.returncode == 0 and r.stdout.split() == ["neurons"], r
    r = cli("--show-completion", "bash")
    assert "complete -o default -F _charrnn_completion charrnn" in r.stdout
    for command in ("train", "sample", "eval", "neurons", "report", "info", "list"):
        r = cli(command, "--help")
        assert r.exit_code == 0 and "Examples" in r.stdout, (command, r)
