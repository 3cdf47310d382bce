"""Loops, and what DRY does about them: the figure behind docs/sampling.md's DRY section.

A 2x256 LSTM is trained on Tiny Shakespeare with a step budget (3,500 steps, about 3
minutes of 2-core training on an idle machine; one pinned thread, so the load changes
only the wall time, not the model), unless the run folder already holds it. Then:

- 100 samples of 2,000 characters at temperature 0.5 (seeds 0..99, from a fresh line),
  without and with DRY at its recommended settings (--dry-multiplier 0.8, the defaults
  for the rest: base 1.75, allowed length 20, breaker \\n);
- the same at temperature 0 (greedy), from 100 primes (lines of the held-out text), where
  a char-RNN loops.

For each: the share of samples whose last 1,000 characters contain a repeat of 100 or
more characters (a 100-character string that occurs twice in them), and the loss of the
generated text under the model (nats/char, its own log-probabilities: how much less
likely DRY's text is to the model). Run from the repository root:

    python bench/dry_loops.py            # a few minutes (the training: 3-6 more)
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import time

from benchpaths import ROOT, SHAKESPEARE, machine

RUN = ROOT / "checkpoints" / "bench-dry-2x256"
TRAIN = ["--layers", "2", "--hidden-size", "256", "--max-steps", "3500", "--eval-every", "500",
         "--device", "cpu",
         "--seed", "1337", "--preview", "0", "--patience", "0"]
RECOMMENDED = {"dry_multiplier": 0.8}


def train(run) -> None:
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    cmd = ["taskset", "-c", "0", sys.executable, "-m", "charrnn", "train", str(SHAKESPEARE),
           "-o", str(run), *TRAIN]
    print(f"# training: {' '.join(cmd[3:])}", flush=True)
    subprocess.run(cmd, env=env, cwd=ROOT, check=True, stdout=subprocess.DEVNULL)


def looped(text: str, n: int = 100, tail: int = 1000) -> bool:
    """Whether the last ``tail`` characters hold some ``n``-character string twice."""
    t, seen = text[-tail:], set()
    for i in range(len(t) - n + 1):
        if t[i:i + n] in seen:
            return True
        seen.add(t[i:i + n])
    return False


def measure(sampler, primes, decoding, length: int) -> tuple[float, float, float]:
    """(share looped, loss of the generated text in nats/char, seconds)."""
    from charrnn.generate.decoding import SampleConfig
    from charrnn.generate.sampler import END

    t0 = time.perf_counter()
    k = 1 if len(primes) > 1 else 100
    texts, nats = [[] for _ in range(k * len(primes))], 0.0
    config = SampleConfig(length=length, seed=0, num_samples=k, decoding=decoding)
    for i, ch, scored in sampler.stream_scored(primes, config, top=0):
        if ch != END:
            texts[i].append(ch)
            nats -= scored[0]
    joined = ["".join(t) for t in texts]
    share = sum(map(looped, joined)) / len(joined)
    return share, nats / sum(map(len, joined)), time.perf_counter() - t0


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--run", default=str(RUN), help="run folder (trained if missing)")
    ap.add_argument("--length", type=int, default=2000)
    args = ap.parse_args()
    print(f"# {machine()}")
    from pathlib import Path

    if not (Path(args.run) / "best.safetensors").exists():
        train(args.run)
    from charrnn.data.text import read_text
    from charrnn.generate.decoding import Decoding
    from charrnn.generate.sampler import Sampler

    sampler = Sampler.load(args.run)
    print(f"# model: {args.run} ({sampler.checkpoint.meta['progress']['step']} steps, best "
          f"val loss {sampler.checkpoint.meta['progress'].get('best_val_loss', float('nan')):.4f})")
    text = read_text(SHAKESPEARE)
    lines = [ln for ln in text[int(len(text) * 0.9):].splitlines() if len(ln) > 20]
    primes = [lines[i * len(lines) // 100] for i in range(100)]
    print(f"\n{'setting':34s} {'looped':>7s} {'loss':>8s} {'time':>7s}")
    for temperature, which in ((0.5, [""]), (0.0, primes)):
        rows = {}
        for label, extra in (("plain", {}), ("DRY (recommended)", RECOMMENDED)):
            share, loss, dt = measure(sampler, which, Decoding(temperature=temperature,
                                                               **extra), args.length)
            rows[label] = loss
            name = f"T={temperature:g}, {'100 seeds' if len(which) == 1 else '100 primes'}, {label}"
            print(f"{name:34s} {share:7.0%} {loss:8.4f} {dt:6.1f}s", flush=True)
        print(f"{'':34s} loss with DRY - without: {rows['DRY (recommended)'] - rows['plain']:+.4f}"
              " nats/char")
    print(f"\n# load average {os.getloadavg()[0]:.2f} at the end")


if __name__ == "__main__":
    main()
