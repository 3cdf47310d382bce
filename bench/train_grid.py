"""One point of a training grid with a step budget: train with the library's trainer,
then score both the trained weights and their moving average on the whole held-out text.

    python bench/train_grid.py --hidden 384 --dropout 0.1 --steps 4373
    taskset -c 0 python bench/train_grid.py --hidden 256 --steps 4808 --threads 1

A step budget is the same work however busy the machine is, so grid points can run side
by side, one pinned thread each; the steps stand for a time budget through the chars/s of
a quiet run (bench/kernel_speed.py, bench/train_budget.py). Prints one JSON line: the
settings, characters seen, wall seconds, and the held-out loss (nats/char) of the trained
weights ("trained") and of the saved, averaged ones ("saved").
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

from benchpaths import SHAKESPEARE


def main() -> None:
    from charrnn.config import ModelConfig, TrainConfig

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--file", default=str(SHAKESPEARE))
    ap.add_argument("--steps", type=int, required=True)
    ap.add_argument("--hidden", type=int, default=384)
    ap.add_argument("--layers", type=int, default=2)
    ap.add_argument("--dropout", type=float, default=0.1)
    ap.add_argument("--cell", default="lstm")
    ap.add_argument("-T", "--seq-len", type=int, default=TrainConfig.seq_len)
    ap.add_argument("-B", "--batch-size", type=int, default=TrainConfig.batch_size)
    ap.add_argument("--lr", type=float, default=TrainConfig.lr)
    ap.add_argument("--floor", type=float, default=TrainConfig.min_lr_ratio)
    ap.add_argument("--ema", type=float, default=TrainConfig.ema)
    ap.add_argument("--seed", type=int, default=TrainConfig.seed)
    ap.add_argument("--threads", type=int, default=0, help="torch threads; 0: its default")
    ap.add_argument("--tag", default="")
    a = ap.parse_args()

    import torch

    if a.threads:
        torch.set_num_threads(a.threads)
    from charrnn.data.batches import val_windows
    from charrnn.data.corpus import Corpus
    from charrnn.score.loss import score_ids
    from charrnn.train.loop import Trainer

    corpus = Corpus.load(a.file, TrainConfig.val_fraction)
    mc = ModelConfig(vocab_size=len(corpus.vocab), cell=a.cell, hidden_size=a.hidden,
                     num_layers=a.layers, dropout=a.dropout)
    tc = TrainConfig(batch_size=a.batch_size, seq_len=a.seq_len, lr=a.lr,
                     min_lr_ratio=a.floor, ema=a.ema, max_steps=a.steps, eval_every=a.steps,
                     patience=0, preview=0, precision="fp32", device="cpu", seed=a.seed)
    with tempfile.TemporaryDirectory() as tmp:
        trainer = Trainer(mc, tc, corpus, Path(tmp) / "run")
        t0 = time.perf_counter()
        result = trainer.run()
        wall = time.perf_counter() - t0
    windows = val_windows(corpus.val, 0)  # the whole held-out text

    def loss(model) -> float:
        scores = [score_ids(model, w) for w in windows]
        return round(sum(s.nats for s in scores) / sum(s.chars for s in scores), 4)

    print(json.dumps({
        "tag": a.tag, "model": f"{a.layers}x{a.hidden} {a.cell}", "dropout": a.dropout,
        "T": a.seq_len, "B": a.batch_size, "lr": a.lr, "floor": a.floor, "ema": a.ema,
        "steps": a.steps, "chars": result.progress.chars_seen, "wall_s": round(wall),
        "threads": torch.get_num_threads(), "trained": loss(trainer.model),
        "saved": loss(trainer.scored)}), flush=True)


if __name__ == "__main__":
    main()
