"""What checking content costs: a digest of a corpus per GB, and the copy index's check at
every opening (charrnn.novelty.suffixarray.digests).

    python bench/digest_cost.py            # 100 MB corpus (~1 minute with the index build)
    python bench/digest_cost.py --mb 20

Three figures, medians of --repeat runs with the files in the page cache (warm: what a
second command pays; a cold read adds the disk's own speed):

- text digest: SHA-256 over the corpus file in 8 MB reads, as a content key for the
  corpus cache would cost at every start (the cache keys on size, mtime, inode and
  ctime instead: docs/reliability.md);
- index check: the block digests of the ids, the suffix array and the keys, in
  parallel threads, as every copy-check command now pays when it opens the index;
- index open: the whole opening of a built index (record, check, maps).

Wall-clock and CPU seconds (process time, all threads) are both given: on a shared
machine the CPU figure is what the work itself costs.
"""

from __future__ import annotations

import argparse
import hashlib
import os
import statistics
import subprocess
import tempfile
import time
from pathlib import Path

from benchpaths import ROOT
from novelty import make_corpus


def _median_seconds(fn, repeat: int) -> tuple[float, float]:
    """Median wall-clock and CPU seconds of ``fn``."""
    wall, cpu = [], []
    for _ in range(repeat):
        t, c = time.perf_counter(), time.process_time()
        fn()
        wall.append(time.perf_counter() - t)
        cpu.append(time.process_time() - c)
    return statistics.median(wall), statistics.median(cpu)


def text_digest(path: Path) -> str:
    h = hashlib.sha256()
    with path.open("rb") as f:
        while block := f.read(8 << 20):
            h.update(block)
    return h.hexdigest()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--mb", type=float, default=100.0, help="corpus size in MB")
    ap.add_argument("--repeat", type=int, default=5)
    args = ap.parse_args()
    model = subprocess.run(["lscpu"], capture_output=True, text=True).stdout
    name = next((line.split(":", 1)[1].strip() for line in model.splitlines()
                 if line.startswith("Model name")), "?")
    print(f"{name}; {os.cpu_count()} cores; load average {os.getloadavg()[0]:.1f}; "
          f"{time.strftime('%Y-%m-%d')}")
    with tempfile.TemporaryDirectory() as tmp:
        os.environ["CHARRNN_CACHE_DIR"] = str(Path(tmp) / "cache")
        from charrnn.data import cache
        from charrnn.data.cachedir import index_paths
        from charrnn.novelty import source
        from charrnn.novelty.suffixarray import digests

        corpus = Path(tmp) / "words.txt"
        make_corpus(corpus, args.mb)
        enc = cache.load(corpus, progress=False)
        t = time.perf_counter()
        source.open_cached(enc.ids, enc.ids_path, enc.vocab, str(corpus), enc.digest)
        print(f"index built in {time.perf_counter() - t:.1f} s")
        files = [enc.ids_path, *index_paths(enc.ids_path)[:2]]
        index_bytes = sum(p.stat().st_size for p in files)
        size = corpus.stat().st_size
        text_digest(corpus)  # warm the page cache
        s, c = _median_seconds(lambda: text_digest(corpus), args.repeat)
        print(f"text digest (SHA-256, one thread): {size / 1e6:,.0f} MB in {s * 1e3:,.0f} ms"
              f" wall, {c * 1e3:,.0f} ms CPU = {s / size * 1e9:.2f} s per GB wall, "
              f"{c / size * 1e9:.2f} s per GB CPU")
        s, c = _median_seconds(lambda: digests(files), args.repeat)
        print(f"index check (ids + array + keys, {index_bytes / 1e6:,.0f} MB, "
              f"{os.cpu_count()} threads): {s * 1e3:,.0f} ms wall, {c * 1e3:,.0f} ms CPU = "
              f"{s / size * 1e9:.2f} s wall, {c / size * 1e9:.2f} s CPU per GB of corpus")
        s, c = _median_seconds(lambda: source.open_cached(
            enc.ids, enc.ids_path, enc.vocab, str(corpus), enc.digest), args.repeat)
        print(f"index open (record, check, maps): {s * 1e3:,.0f} ms wall, {c * 1e3:,.0f} ms "
              "CPU")


if __name__ == "__main__":
    os.chdir(ROOT)
    main()
