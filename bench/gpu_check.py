"""The CUDA path in one call (under 5 minutes): train, compile, torchrun/NCCL, kernel speed.

    python bench/gpu_check.py                       # on a machine with a CUDA GPU
    python bench/gpu_check.py --device cpu --seconds 3 --short 3 --kernel-seconds 1
                                                    # dry run of everything but the GPU

Runs, each through the real CLI in a subprocess: a default run per cell (lstm, gru, rnn)
for --seconds (60) with bf16 autocast; an LSTM run with --compile and a one-process
torchrun run (NCCL on CUDA, gloo on CPU) for --short seconds (15) each; then times the
bare cuDNN kernel (forward, backward, AdamW step at the run's batch shape, as in
bench/train_budget.py) after each run. Prints a markdown table: held-out loss, steps,
loop chars/s (validation excluded), kernel chars/s and their ratio.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from benchpaths import ROOT, SHAKESPEARE


def _train(args: list[str], run: Path, torchrun: bool, timeout: float) -> tuple[int, float, str]:
    prefix = ([sys.executable, "-m", "torch.distributed.run", "--standalone",
               "--nproc_per_node", "1"] if torchrun else [sys.executable])
    cmd = [*prefix, "-m", "charrnn", "train", *args, "-o", str(run), "--force"]
    t0 = time.perf_counter()
    p = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout,
                       env={**os.environ, "PYTHONPATH": str(ROOT)}, cwd=ROOT)
    return p.returncode, time.perf_counter() - t0, p.stderr


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--file", default=str(SHAKESPEARE) if SHAKESPEARE.exists() else None,
                    help="corpus (default Tiny Shakespeare, else the built-in text)")
    ap.add_argument("--device", default="cuda")
    ap.add_argument("--seconds", type=float, default=60.0, help="budget per cell run")
    ap.add_argument("--short", type=float, default=15.0, help="compile / torchrun runs")
    ap.add_argument("--kernel-seconds", type=float, default=4.0)
    args = ap.parse_args()

    import torch
    from train_budget import raw_kernel_chars_per_s

    from charrnn.runs import checkpoint as ckpt

    if args.device.startswith("cuda"):
        if not torch.cuda.is_available():
            sys.exit(f"gpu_check: no CUDA GPU visible to torch {torch.__version__} "
                     f"(CUDA build: {torch.version.cuda or 'none'}); run it on a machine with "
                     "one, or pass --device cpu for a dry run of the rest")
        bf16 = torch.cuda.is_bf16_supported()
        print(f"{torch.cuda.get_device_name()}, torch {torch.__version__}, CUDA "
              f"{torch.version.cuda}, cuDNN {torch.backends.cudnn.version()}, "
              f"bf16 {'yes' if bf16 else 'no'}\n")
    else:
        bf16 = False
        print(f"dry run on {args.device}, torch {torch.__version__}\n")
    precision = "bf16" if bf16 else "fp32"
    corpus = [args.file] if args.file else []
    common = [*corpus, "--device", args.device, "--precision", precision]
    plan = [(f"{cell} default", cell, [*common, "--cell", cell], args.seconds, False)
            for cell in ("lstm", "gru", "rnn")]
    plan += [("lstm --compile", "lstm", [*common, "--compile"], args.short, False),
             ("lstm torchrun 1 proc", "lstm", common, args.short, True)]

    print("| run | precision | wall s | steps | val loss | loop chars/s | kernel chars/s "
          "| loop/kernel |")
    print("|---|---|---:|---:|---:|---:|---:|---:|")
    failed = 0
    with tempfile.TemporaryDirectory() as tmp:
        for name, _cell, train_args, budget, torchrun in plan:
            run = Path(tmp) / name.replace(" ", "_")
            code, wall, err = _train([*train_args, "--max-time", f"{budget:g}s"], run,
                                     torchrun, timeout=budget + 240)
            if code != 0:
                failed += 1
                last = err.strip().splitlines()[-1] if err.strip() else f"exit {code}"
                print(f"| {name} | {precision} | {wall:.0f} | FAILED: {last[:150]} |||||",
                      flush=True)
                continue
            meta = ckpt.inspect(run / "latest.safetensors").meta
            p = meta["progress"]
            loop = p["chars_seen"] / max(p["elapsed"] - p.get("eval_seconds", 0.0), 1e-9)
            kernel = raw_kernel_chars_per_s(run / "latest.safetensors", args.kernel_seconds)
            print(f"| {name} | {precision} | {wall:.0f} | {p['step']:,} "
                  f"| {p.get('best_val_loss') or float('nan'):.4f} | {loop:,.0f} "
                  f"| {kernel:,.0f} | {loop / kernel:.2f} |", flush=True)
    sys.exit(1 if failed else 0)


if __name__ == "__main__":
    main()
