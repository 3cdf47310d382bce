"""Bad input through the CLI: one line on stderr, a non-zero exit, never a traceback.

Files that are not usable text, checkpoints that are damaged, edited or foreign, and
train option values out of range. (tests/test_cli.py and tests/test_text.py hold more
cases; sampling options have their table in tests/test_sample_options.py.)
"""

from __future__ import annotations

import json
import os
import struct
from pathlib import Path

import pytest
import torch

from charrnn.model.network import load_tensors
from charrnn.runs import checkpoint as ckpt
from tests.conftest import PATTERN

TINY = ["--hidden-size", "8", "--layers", "1", "--embed-size", "4", "-b", "4", "-t", "16",
        "--device", "cpu"]


def _one_line_error(r, code: int | None = None) -> None:
    assert r.exit_code != 0 if code is None else r.exit_code == code, r
    assert r.stderr.count("\n") == 1 and r.stderr.startswith("charrnn: "), r
    assert "Traceback" not in r.stderr and "internal error" not in r.stderr, r
    assert r.stdout == "", r


# --------------------------------------------------------------------------- text files
@pytest.mark.parametrize("content, message", [
    (b"", "f.txt is empty"),
    (b" \n\t \r\n", "f.txt holds only whitespace"),
    (b"x", "f.txt is too short to train on (1 character)"),
    (b"text\x00\x00\x01\x02 more", "binary file (NUL byte at offset 4)"),
    (b"good start \xc3\x28 then bad", "not valid UTF-8 (byte 0xc3 at offset 11)"),
    ("UTF-16 text".encode("utf-16"), "UTF-16 LE text; convert it to UTF-8"),
    ("no BOM here".encode("utf-16-be"), "looks like UTF-16 text; convert it to UTF-8"),
])
def test_unusable_text_files_are_refused_in_one_line(cli, tmp_path, content, message):
    (tmp_path / "f.txt").write_bytes(content)
    r = cli("train", "f.txt", *TINY, "--max-steps", "1")
    _one_line_error(r, 1)
    assert message in r.stderr


def test_an_unreadable_file_is_refused_in_one_line(cli, tmp_path, monkeypatch):
    p = tmp_path / "f.txt"
    p.write_text(PATTERN * 10)
    if os.name == "posix" and os.geteuid() != 0:
        p.chmod(0)
    else:  # root reads anything: make opening it fail as it would for a user
        real = Path.open

        def open_(self, *a, **kw):
            if self.name == "f.txt":
                raise PermissionError(13, "Permission denied", str(self))
            return real(self, *a, **kw)

        monkeypatch.setattr(Path, "open", open_)
    r = cli("train", "f.txt", *TINY, "--max-steps", "1")
    _one_line_error(r, 1)
    assert "cannot read f.txt: permission denied" in r.stderr


def test_50_mb_without_a_newline_trains(cli, tmp_path):
    """Nothing reads by lines or grows quadratically: one 50 MB line is an ordinary text."""
    line = ("".join(chr(97 + (i * 7) % 26) for i in range(997)) + " ").encode()
    (tmp_path / "one-line.txt").write_bytes(line * (50_000_000 // len(line)))
    r = cli("train", "one-line.txt", *TINY, "--max-steps", "2", "--val-fraction", "0.0005",
            "-o", "run")
    assert r.exit_code == 0, r
    c = ckpt.inspect(tmp_path / "run" / "latest.safetensors")
    assert "\n" not in c.meta["vocab"] and c.meta["corpus"]["train_chars"] > 49_000_000


# --------------------------------------------------------------------------- checkpoints
@pytest.mark.parametrize("args, message", [
    (["sample", "-c", "missing"], "no such checkpoint: missing"),
    (["sample", "-c", "empty"], "no checkpoint in empty/"),
    (["eval", "-c", "empty"], "no checkpoint in empty/"),
    (["sample", "-c", "empty/latest.safetensors"], "no such checkpoint"),
    (["train", PATTERN and "t.txt", "-o", "empty", "--resume"], "nothing to resume"),
    (["train", "t.txt", "-o", "missing", "--resume"], "nothing to resume"),
])
def test_missing_or_empty_checkpoint_folder_is_refused_and_not_created(cli, tmp_path, args,
                                                                       message):
    (tmp_path / "empty").mkdir()
    (tmp_path / "t.txt").write_text(PATTERN * 10)
    r = cli(*args)
    _one_line_error(r, 1)
    assert message in r.stderr
    assert not (tmp_path / "missing").exists()


def _edit(path: Path, meta_edit=None, header_edit=None, raw_meta: str | None = None) -> None:
    """Rewrite a checkpoint's JSON header in place, as a user or a bad tool might."""
    data = path.read_bytes()
    (n,) = struct.unpack("<Q", data[:8])
    header = json.loads(data[8 : 8 + n])
    if meta_edit is not None:
        meta = json.loads(header["__metadata__"]["charrnn"])
        meta_edit(meta)
        header["__metadata__"]["charrnn"] = json.dumps(meta)
    if raw_meta is not None:
        header["__metadata__"]["charrnn"] = raw_meta
    if header_edit is not None:
        header_edit(header)
    raw = json.dumps(header).encode()
    path.write_bytes(struct.pack("<Q", len(raw)) + raw + data[8 + n :])


def _set(section: str, key: str, value):
    return lambda m: m[section].__setitem__(key, value)


@pytest.mark.parametrize("kind, edit, message", [
    ("meta", lambda m: m.update(format_version=2), "newer charrnn (format 2"),
    ("meta", lambda m: m.update(format_version="1"), "bad format version '1'"),
    ("meta", lambda m: m.update(format="other"), "no charrnn metadata"),
    ("meta", lambda m: m.update(vocab="".join(m["vocab"])), "vocabulary must be a list"),
    ("meta", lambda m: m["vocab"].__setitem__(-1, "\ud800"), "vocabulary must be a list"),
    ("meta", lambda m: m["vocab"].reverse(), "distinct characters in code-point order"),
    ("meta", _set("model", "num_layers", 2), "weight rnn.weight_ih_l1 is missing"),
    ("meta", _set("model", "dropout", 1.0), "dropout must be in [0, 1)"),
    ("meta", _set("model", "embed_size", None), "embedding size must be a positive"),
    ("meta", lambda m: m["model"].update(extra=1), "unknown ModelConfig fields: extra"),
    ("meta", lambda m: m.update(model=[1]), "ModelConfig must be a JSON object"),
    ("raw", "{not json", "no charrnn metadata"),
    ("raw", "[1, 2]", "no charrnn metadata"),
    ("header", lambda h: h["head.bias"].update(shape="x"), "malformed entry for tensor"),
    ("header", lambda h: h["head.bias"].update(data_offsets=[0, -1]), "malformed entry"),
    ("header", lambda h: h["head.bias"].update(dtype="F16"), "weight head.bias is F16"),
    ("header", lambda h: h.update(__metadata__=7), "no charrnn metadata"),
    ("meta", _set("progress", "step", "150"), "progress.step must be a number"),
    ("meta", _set("progress", "best_val_loss", "low"), "progress.best_val_loss must be a"),
    ("meta", _set("train", "lr", "fast"), "train.lr must be a number"),
    ("meta", lambda m: m.update(train="fast"), "train must be a JSON object"),
    ("meta", _set("corpus", "source", 5), "corpus source and digest must be strings"),
    ("meta", _set("corpus", "train_chars", [1]), "corpus.train_chars must be a number"),
    ("meta", lambda m: m.update(versions="new"), "versions must be a JSON object"),
    ("meta", _set("versions", "torch", 2), "versions must be strings"),
])
def test_edited_or_wrong_typed_metadata_is_refused_by_every_command(
        cli, trained_run, corpus_file, tmp_path, kind, edit, message):
    (tmp_path / "run").mkdir()
    p = tmp_path / "run" / "latest.safetensors"
    p.write_bytes((trained_run / "latest.safetensors").read_bytes())
    _edit(p, **{{"meta": "meta_edit", "raw": "raw_meta", "header": "header_edit"}[kind]: edit})
    for args in (["sample", "-c", p, "-n", "5"], ["eval", "-c", p], ["info", p],
                 ["report", "run", "-o", "r.html"], ["neurons", "-c", p],
                 ["train", corpus_file, "-o", "run", "--resume", "--max-steps", "200"]):
        r = cli(*args)
        _one_line_error(r, 1)
        assert message in r.stderr and "not a usable charrnn checkpoint" in r.stderr
    # listing runs skips the damaged one and still shows the others
    good = tmp_path / "checkpoints" / "good"
    good.mkdir(parents=True)
    (good / "best.safetensors").write_bytes((trained_run / "best.safetensors").read_bytes())
    p.replace(tmp_path / "checkpoints" / "run.safetensors")
    r = cli("list", "--json")
    assert r.exit_code == 0, r
    assert [json.loads(line)["run"] for line in r.stdout.splitlines()] == ["checkpoints/good"]


@pytest.mark.parametrize("edit, message", [
    (_set("progress", "epoch_chunk", -1), "progress counters must be integers"),
    (_set("progress", "elapsed", float("inf")), "times and losses must be finite"),
    (_set("progress", "eval_seconds", None), "times and losses must be finite"),
    (lambda m: m["progress"].pop("chars_seen"), "training state lacks 'chars_seen'"),
    (lambda m: m.pop("progress"), "training state lacks 'progress'"),
    (_set("train", "lr", -1), "learning rate must be positive"),
    (_set("train", "seed", -5), "seed must be an integer"),
    (lambda m: m["optimizer"].update(param_groups=5), "optimizer parameter groups"),
    (lambda m: m["optimizer"].update(param_groups=[{"params": [0]}]), "optimizer state does "
                                                                      "not fit the model"),
    (lambda m: m.pop("optimizer"), "holds weights only; resume from a latest checkpoint"),
])
def test_damaged_training_state_is_refused_on_resume(cli, trained_run, corpus_file, tmp_path,
                                                     edit, message):
    (tmp_path / "run").mkdir()
    p = tmp_path / "run" / "latest.safetensors"
    p.write_bytes((trained_run / "latest.safetensors").read_bytes())
    _edit(p, meta_edit=edit)
    r = cli("train", corpus_file, "-o", "run", "--resume", "--max-steps", "200")
    _one_line_error(r, 1)
    assert message in r.stderr


def test_a_run_from_before_weight_averaging_resumes_without_it(cli, corpus_file, tmp_path):
    r = cli("train", corpus_file, "-o", "run", "--max-steps", "4", "--hidden-size", "16",
            "--ema", "0")
    assert r.exit_code == 0
    _edit(tmp_path / "run" / "latest.safetensors",
          meta_edit=lambda m: m["train"].pop("ema"))
    r = cli("train", corpus_file, "-o", "run", "--resume", "--max-steps", "8")
    assert r.exit_code == 0, r.stderr
    c = ckpt.inspect(tmp_path / "run" / "latest.safetensors")
    assert c.meta["train"]["ema"] == 0 and c.meta["progress"]["step"] == 8
    assert not any(k.startswith("train.") for k in c.tensors)


@pytest.mark.parametrize("name, value, message", [
    ("optim.0.exp_avg", torch.zeros(3), "tensor optim.0.exp_avg does not fit the model"),
    ("optim.99.exp_avg", torch.zeros(3), "tensor optim.99.exp_avg does not fit the model"),
    ("optim.0", torch.zeros(3), "tensor optim.0 does not fit the model"),
    ("carry.h", torch.zeros(1, 2, 3), "carried state does not fit the model"),
    ("rng.cpu", torch.zeros(10, dtype=torch.uint8), "random-generator state"),
    ("train.head.bias", torch.zeros(3), "trained weights do not fit the model"),
    ("train.extra", torch.zeros(3), "trained weights do not fit the model"),
])
def test_wrong_shaped_training_tensors_are_refused_on_resume(
        cli, trained_run, corpus_file, tmp_path, name, value, message):
    c = ckpt.inspect(trained_run / "latest.safetensors")
    tensors = load_tensors(c)
    tensors[name] = value
    ckpt.write(tmp_path / "run" / "latest.safetensors", tensors, c.meta)
    r = cli("train", corpus_file, "-o", "run", "--resume", "--max-steps", "200")
    _one_line_error(r, 1)
    assert message in r.stderr


def test_truncated_weights_are_refused_by_every_command(cli, trained_run, corpus_file, tmp_path):
    (tmp_path / "run").mkdir()
    p = tmp_path / "run" / "latest.safetensors"
    p.write_bytes((trained_run / "latest.safetensors").read_bytes()[:-1000])
    for args in (["sample", "-c", "run"], ["eval", "-c", p],
                 ["train", corpus_file, "-o", "run", "--resume", "--max-steps", "200"]):
        r = cli(*args)
        _one_line_error(r, 1)
        assert "truncated" in r.stderr


def test_a_pickle_renamed_into_a_run_folder_never_runs(cli, tmp_path, corpus_file):
    """The crafted payload would create a file if unpickled; every command refuses it."""
    marker = tmp_path / "pwned"

    class Evil:
        def __reduce__(self):
            return (open, (str(marker), "w"))

    (tmp_path / "run").mkdir()
    torch.save({"x": Evil()}, tmp_path / "run" / "model.pt")
    torch.save({"x": Evil()}, tmp_path / "run" / "latest.safetensors")
    for args in (["sample", "-c", "run/model.pt"], ["sample", "-c", "run"], ["eval", "-c", "run"],
                 ["train", corpus_file, "-o", "run", "--resume", "--max-steps", "2"]):
        r = cli(*args)
        _one_line_error(r, 1)
        assert not marker.exists()


# --------------------------------------------------------------------------- option values
@pytest.mark.parametrize("args", [
    ["--hidden-size", "0"], ["--hidden-size", "-4"], ["--layers", "0"], ["--embed-size", "0"],
    ["-b", "0"], ["-t", "-1"], ["--max-steps", "0"], ["--warmup", "-1"], ["--patience", "-1"],
    ["--eval-every", "-2"], ["--dropout", "1"], ["--dropout", "-0.1"], ["--dropout", "nan"],
    ["--lr", "0"], ["--lr", "-1"], ["--lr", "nan"], ["--lr", "inf"], ["--weight-decay", "-1"],
    ["--grad-clip", "-1"], ["--grad-clip", "nan"], ["--ema", "1"], ["--ema", "-0.1"],
    ["--epochs", "0"], ["--epochs", "nan"],
    ["--val-fraction", "1"], ["--val-fraction", "-0.1"], ["--max-time", "0"],
    ["--max-time", "-5m"], ["--seed", "-1"], ["--seed", str(2**64)], ["--device", "tpu"],
    ["--hidden-size", "x"],
    # round 2 (issue 31): each was an internal error, a hang or taken as "not given"
    ["--val-fraction", "nan"], ["--val-fraction", "inf"],
    ["--max-time", ""], ["--layers", "100000"], ["--preview", "1000000"],
    ["--file-separator", "\udcff"], ["--hidden-size", "100000"],
    ["--embed-size", "100000000"], ["-b", "100000000", "-t", "100000000"],
])
def test_out_of_range_train_options_exit_2_and_create_no_run(cli, tmp_path, args):
    (tmp_path / "t.txt").write_text(PATTERN * 10)
    r = cli("train", "t.txt", "-o", "run", *args)
    _one_line_error(r, 2)
    assert not (tmp_path / "run").exists()


@pytest.mark.parametrize("args, needs", [
    (["--hidden-size", "100000"], "training a 2x100000 lstm with embedding 64 "
     "(120,028,700,975 parameters) at batch 3 x 32 needs about 2,881.6 GB of memory"),
    (["--layers", "64", "--hidden-size", "4096", "--cell", "gru"], "needs about 154.5 GB"),
])
def test_a_model_too_big_for_this_machine_says_what_it_needs(cli, tmp_path, monkeypatch,
                                                             args, needs):
    """Sizes are bounded by what can be allocated: the refusal says how much memory the
    model would need (here against a machine of 16 GB), before any of it is allocated."""
    monkeypatch.setattr("charrnn.model.device.memory_bytes", lambda: 16 * 10**9)
    (tmp_path / "t.txt").write_text(PATTERN * 10)
    r = cli("train", "t.txt", "-o", "run", "--device", "cpu", "--max-steps", "1", *args)
    _one_line_error(r, 2)
    assert needs in r.stderr and "this machine has 16.0 GB" in r.stderr, r


@pytest.mark.parametrize("args, message", [
    (["serve", "--grace", "inf"], "--grace must be in 0..86400 seconds"),
    (["serve", "--max-streams", "10000000000"], "--max-streams must be in 1..100,000"),
    (["eval", "--adapt", "--adapt-lr", "inf"], "--adapt-lr must be a finite number"),
    (["sample", "--num-samples", "1000000000", "-n", "1"],
     "1,000,000,000 samples at once need about 5,684.0 GB of memory; this machine has"),
    (["report", "-n", "100000000"], "Invalid value for '--length'"),
])
def test_other_unbounded_options_are_refused(cli, trained_run, args, message):
    r = cli(*args, "-c", trained_run)
    _one_line_error(r, 2)
    assert message in r.stderr, r


def test_an_unexpected_error_is_still_one_line(cli, monkeypatch):
    """A bug must not print a traceback either (it used to: the except clause itself
    raised AttributeError on Typer versions whose click has no exceptions.Abort)."""
    from charrnn.score import evaluate

    def broken(*a, **kw):
        raise ValueError("something unforeseen")

    monkeypatch.setattr(evaluate, "eval_command", broken)
    r = cli("eval")
    assert r.exit_code == 1 and r.stdout == "" and "Traceback" not in r.stderr, r
    assert r.stderr == ("charrnn: internal error: ValueError: something unforeseen "
                        "(set CHARRNN_DEBUG=1 for a traceback)\n")


def test_weights_with_nan_are_refused(cli, trained_run, corpus_file, tmp_path):
    c = ckpt.inspect(trained_run / "latest.safetensors")
    tensors = load_tensors(c)
    tensors["head.bias"][2] = float("nan")
    ckpt.write(tmp_path / "run" / "latest.safetensors", tensors, c.meta)
    for args in (["sample", "-c", "run"], ["eval", "-c", "run"],
                 ["train", corpus_file, "-o", "run", "--resume", "--max-steps", "200"]):
        r = cli(*args)
        _one_line_error(r, 1)
        assert "weights contain NaN or infinite values" in r.stderr


@pytest.mark.parametrize("args, message", [
    (["eval", "{corpus}", "--html", "out", "--start", "99999"], "past the end"),
    (["eval", "{corpus}", "--html", "."], "is a directory"),
    (["neurons", "{corpus}", "--max-chars", "1"], "Invalid value for '--max-chars'"),
    (["report", "nowhere"], "no such checkpoint"),
    (["list"], "checkpoints/ does not exist"),
    (["info", "nope.safetensors"], "no such checkpoint"),
])
def test_inspection_commands_refuse_bad_input_in_one_line(cli, trained_run, corpus_file, args,
                                                          message):
    args = [a.format(corpus=corpus_file) for a in args]
    r = cli(*args, *(["-c", trained_run] if args[0] in ("eval", "neurons") else []))
    assert r.exit_code != 0 and message in r.stderr, r
    assert r.stderr.count("\n") == 1 and r.stdout == ""
