"""train --preview: a sample at every validation, on stderr, in metrics.jsonl, in the report,
and continued exactly by --resume (issue 16, part 1)."""

from __future__ import annotations

import codecs
import html
import json
import os
import signal
from pathlib import Path
from types import SimpleNamespace

from test_readme import readme_rows

from charrnn import escapes
from charrnn.config import ModelConfig, TrainConfig
from charrnn.data.corpus import Corpus
from charrnn.inspect import pages
from charrnn.train import loop as train
from charrnn.train import preview, progress
from tests.conftest import PATTERN

TINY = ["--hidden-size", "16", "--layers", "1", "--embed-size", "8", "-b", "4", "-t", "16",
        "--dropout", "0", "--device", "cpu"]


def _previews(run: Path) -> list[dict]:
    lines = (run / "metrics.jsonl").read_text(encoding="utf-8").splitlines()
    return [r for r in map(json.loads, lines) if r["kind"] == "preview"]


def test_a_preview_at_each_validation_logged_and_one_line_each_off_a_terminal(
        cli, corpus_file):
    r = cli("train", corpus_file, "-o", "run", *TINY, "--max-steps", "12", "--eval-every", "4",
            "--preview", "60")
    assert r.exit_code == 0, r
    records = _previews(Path("run"))
    assert [p["step"] for p in records] == [4, 8, 12]
    assert all(len(p["text"]) == 60 and p["seed"] == 1337 and p["temperature"] == 0.8
               for p in records)
    # stderr is not a terminal here: one line each, its escapes undo to the logged text
    shown = [line for line in r.stderr.splitlines() if line.startswith("preview step ")]
    assert [s.split(":")[0] for s in shown] == ["preview step 4", "preview step 8",
                                                "preview step 12"]
    assert [codecs.decode(s.split(": ", 1)[1], "unicode_escape") for s in shown] == [
        p["text"] for p in records]
    assert r.stdout == ""
    # the preview is the sample those weights give with the same seed and temperature
    s = cli("sample", "-c", "run/latest.safetensors", "--seed", "1337", "--temp", "0.8",
            "-n", "60", "--jsonl")
    assert json.loads(s.stdout)["text"] == records[-1]["text"]


def test_preview_0_disables_it(cli, corpus_file):
    r = cli("train", corpus_file, "-o", "run", *TINY, "--max-steps", "4", "--eval-every", "2",
            "--preview", "0")
    assert r.exit_code == 0, r
    assert _previews(Path("run")) == [] and "preview" not in r.stderr


def test_bad_preview_length_is_one_line(cli, corpus_file):
    r = cli("train", corpus_file, "-o", "run", *TINY, "--max-steps", "4", "--preview", "-1")
    assert r.exit_code != 0 and "--preview" in r.stderr and "Traceback" not in r.stderr
    assert not Path("run").exists()


def test_resume_keeps_the_runs_preview_length(cli, corpus_file):
    args = ["train", corpus_file, "-o", "run", *TINY, "--eval-every", "2"]
    assert cli(*args, "--max-steps", "4", "--preview", "25").exit_code == 0
    assert cli(*args, "--max-steps", "6", "--resume").exit_code == 0
    records = _previews(Path("run"))
    assert [p["step"] for p in records] == [2, 4, 6]
    assert {len(p["text"]) for p in records} == {25}


class _CtrlC(train.Callbacks):
    """Sends this process a real SIGINT after step ``stop_at``; keeps the previews shown."""

    def __init__(self, stop_at: int | None = None) -> None:
        self.stop_at, self.shown = stop_at, []

    def on_step(self, p: train.Progress) -> None:
        if p.step == self.stop_at:
            os.kill(os.getpid(), signal.SIGINT)

    def on_preview(self, step: int, text: str) -> None:
        self.shown.append((step, text))


def test_resume_continues_the_preview_sequence_exactly(tmp_path):
    text = tmp_path / "t.txt"
    text.write_text(PATTERN * 8)
    corpus = Corpus.load(str(text), 0.1)
    mc = ModelConfig(vocab_size=len(corpus.vocab), num_layers=1, hidden_size=16,
                     embed_size=8, dropout=0.3)
    tc = TrainConfig(batch_size=4, seq_len=16, eval_every=4, patience=0, warmup_steps=3,
                     device="cpu", seed=7, max_steps=14, preview=40)
    whole = _CtrlC()
    train.Trainer(mc, tc, corpus, tmp_path / "whole", whole).run()
    first = _CtrlC(stop_at=6)
    assert train.Trainer(mc, tc, corpus, tmp_path / "split", first).run().reason == "interrupted"
    second = _CtrlC()
    resumed = train.Trainer(mc, tc, corpus, tmp_path / "split", second)
    resumed.resume(tmp_path / "split" / "latest.safetensors")
    resumed.run()

    assert [s for s, _ in whole.shown] == [4, 8, 12, 14]
    assert first.shown + second.shown == whole.shown
    logged = [(p["step"], p["text"]) for p in _previews(tmp_path / "split")]
    assert logged == whole.shown
    assert len({t for _, t in whole.shown}) > 1  # the weights changed, and so did the text


def test_report_shows_the_previews_beside_the_val_loss(cli, corpus_file):
    assert cli("train", corpus_file, "-o", "run", *TINY, "--max-steps", "6", "--eval-every",
               "3", "--preview", "40").exit_code == 0
    r = cli("report", "run")
    assert r.exit_code == 0, r
    page = Path("run/report.html").read_text(encoding="utf-8")
    table = page[page.index('<table id="previews">'):]
    table = table[:table.index("</table>")]
    lines = [json.loads(x) for x in Path("run/metrics.jsonl").read_text().splitlines()]
    val = {x["step"]: x["loss"] for x in lines if x["kind"] == "val"}
    for p in (x for x in lines if x["kind"] == "preview"):
        assert (f'<td class="num">{p["step"]}</td><td class="num">{val[p["step"]]:.4f}</td>'
                f'<td><pre>{html.escape(p["text"])}</pre></td>') in table


def test_report_table_escapes_text_and_spreads_long_runs():
    page = pages.run_page("t", [], [], ["a"], [], [], previews=[(5, None, "<b>&x")])
    assert "<pre>&lt;b&gt;&amp;x</pre>" in page and "<b>&x" not in page
    metrics = [{"kind": "val", "step": 1, "loss": 3.0}, {"kind": "preview", "step": 1,
                                                          "text": "a"}]
    metrics += [{"kind": k, "step": s, "loss": 2.0, "text": f"t{s}"}
                for s in range(2, 101) for k in ("val", "preview")]
    # a step logged twice (resumed from before a validation): its own validation's loss
    metrics += [{"kind": "val", "step": 100, "loss": 1.0},
                {"kind": "preview", "step": 100, "text": "again"}]
    rows, total = preview.table(metrics, limit=10)
    assert total == 101 and len(rows) == 10
    assert rows[0] == (1, 3.0, "a") and rows[-1] == (100, 1.0, "again")
    assert [s for s, _, _ in rows] == sorted(s for s, _, _ in rows)


def test_escape_keeps_a_preview_on_one_line_and_a_terminal_safe():
    text = "a\nb\\c\x1b[31m\u2028\td\r\u00e9"
    one = escapes.escape(text)
    assert len(one.splitlines()) == 1 and "\x1b" not in one
    assert one == "a\\nb\\\\c\\x1b[31m\\u2028\\td\\r\u00e9"
    assert escapes.escape(text, keep="\n\t") == "a\nb\\\\c\\x1b[31m\\u2028\td\\r\u00e9"


def test_on_a_terminal_the_preview_is_text_under_its_validation_line(capsys):
    console = progress.ConsoleProgress()
    console.bar = SimpleNamespace(disable=False)  # as on a terminal
    console.on_preview(40, "the cat\nsat\x1b")
    err = capsys.readouterr().err
    assert err == "  preview at step 40 (temperature 0.8):\n  | the cat\n  | sat\\x1b\n"


def test_readme_lists_the_preview_default():
    row = [cell for flags, cell in readme_rows("train") if "--preview" in flags]
    assert row and row[0].startswith(f"{TrainConfig.preview} ")
