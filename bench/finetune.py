"""Fine-tuning vs training from scratch: held-out loss on a second corpus at equal cost.

    python bench/finetune.py                   # ~11 minutes
    python bench/finetune.py --source-time 5m --minutes 1,2,5 --lrs 1e-3,2e-3,4e-3

1. A source model (2x256 LSTM, the size short budgets get) is trained on corpus A, the
   English text of Python's help topics (built in, ~460k characters).
2. On corpus B, Tiny Shakespeare (English too, different register, characters A lacks),
   the same architecture is trained from scratch, and fine-tuned from the source with
   ``--init-from`` at each peak learning rate, for each time budget (``--max-time``, as
   a user would run it).
3. Each run's loss on B's held-out 10% (the same fixed 30,000-character sample for all)
   is printed with the steps it took.

On a shared machine the runs get different shares of the CPU; the steps column shows it.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

from benchpaths import SHAKESPEARE

ARCH = ["--layers", "2", "--hidden-size", "256"]
COMMON = ["--val-max-chars", "30000", "--patience", "0", "--seed", "1"]


def charrnn(*args: str, env: dict) -> str:
    r = subprocess.run([sys.executable, "-m", "charrnn", *args], capture_output=True,
                       text=True, env=env)
    if r.returncode:
        sys.exit(f"charrnn {' '.join(args)} failed:\n{r.stderr[-2000:]}")
    return r.stdout


def held_out(run: Path, env: dict) -> float:
    out = charrnn("eval", "-c", str(run / "latest.safetensors"), "--json", env=env)
    return json.loads(out)["loss"]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--corpus-b", type=Path, default=SHAKESPEARE)
    ap.add_argument("--source-time", default="90s")
    ap.add_argument("--minutes", default="1,2", help="time budgets on corpus B")
    ap.add_argument("--steps", default="", help="step budgets on corpus B instead (the "
                    "same work for every run however busy the machine is)")
    ap.add_argument("--source", type=Path, help="reuse this source run folder")
    ap.add_argument("--no-scratch", action="store_true",
                    help="only fine-tune (the scratch runs do not depend on the source)")
    ap.add_argument("--lrs", default="1e-3,3e-3", help="fine-tuning peak lrs")
    ap.add_argument("--warmups", default="20", help="fine-tuning warm-up steps")
    ap.add_argument("--threads", type=int, default=1)
    args = ap.parse_args()
    if not args.corpus_b.is_file():
        sys.exit(f"{args.corpus_b} not found: give --corpus-b (an English text)")
    work = Path(tempfile.mkdtemp(prefix="charrnn-finetune-"))
    env = {**os.environ, "CHARRNN_CACHE_DIR": str(work / "cache"),
           "OMP_NUM_THREADS": str(args.threads)}
    print(f"# {os.cpu_count()} CPUs, {args.threads} thread(s); work in {work}")
    src = args.source or work / "source"
    if args.source is None:
        charrnn("train", "-o", str(src), *ARCH, *COMMON, "--max-time", args.source_time,
                env=env)
    print(f"source: {steps_of(src)} steps on the built-in corpus; "
          f"its loss on B's held-out tail: ", end="", flush=True)
    print(f"{charrnn_eval_on_b(src, args.corpus_b, work, env):.4f} nats/char "
          "(characters it never saw are skipped)")
    print(f"{'run':<34} {'budget':>6} {'steps':>6} {'held-out B (nats/char)':>23}")
    budgets = ([("--max-steps", s, s) for s in args.steps.split(",")] if args.steps else
               [("--max-time", f"{m}m", f"{m}m") for m in args.minutes.split(",")])
    for opt, value, budget in budgets:
        limit = [opt, value] + (["--eval-every", value] if opt == "--max-steps" else [])
        run = work / f"scratch-{value}"
        if not args.no_scratch:
            charrnn("train", str(args.corpus_b), "-o", str(run), *ARCH, *COMMON, *limit,
                    env=env)
            print(f"{'scratch (the training defaults)':<34} {budget:>6} {steps_of(run):>6} "
                  f"{held_out(run, env):>23.4f}", flush=True)
        for warmup in args.warmups.split(","):
            for lr in args.lrs.split(","):
                run = work / f"ft-{value}-{lr}-{warmup}"
                charrnn("train", str(args.corpus_b), "-o", str(run), "--init-from", str(src),
                        *COMMON, "--lr", lr, "--warmup", warmup, *limit, env=env)
                label = f"fine-tune (lr {lr}, warm-up {warmup})"
                print(f"{label:<34} {budget:>6} {steps_of(run):>6} "
                      f"{held_out(run, env):>23.4f}", flush=True)


def steps_of(run: Path) -> int:
    from charrnn.runs import checkpoint as ckpt

    return ckpt.inspect(run / "latest.safetensors").meta["progress"]["step"]


def charrnn_eval_on_b(src: Path, corpus_b: Path, work: Path, env: dict) -> float:
    """The source's loss on B's held-out tail, before any fine-tuning."""
    text = corpus_b.read_text(encoding="utf-8")
    tail = work / "b-tail.txt"
    tail.write_text(text[len(text) - len(text) // 10:], encoding="utf-8")
    out = charrnn("eval", str(tail), "-c", str(src / "latest.safetensors"), "--json",
                     env=env)
    return json.loads(out)["loss"]


if __name__ == "__main__":
    main()
