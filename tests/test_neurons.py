"""Units that track text features (neurons.py) and the `neurons` command."""

from __future__ import annotations

import re

import numpy as np

from charrnn.inspect.units import correlation_table, features, rank_units
from tests.conftest import page_data


def test_features_mark_quotes_brackets_case_and_positions():
    f = features('a "b c" (d [e])\nxy\n')
    as_str = {k: "".join(str(int(x)) for x in v) for k, v in f.items()}
    assert as_str["inside quotes"] == "0011110000000000000"
    assert as_str["inside brackets"] == "0000000011111100000"
    assert list(f["position in line"][:3]) == [1, 2, 3]
    assert list(f["position in line"][-4:]) == [0, 1, 2, 0]
    assert as_str["position in word"] == "1001010001001000120"
    assert as_str["upper-case letter"] == "0" * 19


def test_ranking_finds_planted_units():
    rng = np.random.default_rng(0)
    text = ('he said "yes (maybe)" and left\nshe said "no"\n' * 30)
    feats = features(text)
    values = rng.normal(size=(len(text), 40)).astype(np.float32)
    values[:, 7] = feats["inside quotes"] + 0.3 * rng.normal(size=len(text))
    values[:, 21] = -feats["position in line"] / 30 + 0.1 * rng.normal(size=len(text))
    names = [f"h1.{u}" for u in range(40)]
    table = correlation_table(values, feats)
    ranked = rank_units(table, names, per_feature=2, total=5)
    by_name = {r.name: r for r in ranked}
    assert ranked[0].name in ("h1.7", "h1.21") and ranked[1].name in ("h1.7", "h1.21")
    assert by_name["h1.7"].feature == "inside quotes" and by_name["h1.7"].r > 0.8
    assert by_name["h1.21"].feature == "position in line" and by_name["h1.21"].r < -0.9
    assert len(ranked) == len({r.name for r in ranked}) >= 5
    # A feature that never varies (no upper-case letters) is left out, not NaN-ranked.
    assert "upper-case letter" not in table


def test_correlations_equal_numpy_corrcoef():
    from charrnn.inspect.units import correlations

    rng = np.random.default_rng(3)
    values, feats = rng.normal(size=(200, 6)), rng.normal(size=(200, 3))
    feats[:, 2] = 1.0  # constant: no correlation defined
    r = correlations(values.astype(np.float32), feats)
    want = np.corrcoef(np.c_[feats[:, :2], values], rowvar=False)[:2, 2:]
    np.testing.assert_allclose(r[:2], want, atol=1e-6)
    assert np.isnan(r[2]).all()


def test_neurons_prints_ranked_units_and_writes_a_page(cli, trained_run, corpus_file, tmp_path):
    r = cli("neurons", corpus_file, "-c", trained_run, "--top", "5", "--html", "n.html",
            "--max-chars", "600")
    assert r.exit_code == 0, r
    lines = r.stdout.splitlines()
    assert lines[0].startswith("unit") and "96 units over 600 characters" in lines[0]
    rows = [ln.split(None, 2) for ln in lines[1:]]
    strengths = [abs(float(x[1])) for x in rows]
    assert strengths == sorted(strengths, reverse=True) and len(rows) >= 5
    assert all(re.fullmatch(r"[hc]1\.\d+", x[0]) for x in rows)
    data = page_data(tmp_path / "n.html")
    assert data["first"] == rows[0][0]
    assert len(data["acts"][rows[0][0]]) == 600
    assert "feature:position in line" in data["acts"]
