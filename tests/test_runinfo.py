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
