"""Training speed by shape on this machine: chars/s of one training step (forward,
backward, AdamW) for model sizes, windows and batches, with 1 and all threads.

    python bench/kernel_speed.py                       # ~2 minutes
    python bench/kernel_speed.py --sizes 256,384 --threads 1 --seconds 2

The figures behind the machine-following defaults (``charrnn.train.probe``): multiplied by a
budget they give the characters a run will see. Median step of each shape; run on an
idle machine (the load average is printed first).
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sizes", default="256,384,512", help="hidden units (2 layers)")
    ap.add_argument("--windows", default="32,64,128")
    ap.add_argument("--batches", default="32,64")
    ap.add_argument("--threads", default=f"1,{os.cpu_count()}")
    ap.add_argument("--precision", default="fp32", choices=["fp32", "bf16"])
    ap.add_argument("--seconds", type=float, default=1.0, help="timed per shape")
    ap.add_argument("--vocab", type=int, default=65, help="65: Tiny Shakespeare's")
    args = ap.parse_args()

    import torch

    from charrnn.config import ModelConfig
    from charrnn.train.probe import kernel_rate

    dtype = torch.bfloat16 if args.precision == "bf16" else None
    print(f"# {os.cpu_count()} CPUs, load average {os.getloadavg()[0]:.1f}, "
          f"torch {torch.__version__}, {args.precision}")
    print("| threads | model | T | B | chars/s |")
    print("|---|---|---|---|---|")
    for threads in map(int, args.threads.split(",")):
        torch.set_num_threads(threads)
        for h in map(int, args.sizes.split(",")):
            mc = ModelConfig(vocab_size=args.vocab, hidden_size=h, num_layers=2)
            for t in map(int, args.windows.split(",")):
                for b in map(int, args.batches.split(",")):
                    rate = kernel_rate(mc, b, t, torch.device("cpu"), dtype, args.seconds)
                    print(f"| {threads} | 2x{h} | {t} | {b} | {rate:,.0f} |", flush=True)


if __name__ == "__main__":
    main()
