"""How fast the inspection pages' traces run: characters per second of the numpy twin.

Compares one stream (the whole excerpt stepped at batch 1) with the parallel streams the
pages use, for surprisal + top-5 and for all hidden units. Random weights: speed does not
depend on what the model learned.

    OMP_NUM_THREADS=1 PYTHONPATH=. python bench/bench_trace.py --chars 4000 --repeats 3
"""

from __future__ import annotations

import argparse
import statistics
import time

import numpy as np

from charrnn.config import ModelConfig
from charrnn.inspect.trace import activations, surprisal
from charrnn.model.infer import NumpyRNN


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--chars", type=int, default=4000)
    ap.add_argument("--layers", type=int, default=2)
    ap.add_argument("--hidden", type=int, default=512)
    ap.add_argument("--vocab", type=int, default=65)
    ap.add_argument("--repeats", type=int, default=3)
    args = ap.parse_args()
    cfg = ModelConfig(vocab_size=args.vocab, num_layers=args.layers, hidden_size=args.hidden)
    rng = np.random.default_rng(0)
    weights = {k: (rng.normal(size=s) * 0.05).astype(np.float32)
               for k, s in cfg.weight_shapes().items()}
    engine = NumpyRNN(cfg, weights)
    ids = rng.integers(0, args.vocab, args.chars)
    print(f"model {args.layers}x{args.hidden} lstm, vocabulary {args.vocab}, "
          f"{args.chars:,} characters, median of {args.repeats}")
    for label, fn in (("surprisal+top5", lambda s: surprisal(engine, ids, streams=s)),
                      ("activations", lambda s: activations(engine, ids, streams=s))):
        for streams in (1, 32):
            times = []
            for _ in range(args.repeats):
                t = time.perf_counter()
                fn(streams)
                times.append(time.perf_counter() - t)
            med = statistics.median(times)
            print(f"{label:<15} streams {streams:>2}: {med:6.2f} s  "
                  f"{args.chars / med:>9,.0f} chars/s")


if __name__ == "__main__":
    main()
