"""Copy-check figures: index build speed, query time, peak memory (charrnn.novelty).

    python bench/novelty.py            # 100 MB generated corpus (~1-2 minutes)
    python bench/novelty.py --mb 20    # smaller

The corpus is Zipf-distributed words (5,000 random "words" of 2-8 letters, some
punctuation and newlines), so it has the repeats of real text. Each phase runs in its own
process so its peak RSS (ru_maxrss) is its own:

- encode: charrnn.cache.load (the id cache every training run makes anyway);
- build: the suffix array (pydivsufsort, all cores) written beside the cache;
- query: open the index and check 1,000-character texts: new text from the same
  generator (short copies, the usual case), and a 1,000-character span copied from the
  corpus (the worst case: every search runs deep). Medians of 31 checks, wall-clock and
  CPU time (process_time: what the check costs when the machine is shared).
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
import tracemalloc
from pathlib import Path

import numpy as np


def _words(rng: np.random.Generator, count: int) -> bytes:
    vocab = [bytes(rng.integers(97, 123, rng.integers(2, 9)).astype(np.uint8))
             for _ in range(5000)]
    vocab += [b"The", b"And", b"\n", b".", b","]
    p = 1 / np.arange(1, len(vocab) + 1)
    picks = rng.choice(len(vocab), size=count, p=p / p.sum())
    return b" ".join(vocab[i] for i in picks.tolist())


def make_corpus(path: Path, mb: float) -> None:
    rng = np.random.default_rng(0)
    size = int(mb * 1e6)
    with path.open("wb") as f:
        written = 0
        while written < size:
            block = _words(rng, 1_000_000)[: size - written]
            f.write(block)
            written += len(block)


def _memory() -> dict:
    """Peak resident memory (VmHWM: unlike ru_maxrss, not inherited from the parent that
    spawned this process), and now: anonymous (the process's own) and file-backed
    (pages of memory-mapped files that were touched: shared page cache, reclaimable)."""
    try:
        status = dict(line.split(":", 1) for line in
                      Path("/proc/self/status").read_text().splitlines() if ":" in line)
        mb = {k: int(status[k].split()[0]) / 1024 for k in ("VmHWM", "RssAnon", "RssFile")}
        return {"peak_rss_mb": mb["VmHWM"], "anon_rss_mb": mb["RssAnon"],
                "file_rss_mb": mb["RssFile"]}
    except (OSError, KeyError, ValueError):
        return {"peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}


def phase(name: str, corpus: Path) -> dict:
    from charrnn.data import cache
    from charrnn.novelty import source as novelty

    enc = cache.load(corpus, progress=False)
    if name == "encode":
        return {"chars": len(enc.ids), **_memory()}
    if name == "build":
        t, c = time.perf_counter(), time.process_time()
        novelty.open_cached(enc.ids, enc.ids_path, enc.vocab, str(corpus), enc.digest)
        seconds, cpu = time.perf_counter() - t, time.process_time() - c
        return {"seconds": seconds, "cpu_seconds": cpu,
                "mb_per_s": corpus.stat().st_size / 1e6 / seconds,
                "mb_per_cpu_s": corpus.stat().st_size / 1e6 / cpu, **_memory()}
    t = time.perf_counter()
    index = novelty.open_cached(enc.ids, enc.ids_path, enc.vocab, str(corpus), enc.digest)
    open_s = time.perf_counter() - t
    rng = np.random.default_rng(1)
    new = _words(rng, 400).decode()[:1000]
    start = len(index) // 3
    copied = index.vocab.decode(index.ids[start:start + 1000])
    out = {"open_ms": open_s * 1e3}
    for label, text in (("new_text", new), ("copied_text", copied)):
        times, cpu, report = [], [], None
        for _ in range(31):
            t, c = time.perf_counter(), time.process_time()
            report = index.report(text)
            times.append(time.perf_counter() - t)
            cpu.append(time.process_time() - c)
        out[f"{label}_ms"] = statistics.median(times) * 1e3
        out[f"{label}_cpu_ms"] = statistics.median(cpu) * 1e3
        out[f"{label}_longest"] = report.longest
        t = time.perf_counter()
        index.occurs(text)
        out[f"{label}_occurs_ms"] = (time.perf_counter() - t) * 1e3
    # Memory apart from the timing: tracing every allocation slows numpy several-fold.
    tracemalloc.start()
    index.report(copied)
    index.report(new)
    out["traced_peak_mb"] = tracemalloc.get_traced_memory()[1] / 1e6  # numpy arrays too
    return {**out, **_memory()}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--mb", type=float, default=100.0, help="corpus size in MB")
    ap.add_argument("--phase", help=argparse.SUPPRESS)
    ap.add_argument("--corpus", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.phase:
        print(json.dumps(phase(args.phase, Path(args.corpus))))
        return
    with tempfile.TemporaryDirectory() as tmp:
        env = {**os.environ, "CHARRNN_CACHE_DIR": str(Path(tmp) / "cache")}
        corpus = Path(tmp) / "words.txt"
        t = time.perf_counter()
        make_corpus(corpus, args.mb)
        print(f"corpus: {corpus.stat().st_size / 1e6:.0f} MB generated in "
              f"{time.perf_counter() - t:.1f} s; {os.cpu_count()} cores, load average "
              f"{os.getloadavg()[0]:.1f}", flush=True)
        for name in ("encode", "build", "query"):
            out = subprocess.run([sys.executable, __file__, "--phase", name, "--corpus",
                                  str(corpus)], env=env, check=True, capture_output=True,
                                 text=True).stdout
            figures = json.loads(out)
            print(f"{name}: " + ", ".join(f"{k} {v:,.1f}" if isinstance(v, float)
                                          else f"{k} {v:,}" for k, v in figures.items()),
                  flush=True)


if __name__ == "__main__":
    main()
