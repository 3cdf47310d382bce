"""How fast `charrnn sample` answers and streams: the figures behind issue #4's targets.

Builds untrained LSTM checkpoints of the default sizes (2x256, 2x384, 2x512; vocabulary
65; speed does not depend on training), then runs the real command in subprocesses, as a shell
script would:

- time to first byte: from spawning `python -m charrnn sample --length 1` to reading
  the first byte of its stdout;
- streaming speed at batch 1: `--length N`, characters per second from the first byte
  to the end of the output (start-up excluded);
- batched throughput: `--num-samples K`, all K*N characters over the same interval.

Every figure is the median of --repeats runs, after one unmeasured warm-up run (which
writes the bytecode cache, as installing a package does). Run from the repository root:

    python bench/sample_speed.py               # about a minute on 2 cores
    python bench/sample_speed.py --quick       # a few seconds, rough figures

The environment is passed through, so `OPENBLAS_NUM_THREADS=1 python bench/...`
measures the sampler with one BLAS thread (the command uses two while a core is idle).
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
SIZES = (256, 384, 512)
BATCHES = (1, 4, 16, 64)


def make_checkpoint(folder: Path, hidden: int, cell: str = "lstm") -> Path:
    """An untrained 2-layer model over a 65-character vocabulary, saved as a checkpoint."""
    import torch

    sys.path.insert(0, str(ROOT))
    from charrnn.config import ModelConfig
    from charrnn.data.text import Vocab
    from charrnn.model.network import CharRNN
    from charrnn.runs import checkpoint as ckpt

    torch.manual_seed(0)
    vocab = Vocab(tuple(sorted("\n !$&',-.3:;?" + "ABCDEFGHIJKLMNOPQRSTUVWXYZ"
                               + "abcdefghijklmnopqrstuvwxyz")))
    config = ModelConfig(vocab_size=len(vocab), cell=cell, num_layers=2, hidden_size=hidden)
    model = CharRNN(config)
    path = folder / f"{cell}-2x{hidden}" / "best.safetensors"
    ckpt.write(path, {k: v.contiguous() for k, v in model.state_dict().items()},
               ckpt.build_meta(config, vocab))
    return path


def timed_run(args: list[str]) -> tuple[float, float, float]:
    """Spawn a command; seconds to its first stdout byte, to its last, and the CPU seconds
    (user + system) it used: the CPU figure is less disturbed by a busy machine."""
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    env.pop("PYTHONDONTWRITEBYTECODE", None)  # cached bytecode, as in any installed package
    t0 = time.perf_counter()
    proc = subprocess.Popen(args, stdout=subprocess.PIPE, env=env, cwd=ROOT, bufsize=0)
    first = proc.stdout.read(1)
    t1 = t2 = time.perf_counter()
    while proc.stdout.read(65536):  # the time of the last byte, not of the exit
        t2 = time.perf_counter()
    _, status, usage = os.wait4(proc.pid, 0)
    proc.returncode = os.waitstatus_to_exitcode(status)
    if proc.returncode != 0 or not first:
        raise SystemExit(f"failed: {' '.join(args)}")
    return t1 - t0, t2 - t0, usage.ru_utime + usage.ru_stime


def sample_cmd(path: Path, *extra: str) -> list[str]:
    return [sys.executable, "-m", "charrnn", "sample", "-c", str(path), "--seed", "1",
            *extra]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--length", type=int, default=2000, help="characters at batch 1")
    ap.add_argument("--batch-length", type=int, default=200, help="characters per sample")
    ap.add_argument("--quick", action="store_true", help="3 repeats, short outputs")
    args = ap.parse_args()
    if args.quick:
        args.repeats, args.length, args.batch_length = 3, 1000, 100
    med = statistics.median
    load = os.getloadavg()[0]
    threads = os.environ.get("OPENBLAS_NUM_THREADS", "2 while a core is idle, else 1")
    print(f"# {os.cpu_count()} CPUs, load average {load:.2f} at start, BLAS threads "
          f"{threads}, {args.repeats} repeats, medians")

    with tempfile.TemporaryDirectory() as tmp:
        ckpts = {h: make_checkpoint(Path(tmp), h) for h in SIZES}

        print("\n## start-up: spawn -> first byte on stdout, seconds (and CPU seconds used)")
        base = [sys.executable, "-c", "print(1)"]
        rows = [("python -c 'print(1)' (floor)", base),
                ("python -c 'import numpy'", base[:2] + ["import numpy; print(1)"])]
        rows += [(f"charrnn sample --length 1, 2x{h} LSTM", sample_cmd(ckpts[h], "-n", "1"))
                 for h in SIZES]
        startup_cpu = {}
        for label, cmd in rows:
            timed_run(cmd)  # warm-up: bytecode written, files in the page cache
            runs = [timed_run(cmd) for _ in range(args.repeats)]
            firsts, cpus = [r[0] for r in runs], [r[2] for r in runs]
            startup_cpu[label] = med(cpus)
            print(f"{label:40s} median {med(firsts):.3f}  min {min(firsts):.3f}  "
                  f"max {max(firsts):.3f}   cpu {med(cpus):.3f}")

        def rates(h: int, k: int, n: int) -> str:
            """Total chars/s from the first byte to the end; and per CPU-second of
            generation (the run's CPU time less that of a --length 1 start-up)."""
            wall, cpu = [], []
            for _ in range(args.repeats):
                first, end, used = timed_run(sample_cmd(
                    ckpts[h], "-n", str(n), "--num-samples", str(k)))
                wall.append((k * n - 1) / (end - first))
                cpu.append(k * n / max(used - startup_cpu[f"charrnn sample --length 1, "
                                                          f"2x{h} LSTM"], 1e-9))
            return (f"median {med(wall):8.0f}  min {min(wall):8.0f}  max {max(wall):8.0f}"
                    f"   per cpu-s {med(cpu):8.0f}")

        print("\n## streaming at batch 1: chars/s after the first byte")
        for h in SIZES:
            print(f"2x{h} LSTM, {args.length} chars{'':15s} {rates(h, 1, args.length)}")

        print(f"\n## --num-samples K, {args.batch_length} chars each: total chars/s")
        for h in SIZES:
            for k in BATCHES:
                print(f"2x{h} LSTM, K={k:<3d}{'':22s} {rates(h, k, args.batch_length)}")
    print(f"\n# load average {os.getloadavg()[0]:.2f} at the end (the machine is shared)")


if __name__ == "__main__":
    main()
