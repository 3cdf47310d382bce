"""The worked example of docs/inspect.md: rnn, gru and lstm trained alike on Tiny
Shakespeare, then compared (``charrnn report``) and looked into (``charrnn gradients``).

    python bench/cells_example.py                  # 3 idle minutes per cell, ~15 min here
    python bench/cells_example.py --minutes 0.5 --out /tmp/quick

1. Speed: one training step of each cell (2x256, batch 32 x 32, fp32, one thread pinned
   to one core), timed turn about; the step's CPU time is what an idle core would take,
   whatever else runs on the machine, so the step budget for ``--minutes`` idle minutes
   is ``minutes * 60 / CPU seconds per step``.
2. Training: each cell for its step budget, one thread pinned per run (``taskset``), so
   the machine's load changes only the wall time, never the result.
3. ``charrnn report`` of the three runs and ``charrnn gradients`` on their held-out
   text, both printed; the pages, and their screenshots when Chromium is installed, are
   left in ``--out``.
"""

from __future__ import annotations

import argparse
import os
import platform
import shutil
import statistics
import subprocess
import sys
import time

from benchpaths import ROOT, SHAKESPEARE

CELLS = ("rnn", "gru", "lstm")


def step_cpu_seconds(cell: str, hidden: int, layers: int, steps: int) -> tuple[float, float]:
    """Median CPU and wall seconds of one training step (run in a pinned subprocess)."""
    import torch
    import torch.nn.functional as F

    from charrnn.config import ModelConfig
    from charrnn.model.network import CharRNN, detach_state

    torch.manual_seed(0)
    model = CharRNN(ModelConfig(vocab_size=65, cell=cell, num_layers=layers,
                                hidden_size=hidden, dropout=0.1)).train()
    opt = torch.optim.AdamW(model.parameters(), lr=1e-3)
    x, y = torch.randint(0, 65, (32, 32)), torch.randint(0, 65, (32, 32))
    state, cpu, wall = None, [], []
    for i in range(steps + 3):
        c0, w0 = time.process_time(), time.perf_counter()
        logits, state = model(x, state)
        loss = F.cross_entropy(logits.flatten(0, 1), y.flatten())
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        state = detach_state(state)
        if i >= 3:  # warm-up steps not timed
            cpu.append(time.process_time() - c0)
            wall.append(time.perf_counter() - w0)
    return statistics.median(cpu), statistics.median(wall)


def trained(out: str, cell: str, steps: int) -> bool:
    """Whether ``out/cell`` holds a run that trained ``steps`` steps."""
    from charrnn.runs import checkpoint as ckpt

    latest = os.path.join(out, cell, "latest.safetensors")
    return (os.path.isfile(latest)
            and ckpt.inspect(latest).meta["progress"]["step"] == steps)


def pinned(core: int) -> list[str]:
    return ["taskset", "-c", str(core)] if shutil.which("taskset") else []


ONE_THREAD = {**os.environ, "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}


def charrnn(*args: str, core: int = 0) -> list[str]:
    return [*pinned(core), sys.executable, "-m", "charrnn", *args]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--minutes", type=float, default=3.0, help="idle minutes per cell")
    ap.add_argument("--out", default="/tmp/cells-example")
    ap.add_argument("--hidden", type=int, default=256)
    ap.add_argument("--layers", type=int, default=2)
    ap.add_argument("--dropout", type=float, default=0.1)
    ap.add_argument("--rounds", type=int, default=3, help="speed rounds, turn about")
    ap.add_argument("--steps", type=int, default=20, help="timed steps per round")
    ap.add_argument("--jobs", type=int, default=min(2, os.cpu_count() or 1),
                    help="runs trained at once, one core each")
    ap.add_argument("--corpus", default=str(SHAKESPEARE))
    ap.add_argument("--budgets", help="steps per cell, e.g. rnn=8560,gru=2883,lstm=3048: "
                    "skip the speed measurement")
    ap.add_argument("--reuse", action="store_true",
                    help="keep a run of --out that already trained its budget")
    ap.add_argument("--measure", help=argparse.SUPPRESS)  # internal: one speed probe
    args = ap.parse_args()
    if args.measure:
        cpu, wall = step_cpu_seconds(args.measure, args.hidden, args.layers, args.steps)
        print(f"{cpu} {wall}")
        return

    args.out = os.path.abspath(args.out)
    os.makedirs(args.out, exist_ok=True)
    with open("/proc/cpuinfo") as f:
        model_name = next((ln.split(":", 1)[1].strip() for ln in f
                           if ln.startswith("model name")), platform.processor())
    print(f"# {model_name}, {os.cpu_count()} CPUs, load average "
          f"{os.getloadavg()[0]:.1f} at start; {time.strftime('%Y-%m-%d %H:%M')}")
    print(f"# {args.layers}x{args.hidden}, dropout {args.dropout}, batch 32 x 32, fp32, "
          f"one thread per run; {args.minutes:g} idle minutes per cell")

    # ---- 1. speed, turn about
    cpu: dict[str, list[float]] = {c: [] for c in CELLS}
    wall: dict[str, list[float]] = {c: [] for c in CELLS}
    budget = {c: int(n) for c, n in (b.split("=") for b in args.budgets.split(","))} \
        if args.budgets else {}
    for r in range(0 if budget else args.rounds):
        for cell in CELLS[r % 3:] + CELLS[:r % 3]:
            out = subprocess.run(
                [*pinned(0), sys.executable, __file__, "--measure", cell, "--hidden",
                 str(args.hidden), "--layers", str(args.layers), "--steps", str(args.steps)],
                env=ONE_THREAD, capture_output=True, text=True, check=True).stdout.split()
            cpu[cell].append(float(out[0]))
            wall[cell].append(float(out[1]))
    if not budget:
        print("cell   CPU ms/step  wall ms/step  idle chars/s  steps in the budget")
    for cell in CELLS if not budget else ():
        c, w = statistics.median(cpu[cell]), statistics.median(wall[cell])
        budget[cell] = max(1, round(args.minutes * 60 / c))
        print(f"{cell:<5} {c * 1e3:12.1f} {w * 1e3:13.1f} {1024 / c:13,.0f} {budget[cell]:20,}")

    # ---- 2. training, one pinned thread per run
    t0 = time.perf_counter()
    queue = [c for c in CELLS if not (args.reuse and trained(args.out, c, budget[c]))]
    running: list[tuple[str, int, subprocess.Popen]] = []
    while queue or running:
        while queue and len(running) < args.jobs:
            cell = queue.pop(0)
            core = next(i for i in range(args.jobs) if i not in [c for _, c, _ in running])
            steps = budget[cell]
            with open(os.path.join(args.out, f"{cell}.log"), "w") as log:
                running.append((cell, core, subprocess.Popen(
                    charrnn("train", args.corpus, "-o", os.path.join(args.out, cell),
                            "--force", "--cell", cell, "--layers", str(args.layers),
                            "--hidden-size", str(args.hidden), "--dropout", str(args.dropout),
                            "--max-steps", str(steps), "--eval-every",
                            str(max(1, steps // 20)), "--patience", "0", "--precision",
                            "fp32", core=core),
                    env=ONE_THREAD, stdout=log, stderr=log)))
        time.sleep(2)
        for item in list(running):
            if item[2].poll() is not None:
                running.remove(item)
                if item[2].returncode:
                    sys.exit(f"training {item[0]} failed: see {args.out}/{item[0]}.log")
    print(f"# trained in {time.perf_counter() - t0:.0f} s wall; load average "
          f"{os.getloadavg()[0]:.1f} at the end")

    # ---- 3. compare and look inside
    runs = [os.path.join(args.out, c) for c in CELLS]
    for cmd in (["report", *runs, "-o", os.path.join(args.out, "compare.html")],
                ["gradients", *[a for r in runs for a in ("-c", r)], "--html",
                 os.path.join(args.out, "flow.html")]):
        print(f"$ charrnn {' '.join(cmd)}", flush=True)
        subprocess.run(charrnn(*cmd), env=ONE_THREAD, check=True)
    chromium = next((p for p in map(shutil.which, ("chromium", "chromium-browser",
                                                   "google-chrome")) if p), None)
    if chromium:
        for name, height in (("compare", 2200), ("flow", 1300)):
            subprocess.run([chromium, "--headless", "--no-sandbox", "--disable-gpu",
                            "--hide-scrollbars", f"--window-size=1100,{height}",
                            f"--user-data-dir={args.out}/.chromium",
                            f"--screenshot={args.out}/{name}.png",
                            f"file://{args.out}/{name}.html"],
                           capture_output=True, check=False, timeout=120)
    print(f"# pages and screenshots in {args.out}/ ({ROOT.name} checkout)")


if __name__ == "__main__":
    main()
