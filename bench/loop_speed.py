"""The training loop's speed against the raw kernel's, measured turn about in one process.

    python bench/loop_speed.py                  # 2x256, 2x384, 2x512; ~3 minutes
    python bench/loop_speed.py --sizes 256 --steps 150 --rounds 2

On a VM whose speed drifts from minute to minute, a loop timed for ten minutes and a
kernel timed before and after it can differ by 10% either way for no reason of their
own. Here each round times the kernel (``charrnn.train.probe.kernel_rate``: forward, backward
and AdamW on a fixed batch) and then a short step budget of the real ``Trainer`` (no
validation inside it), both by their median step, so the ratio is the loop's own
overhead: batching, clipping, the loss read-out, the weight average, callbacks.
Prints one Markdown row per round.
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path

from benchpaths import SHAKESPEARE


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--file", default=str(SHAKESPEARE))
    ap.add_argument("--sizes", default="256,384,512", help="hidden units (2 layers)")
    ap.add_argument("--steps", type=int, default=150, help="loop steps per round")
    ap.add_argument("--rounds", type=int, default=2, help="per size and weight-average setting")
    ap.add_argument("--kernel-seconds", type=float, default=3.0)
    args = ap.parse_args()

    import torch

    from charrnn.config import ModelConfig, TrainConfig
    from charrnn.data.corpus import Corpus
    from charrnn.train.loop import Callbacks, Trainer
    from charrnn.train.probe import kernel_rate

    class StepTimes(Callbacks):
        def __init__(self) -> None:
            self.times: list[float] = []
            self.last: float | None = None

        def on_step(self, p) -> None:
            now = time.perf_counter()
            if self.last is not None:
                self.times.append(now - self.last)
            self.last = now

    corpus = Corpus.load(args.file, TrainConfig.val_fraction)
    chars = TrainConfig.batch_size * TrainConfig.seq_len
    print("| model | weight average | kernel chars/s | loop chars/s (median step) "
          "| ratio | loop chars/s (mean step) | ratio |")
    print("|---|---|---|---|---|---|---|")
    for h in map(int, args.sizes.split(",")):
        mc = ModelConfig(vocab_size=len(corpus.vocab), hidden_size=h, dropout=0.1)
        for _ in range(args.rounds):
            for ema in (TrainConfig.ema, 0.0):
                kernel = kernel_rate(mc, TrainConfig.batch_size, TrainConfig.seq_len,
                                     torch.device("cpu"), None, args.kernel_seconds)
                steps = StepTimes()
                tc = TrainConfig(max_steps=args.steps, eval_every=10**9, patience=0,
                                 preview=0, ema=ema, device="cpu", precision="fp32")
                with tempfile.TemporaryDirectory() as tmp:
                    Trainer(mc, tc, corpus, Path(tmp) / "run", steps).run()
                median = chars / statistics.median(steps.times)
                mean = chars / statistics.mean(steps.times)
                print(f"| 2x{h} | {ema:g} | {kernel:,.0f} | {median:,.0f} "
                      f"| {median / kernel:.2f} | {mean:,.0f} | {mean / kernel:.2f} |",
                      flush=True)


if __name__ == "__main__":
    main()
