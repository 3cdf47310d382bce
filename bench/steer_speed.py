"""What the steering controls cost: streaming chars/s with min-p, DRY or a regex against
plain sampling, and a 64-sample batch with a regex against one without.

Runs the real command in subprocesses (one BLAS thread unless OPENBLAS_NUM_THREADS says
otherwise), as bench/sample_speed.py does (characters per
second from the first byte of output to the last: start-up, and building the regex's
automaton, excluded), turn about: plain, min-p, DRY, regex, plain, ... so load on a
shared machine hits every variant alike; ratios are of medians. The model is the 2x256
Tiny Shakespeare run of bench/dry_loops.py if it is there (trained text makes DRY find
real repeats), else an untrained 2x384 LSTM. Run from the repository root:

    python bench/steer_speed.py            # a few minutes; --repeats 3 for a rough look
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
from pathlib import Path

from benchpaths import ROOT, machine
from sample_speed import make_checkpoint, sample_cmd, timed_run

REGEX = "[^0-9$&]+"  # a constraint that still lets 2,000 characters of verse through
BATCH1 = {"plain": [], "min-p 0.05": ["--min-p", "0.05"],
          "DRY 0.8": ["--dry-multiplier", "0.8"], f"regex {REGEX}": ["--regex", REGEX]}
BATCH64 = {"plain": [], f"regex {REGEX}": ["--regex", REGEX]}


def rates(path: Path, variants: dict[str, list[str]], k: int, n: int, repeats: int
          ) -> dict[str, list[float]]:
    """Total chars/s of each variant, run turn about ``repeats`` times (after a warm-up)."""
    out: dict[str, list[float]] = {v: [] for v in variants}
    cmd = {v: sample_cmd(path, "-n", str(n), "--num-samples", str(k), "--temp", "0.8", *extra)
           for v, extra in variants.items()}
    for v in variants:
        timed_run(cmd[v])
    for _ in range(repeats):
        for v in variants:
            first, end, _ = timed_run(cmd[v])
            out[v].append((k * n - 1) / (end - first))
    return out


def report(title: str, got: dict[str, list[float]], target: float) -> None:
    med = {v: statistics.median(r) for v, r in got.items()}
    print(f"\n## {title}: chars/s, medians of {len(got['plain'])} interleaved runs")
    for v, m in med.items():
        ratio = m / med["plain"]
        verdict = "" if v == "plain" else f"   {ratio:6.1%} of plain (target {target:.0%}: " \
                                          f"{'met' if ratio >= target else 'NOT met'})"
        print(f"{v:24s} {m:9.0f}  (min {min(got[v]):7.0f}, max {max(got[v]):7.0f}){verdict}")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeats", type=int, default=7)
    ap.add_argument("--length", type=int, default=2000, help="characters at batch 1")
    ap.add_argument("--batch-length", type=int, default=200, help="characters per sample")
    ap.add_argument("--run", default=str(ROOT / "checkpoints" / "bench-dry-2x256"))
    args = ap.parse_args()
    # One BLAS thread unless told otherwise: charrnn sample takes a second one only while a
    # core is idle, a choice made afresh by every run, which on a shared machine would
    # give the variants different thread counts; the ratios are what this bench is for.
    os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")
    print(f"# {machine()}")
    print(f"# BLAS threads {os.environ['OPENBLAS_NUM_THREADS']} (OPENBLAS_NUM_THREADS)")
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(args.run)
        if not (path / "best.safetensors").exists():
            path = make_checkpoint(Path(tmp), 384)
        print(f"# model: {path}")
        report(f"batch 1, {args.length} characters",
               rates(path, BATCH1, 1, args.length, args.repeats), 0.7)
        report(f"--num-samples 64, {args.batch_length} characters each",
               rates(path, BATCH64, 64, args.batch_length, args.repeats), 0.5)
    print(f"\n# load average {os.getloadavg()[0]:.2f} at the end")


if __name__ == "__main__":
    sys.exit(main())
