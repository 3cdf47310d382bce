"""A regex every sample must match: 1,000 names from a names model, and how many match.

Makes a list of 4,000 invented names (syllables drawn with a fixed seed, 2 to 16
letters: some longer than the expression allows), trains a small model on it (one
pinned thread, a step budget: the same model on any machine), then samples 1,000 names
from a fresh line at temperature 1 with ``--regex '[A-Z][a-z]{2,11}' --stop '\\n'``, and
1,000 without the regex for comparison. Prints how many match the expression (Python's
``re.fullmatch``, the stop string taken off), how many are 12 letters long (where the
regex forces the newline), and how many are names from the list. Run from the
repository root:

    python bench/regex_names.py          # about a minute, the training included
"""

from __future__ import annotations

import argparse
import os
import random
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from benchpaths import ROOT, machine

PATTERN = "[A-Z][a-z]{2,11}"
ONSETS = ["b", "br", "c", "ch", "d", "dr", "f", "g", "gr", "h", "j", "k", "l", "m", "n",
          "p", "r", "s", "sh", "st", "t", "th", "v", "w", "z", ""]
VOWELS = ["a", "e", "i", "o", "u", "ae", "ia", "ou", "y"]
CODAS = ["", "", "n", "r", "l", "s", "th", "nd", "x", "m"]


def names(count: int = 4000, seed: int = 7) -> list[str]:
    """Distinct invented names, 2 to 16 letters, capitalised."""
    rng, out = random.Random(seed), set()
    while len(out) < count:
        name = "".join(rng.choice(ONSETS) + rng.choice(VOWELS) + rng.choice(CODAS)
                       for _ in range(rng.choice([1, 2, 2, 3, 3, 4])))
        if 2 <= len(name) <= 16:
            out.add(name.capitalize())
    ordered = sorted(out)  # a set's order changes with the process's string hashing
    rng.shuffle(ordered)
    return ordered


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--samples", type=int, default=1000)
    ap.add_argument("--steps", type=int, default=800)
    args = ap.parse_args()
    print(f"# {machine()}")
    listed = names()
    long = sum(len(n) > 12 for n in listed)
    with tempfile.TemporaryDirectory() as tmp:
        corpus, run = Path(tmp) / "names.txt", Path(tmp) / "names"
        corpus.write_text("\n".join(listed) + "\n", encoding="utf-8")
        t0 = time.perf_counter()
        subprocess.run(["taskset", "-c", "0", sys.executable, "-m", "charrnn", "train",
                        str(corpus), "-o", str(run), "--layers", "1", "--hidden-size", "128",
                        "--max-steps", str(args.steps), "--eval-every", "100", "--preview", "0",
                        "--patience", "0",
                        "--device", "cpu", "--seed", "1"],
                       env={**os.environ, "OMP_NUM_THREADS": "1",  # the corpus cache too:
                            "CHARRNN_CACHE_DIR": tmp}, cwd=ROOT, check=True,
                       stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        print(f"# {len(listed):,} names ({long} longer than 12 letters); 1x128 LSTM, "
              f"{args.steps} steps ({time.perf_counter() - t0:.0f} s)")
        from charrnn.generate.decoding import Decoding, SampleConfig
        from charrnn.generate.sampler import END, Sampler

        sampler = Sampler.load(run)
        known = set(listed)
        for regex in (PATTERN, None):
            config = SampleConfig(length=40, seed=0, stop="\n", num_samples=args.samples,
                                  decoding=Decoding(regex=regex))
            t0 = time.perf_counter()
            texts = [""] * args.samples
            for i, ch in sampler.stream("\n", config):
                if ch != END:
                    texts[i] += ch
            seconds = time.perf_counter() - t0
            bare = [t.removesuffix("\n") for t in texts]
            match = sum(bool(re.fullmatch(PATTERN, t)) for t in bare)
            capped = sum(len(t) == 12 for t in bare)
            print(f"\n{'--regex ' + repr(regex) if regex else 'no regex'}, --stop '\\n', "
                  f"{args.samples} samples, {seconds:.1f} s")
            print(f"  match {PATTERN}: {match}/{args.samples} ({match / args.samples:.1%})")
            print(f"  12 letters long (the most the regex allows): {capped}; names from the "
                  f"list: {sum(t in known for t in bare)}")
            print(f"  e.g. {', '.join(bare[:8])}")
    print(f"\n# load average {os.getloadavg()[0]:.2f} at the end")


if __name__ == "__main__":
    main()
