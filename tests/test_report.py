"""`charrnn report`: a run's page with its curves, configuration, vocabulary and samples."""

from __future__ import annotations

import re


def test_report_draws_curves_config_vocabulary_and_samples(cli, trained_run, tmp_path):
    import shutil

    run = tmp_path / "myrun"
    shutil.copytree(trained_run, run)
    r = cli("report", run, "-n", "50")
    assert r.exit_code == 0, r
    page = (run / "report.html").read_text(encoding="utf-8")
    assert page.count("<svg") == 4  # loss against chars and time, gradient norm, clipping
    assert 'data-name="mean"' in page and 'data-name="clipped"' in page
    assert page.count('data-name="train"') == 2 and page.count('data-name="validation"') == 2
    assert page.count("<h3>temperature") == 3
    assert "1 x 48" in page and "pattern.txt" in page
    n_val = sum(1 for ln in (run / "metrics.jsonl").read_text().splitlines()
                if '"val"' in ln)
    val_line = re.search(r'data-name="validation"[^>]*points="([^"]+)"', page).group(1)
    assert len(val_line.split()) == n_val
