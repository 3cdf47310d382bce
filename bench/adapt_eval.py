"""Dynamic evaluation: static vs adapted loss and seconds, for a grid of settings.

    python bench/adapt_eval.py /tmp/ts10 --text train --start 200000 --chars 20000 \
        --grid 50,8,3e-4,0.01 25,8,3e-4,0.01
    python bench/adapt_eval.py /tmp/ts10                      # defaults, whole held-out split

Each grid entry is segment,streams,lr,decay. ``--text train`` scores a slice of the
run's own training text (for tuning without touching the held-out split); ``heldout``
scores the held-out split as ``charrnn eval --adapt`` does. Prints a markdown table.
"""

from __future__ import annotations

import argparse

import numpy as np
import torch

from charrnn.config import AdaptConfig, TrainConfig
from charrnn.data.corpus import Corpus
from charrnn.model.network import load_model
from charrnn.runs import folder as runfolder
from charrnn.score.adapt import score_adaptive
from charrnn.score.texts import eval_text


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("checkpoint")
    ap.add_argument("--text", choices=("heldout", "train"), default="heldout")
    ap.add_argument("--start", type=int, default=0)
    ap.add_argument("--chars", type=int, default=0, help="0: to the end")
    ap.add_argument("--grid", nargs="*", default=[])
    args = ap.parse_args()

    c = runfolder.open_checkpoint(args.checkpoint)
    if args.text == "heldout":
        ids = eval_text(c, None).ids
    else:
        tc = TrainConfig.from_dict(c.meta["train"])
        ids = Corpus.load(c.meta["corpus"]["source"], tc.val_fraction, c.vocab).train
    end = args.start + args.chars if args.chars else len(ids)
    ids = np.asarray(ids[args.start : end])
    model = load_model(c)
    d = AdaptConfig()
    grid = args.grid or [f"{d.segment},{d.streams},{d.lr},{d.decay}"]
    print(f"{c.path}: {args.text} text [{args.start}:{end}] ({len(ids):,} characters), "
          f"{torch.get_num_threads()} torch threads\n")
    print("| segment | streams | lr | decay | static | adapted | gain | seconds | chars/s |")
    print("|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
    for spec in grid:
        seg, streams, lr, decay = spec.split(",")
        cfg = AdaptConfig(segment=int(seg), streams=int(streams), lr=float(lr),
                          decay=float(decay))
        s = score_adaptive(model, [ids], cfg)
        print(f"| {cfg.segment} | {cfg.streams} | {cfg.lr:g} | {cfg.decay:g} | "
              f"{s.static.loss:.4f} | {s.loss:.4f} | {s.static.loss - s.loss:+.4f} | "
              f"{s.seconds:.1f} | {s.chars / s.seconds:,.0f} |", flush=True)


if __name__ == "__main__":
    main()
