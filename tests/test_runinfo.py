"""`charrnn info` and `charrnn list`: what a checkpoint holds and which runs there are."""

from __future__ import annotations

import json
import math

from charrnn.runs import checkpoint as ckpt


def test_info_describes_a_checkpoint_and_list_skips_a_broken_run(cli, trained_run, tmp_path):
    r = cli("info", trained_run)
    assert r.exit_code == 0, r
    for word in ("lstm", "1 x 48", "parameters", "pattern.txt", "best val loss", "torch"):
        assert word in r.stdout
    meta = json.loads(cli("info", trained_run, "--json").stdout)
    assert meta["model"]["hidden_size"] == 48
    import shutil

    shutil.copytree(trained_run, tmp_path / "checkpoints" / "a")
    (tmp_path / "checkpoints" / "broken").mkdir()
    (tmp_path / "checkpoints" / "broken" / "best.safetensors").write_bytes(b"junk")
    r = cli("list", "--json")
    assert r.exit_code == 0, r
    runs = [json.loads(ln) for ln in r.stdout.splitlines()]
    assert [x["run"] for x in runs] == ["checkpoints/a"]
    best = ckpt.inspect(tmp_path / "checkpoints/a/latest.safetensors").meta["progress"]
    assert runs[0]["best_val_loss"] == best["best_val_loss"]
    r = cli("list")
    assert "checkpoints/a" in r.stdout and f"{best['best_val_loss'] / math.log(2):.3f}" in r.stdout


def test_info_and_report_take_the_checkpoint_as_an_argument_or_with_c(cli, trained_run,
                                                                       tmp_path):
    as_argument = cli("info", trained_run, "--json")
    with_c = cli("info", "-c", trained_run, "--json")
    assert as_argument.exit_code == with_c.exit_code == 0, with_c
    assert json.loads(with_c.stdout) == json.loads(as_argument.stdout)
    r = cli("report", "-c", trained_run, "-o", tmp_path / "r.html", "-n", "20")
    assert r.exit_code == 0 and (tmp_path / "r.html").is_file(), r
    r = cli("info", trained_run, "-c", tmp_path / "elsewhere")
    assert r.exit_code == 2 and "two checkpoints given" in r.stderr, r
    assert cli("info", trained_run, "-c", trained_run).exit_code == 0


def test_info_shows_the_files_and_lineage_rows_once(cli, trained_run, tmp_path):
    """A fine-tuned run on a folder: one "files" row, one lineage chain (they were shown
    twice)."""
    notes = tmp_path / "notes"
    notes.mkdir()
    (notes / "a.txt").write_text("the cat sat on the mat.\n" * 40, encoding="utf-8")
    (notes / "b.txt").write_text("the dog ate the log! zz\n" * 40, encoding="utf-8")
    (notes / "c.bin").write_bytes(b"\x00\x01\x02" * 10)
    r = cli("train", notes, "--init-from", trained_run, "-o", "tuned", "--max-steps", "3")
    assert r.exit_code == 0, r
    out = cli("info", "tuned").stdout
    rows = [line.split(None, 1)[0] for line in out.splitlines() if line.strip()]
    assert rows.count("files") == 1 and rows.count("fine-tuned") == 1, out
    assert "2 used, 1 skipped" in out and "'\\n'" in out
    assert str(trained_run / "best.safetensors") in out
    assert out.count("its corpus") == 1 and "pattern.txt" in out
    assert out.count("new characters") == 1 and "'!z'" in out
