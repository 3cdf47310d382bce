"""The Python API (charrnn.api): generate, samples, score; torch only once it scores."""

from __future__ import annotations

import subprocess
import sys

from charrnn import api


def test_api_generate_score_and_no_torch_until_scoring(trained_run):
    code = ("import sys; from charrnn import api; m = api.load(sys.argv[1]); "
            "print(repr(m.generate('the cat', 30, temperature=0, seed=1))); "
            "print(round(m.surprisal('the cat sat on the mat.').mean_bits, 3)); "
            "print('torch' in sys.modules)")
    r = subprocess.run([sys.executable, "-c", code, str(trained_run)], capture_output=True,
                       text=True, timeout=120)
    out = r.stdout.splitlines()
    assert out[0].startswith("'the cat sat on the mat.")
    assert out[2] == "False"
    m = api.load(trained_run)
    score = m.score("the cat sat on the mat.\nthe dog ate the log.\n" * 3 + "QQ")
    assert score.bits_per_char < 0.5 and score.unknown == {"Q": 2}
    assert score.chars == len("the cat sat on the mat.\nthe dog ate the log.\n" * 3) - 1


def test_api_samples_stop_and_top_p_match_the_sampler(trained_run):
    m = api.load(trained_run)
    texts = m.samples(3, "the ", length=40, temperature=1.0, seed=7, top_p=0.9, stop="\n")
    assert texts == [m.generate("the ", 40, 1.0, seed=7 + i, top_p=0.9, stop="\n")[4:]
                     for i in range(3)]
    assert all(t.endswith("\n") or len(t) == 40 for t in texts)
    assert all("\n" not in t[:-1] for t in texts)  # each ended at its first newline
