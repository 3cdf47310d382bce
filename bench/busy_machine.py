"""Training on a busy machine: speed beside other work, and whether a time budget is kept.

Runs the real `charrnn train` in subprocesses, as a user would: a 2x256 LSTM, 80 steps on
400k characters of Tiny Shakespeare (`--max-steps 80 --preview 0`, one validation at the
end), in three situations:

- idle: the run alone;
- one busy core: beside a process spinning on a core (`python3 -c 'while 1: pass'`);
- two at once: two runs started together (each run's speed is shown).

each with the old behaviour (torch's default: one OpenMP thread per core, spinning while it
waits; reproduced with OMP_NUM_THREADS=<cores>, which charrnn leaves alone as the user's
choice) and the new one (charrnn chooses from the cores idle when it starts and re-checks
while it trains), plus one thread on the idle machine (OMP_NUM_THREADS=1) as the
yardstick. The figure is training chars/s between step 20 and step 80 (metrics.jsonl), so
start-up and the validation are left out; "wall" is the whole command.

Then the deadline: `--max-time 60s` (`--deadline`) on a corpus whose validation alone would
take longer than the budget, beside a busy core, timed from spawn to exit.

    python bench/busy_machine.py                 # the table, 3 rounds (medians), ~6 min
    python bench/busy_machine.py --rounds 1      # quicker, rougher
    python bench/busy_machine.py --deadline 60   # also the deadline check (60 s budget)
    python bench/busy_machine.py --policies      # also passive OpenMP waits, the mechanism
                                                 # not chosen
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from benchpaths import ROOT, SHAKESPEARE, machine

STEPS = 80
SPIN = "while 1: pass"
TRAIN = ["--max-steps", str(STEPS), "--preview", "0", "--layers", "2", "--hidden-size", "256",
         "--eval-every", "1000", "--val-max-chars", "20000", "--log-every", "20", "--force"]


def start(corpus: Path, out: Path, env: dict[str, str], extra: list[str]) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, "-m", "charrnn", "train", str(corpus), "-o", str(out), *extra],
        cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)


def speed(run: Path) -> float:
    """Training chars/s from the step-20 line to the last train line of metrics.jsonl."""
    lines = [json.loads(x) for x in (run / "metrics.jsonl").read_text().splitlines()]
    train = [r for r in lines if r["kind"] == "train"]
    a, b = train[0], train[-1]
    return (b["chars"] - a["chars"]) / (b["time"] - a["time"])


def trainings(corpus: Path, tmp: Path, env: dict[str, str], count: int,
              busy: bool) -> tuple[list[float], float, str]:
    """Speeds of ``count`` runs started together (beside a spinner if ``busy``), the
    wall seconds of the slowest, and the threads line of the first."""
    spinner = subprocess.Popen([sys.executable, "-c", SPIN]) if busy else None
    try:
        if spinner:
            time.sleep(0.5)
        t0 = time.perf_counter()
        procs = [start(corpus, tmp / f"run{i}", env, TRAIN) for i in range(count)]
        errs = [p.communicate()[1] for p in procs]
        wall = time.perf_counter() - t0
    finally:
        if spinner:
            spinner.kill()
            spinner.wait()
    for p, e in zip(procs, errs, strict=True):
        if p.returncode:
            raise SystemExit(f"training failed:\n{e}")
    line = next((x for x in errs[0].splitlines() if x.startswith("device ")), "")
    return [speed(tmp / f"run{i}") for i in range(count)], wall, line


def deadline(corpus_dir: Path, tmp: Path, budget: int) -> None:
    """--max-time on a big held-out text beside a busy core: seconds from spawn to exit."""
    text = SHAKESPEARE.read_text(encoding="utf-8")
    big = corpus_dir / "big.txt"
    big.write_text(text * 30, encoding="utf-8")  # 33 MB: 3.3 MB held out
    env = {k: v for k, v in os.environ.items() if k != "OMP_NUM_THREADS"}
    spinner = subprocess.Popen([sys.executable, "-c", SPIN])
    try:
        t0 = time.perf_counter()
        p = start(big, tmp / "deadline", env, ["--max-time", f"{budget}s", "--preview", "0",
                                                "--val-max-chars", "0", "--force"])
        err = p.communicate()[1]
        wall = time.perf_counter() - t0
    finally:
        spinner.kill()
        spinner.wait()
    notes = [x for x in err.splitlines() if "valid" in x or "threads" in x or "probe" in x]
    print(f"\n## deadline: --max-time {budget}s, --val-max-chars 0 (all 3.3M held-out "
          f"characters), one busy core\nexit {p.returncode} after {wall:.1f} s from spawn "
          f"(target: at most {budget + max(5, 0.05 * budget):.0f} s)")
    for x in notes[:6]:
        print(f"  | {x}")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--deadline", type=int, default=0, help="also check a --max-time budget")
    ap.add_argument("--policies", action="store_true",
                    help="also the other mechanism tried: OpenMP threads that sleep at once "
                         "while they wait (OMP_WAIT_POLICY=PASSIVE), one per core")
    args = ap.parse_args()
    cores = len(os.sched_getaffinity(0))
    base = {k: v for k, v in os.environ.items()
            if k not in ("OMP_NUM_THREADS", "OMP_WAIT_POLICY", "MKL_NUM_THREADS")}
    settings = {"old (torch default)": {**base, "OMP_NUM_THREADS": str(cores)},
                "new (charrnn chooses)": base,
                "one thread": {**base, "OMP_NUM_THREADS": "1"}}
    if args.policies:
        settings["passive waits"] = {**base, "OMP_NUM_THREADS": str(cores),
                                     "OMP_WAIT_POLICY": "PASSIVE"}
    rows = [("idle", 1, False), ("one busy core", 1, True), ("two at once", 2, False)]
    print(f"# {machine()}; 2x256 LSTM, {STEPS} steps of 32x32, chars/s from step 20, "
          f"medians of {args.rounds}")
    with tempfile.TemporaryDirectory() as d:
        tmp = Path(d)
        corpus = tmp / "shakespeare-400k.txt"
        corpus.write_text(SHAKESPEARE.read_text(encoding="utf-8")[:400_000], encoding="utf-8")
        start(corpus, tmp / "warm", base, ["--max-steps", "1", "--preview", "0"]).wait()
        results: dict[tuple[str, str], list[list[float]]] = {}
        lines: dict[tuple[str, str], str] = {}
        walls: dict[tuple[str, str], list[float]] = {}
        for _ in range(args.rounds):
            for row, count, busy in rows:
                for name, env in settings.items():
                    if name == "one thread" and (busy or count > 1):
                        continue
                    speeds, wall, line = trainings(corpus, tmp, env, count, busy)
                    results.setdefault((row, name), []).append(speeds)
                    walls.setdefault((row, name), []).append(wall)
                    lines[(row, name)] = line
        yard = statistics.median(s[0] for s in results[("idle", "one thread")])
        print("\n| situation | behaviour | chars/s (each run) | of one idle thread | wall s |"
              "\n|---|---|---|---|---|")
        for (row, name), runs in results.items():
            each = [statistics.median(r[i] for r in runs) for i in range(len(runs[0]))]
            shown = " + ".join(f"{x:,.0f}" for x in each)
            ratio = " / ".join(f"{x / yard:.2f}" for x in each)
            print(f"| {row} | {name} | {shown} | {ratio} | "
                  f"{statistics.median(walls[(row, name)]):.1f} |")
        print("\nthreads chosen (the progress line of the new behaviour):")
        for (row, name), line in lines.items():
            if name.startswith("new"):
                print(f"  {row}: {line}")
        if args.deadline:
            deadline(tmp, tmp, args.deadline)
    print(f"\n# load average {os.getloadavg()[0]:.2f} at the end")


if __name__ == "__main__":
    main()
