"""What `train --preview` costs: seconds per preview, two ways, and the share of a budget.

    python bench/preview_cost.py                 # 2x256 and 2x384 LSTM, 200 characters
    python bench/preview_cost.py --length 500 --repeats 11

For each size it times, from a torch model's weights as training holds them:
  numpy  the way training previews: copy the weights out, build charrnn.model.infer.NumpyRNN,
         generate (charrnn.train.preview.generate);
  torch  the model itself stepped at batch 1 (eval mode, no grad), drawing the same way.
Both are medians over --repeats, in wall seconds (CPU seconds of this process beside them:
on a busy machine the wall time is mostly waiting for a core). Then, for a --budget run
(default 10 minutes), the number of time-based validations the trainer makes at most (one
per tenth of the budget, at least MIN_EVAL_GAP apart, plus the last) and the share of the
budget the previews take.
"""

from __future__ import annotations

import argparse
import random
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def numpy_way(model, mc, vocab, length: int) -> str:
    """As training previews: copy the weights out, build the numpy engine, generate."""
    from charrnn.train import preview

    weights = {k: v.detach().float().cpu().numpy() for k, v in model.state_dict().items()}
    return preview.generate(mc, weights, vocab, length, 1337)


def torch_way(model, mc, vocab, length: int) -> str:
    """The torch model stepped at batch 1, on one thread (at batch 1 two wait on each other)."""
    import torch

    from charrnn.generate.pick import pick

    rng, out, threads = random.Random(1337), [], torch.get_num_threads()
    torch.set_num_threads(1)
    model.eval()
    with torch.no_grad():
        x, state = torch.tensor([[0]]), None
        for _ in range(length):
            logits, state = model(x, state)
            i = int(pick(logits[:, -1].numpy(), [rng.random()], 0.8)[0])
            out.append(vocab.chars[i])
            x = torch.tensor([[i]])
    model.train()
    torch.set_num_threads(threads)
    return "".join(out)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--length", type=int, default=200)
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--vocab", type=int, default=65, help="65: Tiny Shakespeare's")
    ap.add_argument("--budget", type=float, default=600.0, help="seconds")
    args = ap.parse_args()

    import torch

    from charrnn.config import ModelConfig
    from charrnn.data.text import Vocab
    from charrnn.model.network import CharRNN
    from charrnn.train.schedule import MIN_EVAL_GAP

    vocab = Vocab(tuple(chr(32 + i) if i else "\n" for i in range(args.vocab)))
    gap = min(max(args.budget / 10, MIN_EVAL_GAP), 600.0)
    validations = int(args.budget // gap) + 1
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads; "
          f"{args.length} characters, median of {args.repeats}")
    print(f"a {args.budget:g} s budget validates at most {validations} times "
          f"(every {gap:g} s and at the end)")
    print("| model | numpy preview s (CPU s) | torch batch-1 s (CPU s) | "
          "share of the budget (numpy, wall) |")
    print("|---|---|---|---|")
    for hidden in (256, 384):
        mc = ModelConfig(vocab_size=len(vocab), num_layers=2, hidden_size=hidden)
        model = CharRNN(mc)
        times, cpu = {}, {}
        for name, fn in (("numpy", numpy_way), ("torch", torch_way)):
            assert len(fn(model, mc, vocab, args.length)) == args.length  # and warm up
            runs, cpus = [], []
            for _ in range(args.repeats):
                t0, c0 = time.perf_counter(), time.process_time()
                fn(model, mc, vocab, args.length)
                runs.append(time.perf_counter() - t0)
                cpus.append(time.process_time() - c0)
            times[name], cpu[name] = statistics.median(runs), statistics.median(cpus)
        share = validations * times["numpy"] / args.budget
        print(f"| 2x{hidden} LSTM | {times['numpy']:.3f} ({cpu['numpy']:.3f}) | "
              f"{times['torch']:.3f} ({cpu['torch']:.3f}) | {100 * share:.2f}% |", flush=True)


if __name__ == "__main__":
    main()
