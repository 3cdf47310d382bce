"""Train with the default settings for a time budget, evaluate, and compare the loop's
throughput with the raw fused kernel at the same shape, measured in the same run.

    python bench/train_budget.py                      # 10 minutes on Tiny Shakespeare
    python bench/train_budget.py --budget 1m -- --hidden-size 256
    python bench/train_budget.py --budget 30s --threads 1   # thread-count experiment

Prints one Markdown table row: budget, validation loss (nats/char) of the best
checkpoint on the held-out 10%, bits/char, training-loop chars/s (validation excluded,
and end to end), raw-kernel chars/s (the mean of the median steps just before and after training),
their ratio, and peak resident memory.
"""

from __future__ import annotations

import argparse
import resource
import sys
import tempfile
import time
from pathlib import Path

from benchpaths import SHAKESPEARE


def raw_kernel_chars_per_s(checkpoint: Path, seconds: float) -> float:
    """Forward + backward + AdamW step of the bare model, batch shape as trained
    (charrnn.train.probe.kernel_rate: the median step)."""
    from charrnn.config import TrainConfig
    from charrnn.model.device import pick_device, pick_dtype
    from charrnn.runs import checkpoint as ckpt
    from charrnn.train.probe import kernel_rate

    c = ckpt.inspect(checkpoint)
    tc = TrainConfig.from_dict(c.meta["train"])
    device = pick_device(tc.device)
    return kernel_rate(c.config, tc.batch_size, tc.seq_len, device,
                       pick_dtype(tc.precision, device, c.config.cell), seconds)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--file", default=str(SHAKESPEARE))
    ap.add_argument("--budget", default="10m")
    ap.add_argument("--kernel-seconds", type=float, default=20.0)
    ap.add_argument("--threads", type=int, default=0,
                    help="torch intra-op threads for training and kernel; 0: torch's default")
    ap.add_argument("train_args", nargs="*", help="extra `charrnn train` options, after --")
    args = ap.parse_args()
    if args.threads:
        import torch

        torch.set_num_threads(args.threads)

    from charrnn.cli import main as cli_main
    from charrnn.score.evaluate import eval_command

    with tempfile.TemporaryDirectory() as tmp:
        run = Path(tmp) / "run"
        before_probe = Path(tmp) / "probe"
        # a throwaway 1-step run gives the kernel benchmark its shape before training
        cli_main(["train", args.file, "-o", str(before_probe), "--max-steps", "1",
                  "--patience", "0", *args.train_args])
        before = raw_kernel_chars_per_s(before_probe / "latest.safetensors",
                                        args.kernel_seconds / 2)
        t0 = time.perf_counter()
        code = cli_main(["train", args.file, "--max-time", args.budget, "-o", str(run),
                         *args.train_args])
        wall = time.perf_counter() - t0
        if code != 0:
            sys.exit(code)
        after = raw_kernel_chars_per_s(run / "latest.safetensors", args.kernel_seconds / 2)
        report = eval_command(None, str(run / "best.safetensors"), "auto")

        from charrnn.runs import checkpoint as ckpt

        meta = ckpt.inspect(run / "latest.safetensors").meta
        p = meta["progress"]
        metrics = (run / "metrics.jsonl").read_text().splitlines()
        eval_s = sum(1 for line in metrics if '"kind": "val"' in line)
    kernel = (before + after) / 2
    loop_end_to_end = p["chars_seen"] / p["elapsed"]
    loop = p["chars_seen"] / max(p["elapsed"] - p["eval_seconds"], 1e-9)
    peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    mc = meta["model"]
    print("| budget | model | wall s | val loss | bits/char | loop chars/s (excl. val) "
          "| loop chars/s (all) | kernel chars/s | ratio | evals | peak RSS MB |")
    print("|---|---|---|---|---|---|---|---|---|---|---|")
    print(f"| {args.budget} | {mc['num_layers']}x{mc['hidden_size']} {mc['cell']} "
          f"| {wall:.0f} | {report['loss']:.4f} | {report['bits_per_char']:.4f} "
          f"| {loop:,.0f} | {loop_end_to_end:,.0f} | {kernel:,.0f} | {loop / kernel:.2f} "
          f"| {eval_s} | {peak_mb:,.0f} |")


if __name__ == "__main__":
    main()
