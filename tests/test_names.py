"""Names that are not UTF-8, text that is not text, and JSON that must stay JSON.

On Linux ``$'\\xff.txt'`` is a valid file name; Python hands it over as ``'\\udcff.txt'``
(a surrogate escape), which the OS takes back but UTF-8 cannot hold. Every such name
here lives in the test's own folder.
"""

from __future__ import annotations

import json
import math
import os

import pytest

from charrnn.runs import checkpoint as ckpt
from charrnn.safetext import check_text, dumps, shown
from tests.conftest import PATTERN

TINY = ["--hidden-size", "8", "--layers", "1", "--embed-size", "4", "-b", "4", "-t", "16",
        "--device", "cpu", "--dropout", "0"]
FF_TXT, FF_RUN = os.fsdecode(b"\xff.txt"), os.fsdecode(b"\xffrun")


def _valid_utf8_json_lines(text: str) -> list:
    assert "\ufffd" not in text and "\udcff" not in text  # capfd decodes with replacement
    return [json.loads(line) for line in text.splitlines()]


def test_a_run_on_a_file_whose_name_is_not_utf8_is_saved_and_read_by_every_command(
        cli, tmp_path):
    """Before: training died with an internal error at the first save (no checkpoint),
    and sample --jsonl, report, eval and list of a run folder named so failed or wrote a
    raw 0xff byte."""
    (tmp_path / FF_TXT).write_text(PATTERN * 20)
    r = cli("train", FF_TXT, "-o", FF_RUN, *TINY, "--max-steps", "4")
    assert r.exit_code == 0, r
    c = ckpt.inspect(tmp_path / FF_RUN / "latest.safetensors")
    assert c.meta["corpus"]["source"] == FF_TXT  # kept exactly: the name opens the file
    r = cli("train", "-o", FF_RUN, *TINY, "--resume", "--max-steps", "6")
    assert r.exit_code == 0 and "changed" not in r.stderr, r  # found again by its name

    r = cli("sample", "-c", FF_RUN, "-n", "5", "--jsonl", "--seed", "1")
    assert r.exit_code == 0, r
    [line] = _valid_utf8_json_lines(r.stdout)
    assert line["checkpoint"] == "\\xffrun/best.safetensors" and len(line["text"]) == 5
    r = cli("eval", "-c", FF_RUN, "--json")
    assert r.exit_code == 0, r
    assert _valid_utf8_json_lines(r.stdout)[0]["text"].startswith("\\xff.txt, held-out")
    r = cli("report", FF_RUN, "-n", "5")
    assert r.exit_code == 0 and r.stderr == "charrnn: wrote \\xffrun/report.html\n", r
    assert "\\xffrun" in (tmp_path / FF_RUN / "report.html").read_text(encoding="utf-8")
    r = cli("info", FF_RUN, "--json")
    assert _valid_utf8_json_lines("".join(r.stdout.split("\n")))[0]["corpus"]["source"] \
        == "\\xff.txt"
    r = cli("info", FF_RUN)
    assert r.exit_code == 0 and "\\xff.txt" in r.stdout and "\ufffd" not in r.stdout, r
    for args in (["list", "--root", "."], ["list", "--root", ".", "--json"]):
        r = cli(*args)
        assert r.exit_code == 0 and "\\xffrun" in r.stdout and "\ufffd" not in r.stdout, r
    assert _valid_utf8_json_lines(r.stdout)[0]["corpus"] == "\\xff.txt"


@pytest.mark.parametrize("args, what", [
    (["sample", "-p", "\udcff"], "the prime"),
    (["sample", "--stop", "a\udcff"], "a stop string"),
    (["sample", "--separator", "\udcff"], "--separator"),
    (["train", "t.txt", "--file-separator", "\udcff"], "--file-separator"),
])
def test_text_options_that_are_not_utf8_are_usage_errors(cli, trained_run, tmp_path, args,
                                                         what):
    """Before: an internal error (UnicodeEncodeError) from each."""
    (tmp_path / "t.txt").write_text(PATTERN * 10)
    extra = ["-c", str(trained_run), "-n", "3"] if args[0] == "sample" else ["-o", "run"]
    r = cli(*args, *extra)
    assert r.exit_code == 2 and r.stdout == "", r
    assert r.stderr == f"charrnn: error: {what} is not valid UTF-8 text (byte 0xff at " \
        f"character {args[-1].index(chr(0xdcff))})\n", r
    assert not (tmp_path / "run").exists()


def test_the_one_json_encoder_is_always_valid_json():
    data = {"loss": float("nan"), "bits": [float("inf"), -float("inf"), 1.5],
            "source": FF_TXT, "\udcffkey": "\ud800", "ok": "é"}
    out = dumps(data)
    assert json.loads(out) == {"loss": None, "bits": [None, None, 1.5], "source": "\\xff.txt",
                               "\\xffkey": "\\ud800", "ok": "é"}
    out.encode("utf-8")  # writable as UTF-8
    exact = dumps(data, exact=True)
    exact.encode("utf-8")
    assert json.loads(exact)["source"] == FF_TXT  # read back, the same name
    assert "NaN" not in out and "Infinity" not in out and math.isfinite(1.5)
    assert shown(FF_TXT) == "\\xff.txt" and shown("plain é") == "plain é"
    assert check_text("fine é", "x") == "fine é"


def _strict_json(text: str):
    def refuse(name: str):
        raise ValueError(f"{name} is not JSON")
    return json.loads(text, parse_constant=refuse)


def test_a_nan_in_a_checkpoint_header_is_null_in_json_output(cli, trained_run, tmp_path):
    """Before: info --json and list --json printed NaN (not JSON) for a header holding it."""
    from safetensors.numpy import save

    c = ckpt.inspect(trained_run / "best.safetensors")
    meta = {**c.meta, "progress": {**c.meta["progress"], "best_val_loss": float("nan"),
                                   "val_loss": float("inf")}}
    run = tmp_path / "root" / "r"
    run.mkdir(parents=True)
    blob = save(c.numpy_weights(), metadata={"charrnn": json.dumps(meta)})  # writes NaN
    (run / "best.safetensors").write_bytes(blob)
    r = cli("info", run, "--json")
    assert r.exit_code == 0, r
    progress = _strict_json(r.stdout)["progress"]
    assert progress["best_val_loss"] is None and progress["val_loss"] is None
    r = cli("list", "--root", tmp_path / "root", "--json")
    assert r.exit_code == 0 and _strict_json(r.stdout)["best_val_loss"] is None, r
