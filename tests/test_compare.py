"""``charrnn report RUN RUN ...``: several runs on one page and in one terminal table."""

from __future__ import annotations

import json
import re
import shutil

import pytest

from charrnn.runs import checkpoint as ckpt


@pytest.fixture(scope="module")
def gru_run(trained_run, corpus_file, tmp_path_factory):
    """A GRU trained on the same text as ``trained_run``, with a different batch."""
    from charrnn.cli import main

    run = tmp_path_factory.mktemp("gru") / "gru"
    assert main(["train", str(corpus_file), "-o", str(run), "--cell", "gru", "--hidden-size",
                 "32", "--layers", "1", "--embed-size", "16", "--max-steps", "60", "-b", "4",
                 "-t", "32", "--eval-every", "20", "--preview", "40"]) == 0
    return run


def _lines(run, kind):
    return [r for r in map(json.loads, (run / "metrics.jsonl").read_text().splitlines())
            if r["kind"] == kind]


def _best(run):
    return ckpt.inspect(run / "latest.safetensors").meta["progress"]["best_val_loss"]


def test_two_runs_on_one_page_and_one_table(cli, trained_run, gru_run, corpus_file, tmp_path):
    lstm = tmp_path / "lstm"
    shutil.copytree(trained_run, lstm)
    r = cli("report", lstm, gru_run, "-o", "cmp.html")
    assert r.exit_code == 0, r
    assert r.stderr == "charrnn: wrote cmp.html\n"
    head, *rows = r.stdout.splitlines()
    assert head.split()[:4] == ["run", "cell", "size", "T"] and len(rows) == 2
    for run, row in zip((lstm, gru_run), rows, strict=True):
        cells = row.split()
        assert cells[0] == run.name
        assert f"{_best(run):.4f}" in cells
        held = json.loads(cli("eval", "-c", run, "--json").stdout)["loss"]
        windows = json.loads(cli("eval", "-c", run, "--window", "256", "--json").stdout)
        assert f"{held:.4f}" in cells and f"{windows['loss']:.4f}" in cells
    page = (tmp_path / "cmp.html").read_text(encoding="utf-8")
    assert "http" not in page.replace("http://www.w3.org/2000/svg", "")  # no external asset
    # five charts, each against step, time and characters seen
    for x in ("step", "time", "chars"):
        assert page.count(f'<div class="chart" data-x="{x}">') == 5
    charts = re.findall(r'<div class="chart" data-x="(\w+)"><h3>([^<]*)</h3>(.*?)</svg>',
                        page, re.S)
    val = {x: svg for x, title, svg in charts if title == "Validation loss"}
    for run in (lstm, gru_run):
        points = re.search(rf'data-name="{run.name}"[^>]*points="([^"]+)"', val["step"])
        steps = [r["step"] for r in _lines(run, "val")]
        assert len(points.group(1).split()) == len(steps)
    # the configurations side by side, exactly the differing settings marked
    marked = set(re.findall(r'<tr class="diff"><td class="mark">&ne;</td><th>([^<]+)</th>',
                            page))
    assert {"model.cell", "model.hidden_size", "train.batch_size", "train.lr"} <= marked
    assert not marked & {"model.vocab_size", "model.num_layers", "corpus.source",
                         "train.seq_len"}
    # previews at comparable points: each cell is one of that run's own previews
    table = re.search(r'<table id="previews">(.*?)</table>', page, re.S).group(1)
    shown = re.findall(r"<pre>(.*?)</pre>", table, re.S)
    import html

    texts = {p["text"] for run in (lstm, gru_run) for p in _lines(run, "preview")}
    assert shown and all(html.unescape(s) in texts for s in shown)


def test_runs_from_an_earlier_version_still_report(cli, trained_run, tmp_path):
    """A log without gradient norms: that series is left out, not an error."""
    old = tmp_path / "old"
    shutil.copytree(trained_run, old)
    lines = []
    for r in map(json.loads, (old / "metrics.jsonl").read_text().splitlines()):
        for key in ("grad_norm", "grad_norm_max", "clipped"):
            r.pop(key, None)
        lines.append(json.dumps(r))
    (old / "metrics.jsonl").write_text("\n".join(lines) + "\n")
    r = cli("report", old, trained_run, "-o", "cmp.html", "--no-eval")
    assert r.exit_code == 0, r
    page = (tmp_path / "cmp.html").read_text(encoding="utf-8")
    assert "not in the log of old (an earlier version)" in page
    assert r.stdout.splitlines()[1].split()[-3:-1] == ["n/a", "n/a"]  # grad norm, clipped
    assert r.stdout.splitlines()[1].split()[9:11] == ["n/a", "n/a"]  # --no-eval
    one = cli("report", old, "-n", "20")
    assert one.exit_code == 0, one
    assert (old / "report.html").read_text(encoding="utf-8").count("<svg") == 2
    (old / "metrics.jsonl").unlink()
    assert cli("report", old, trained_run, "-o", "cmp.html", "--no-eval").exit_code == 0


def test_a_run_whose_corpus_is_gone_reports_without_its_eval(cli, trained_run, tmp_path):
    (tmp_path / "gone.txt").write_text("the cat sat on the mat.\n" * 60)
    assert cli("train", "gone.txt", "-o", "gone", "--hidden-size", "16", "--layers", "1",
               "--max-steps", "5", "-b", "4", "-t", "16").exit_code == 0
    (tmp_path / "gone.txt").unlink()
    r = cli("report", "gone", "-c", trained_run, "-o", "cmp.html")
    assert r.exit_code == 0, r
    assert r.stdout.splitlines()[1].split()[9:11] == ["n/a", "n/a"]
    assert "gone: no held-out eval (" in (tmp_path / "cmp.html").read_text()
