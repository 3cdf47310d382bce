"""Big-corpus benchmark: encoding speed and the memory that training from the cache needs.

    python bench/corpus_scale.py                 # a generated 200 MB file
    python bench/corpus_scale.py --size-mb 2000  # 2 GB (needs ~2.5x that in free disk)
    python bench/corpus_scale.py --only folder,stdin --files 10000

Prints, for a generated ASCII-heavy text (Tiny Shakespeare with a non-ASCII line every
~40 lines, so no block is pure ASCII, plus a pure-ASCII variant):
  * encoding speed of the streaming two-pass cache build (MB/s of text, median of runs),
    with the encoding process's peak RSS (VmHWM) and anonymous memory (RssAnon);
  * a short training run from the warm cache: seconds to the first step, peak RssAnon
    and VmHWM over the first steps and the final (bounded) validation;
  * the same from a cold cache: time to the first step includes the encoding pass;
  * a folder of ``--files`` small text files (100 per sub-folder, 1-20 kB each): files/s
    and MB/s of the walk + check + join + encode into one cache entry (charrnn.corpora);
  * the text piped into ``train -``'s reader: copied from stdin into the run folder,
    then encoded (charrnn.inputs.spool + cache.load), MB/s and peak memory.
Each measurement runs in a fresh process so its memory figures are its own. The text is
freshly written, so it is read from the page cache, not the disk.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from benchpaths import ROOT, SHAKESPEARE


def status() -> dict[str, int]:
    """VmHWM / VmRSS / RssAnon / RssFile of this process, in MiB."""
    out = {}
    for line in Path("/proc/self/status").read_text().splitlines():
        key, _, value = line.partition(":")
        if key in ("VmHWM", "VmRSS", "RssAnon", "RssFile"):
            out[key] = int(value.split()[0]) // 1024
    return out


def generate(path: Path, size_mb: int, mixed: bool) -> None:
    if SHAKESPEARE.is_file():
        base = SHAKESPEARE.read_text(encoding="utf-8")
    else:
        from charrnn.data.text import builtin_corpus

        base = builtin_corpus()
    lines = base.splitlines(keepends=True)
    if mixed:
        extra = "Café naïve — “quoted” ½ résumé, Straße, Ελληνικά, 日本語.\n"
        lines = [ln + (extra if i % 40 == 39 else "") for i, ln in enumerate(lines)]
    unit = "".join(lines).encode("utf-8")
    target = size_mb * 1_000_000
    with path.open("wb") as f:
        written = 0
        while written < target:
            piece = unit[: target - written]
            f.write(piece)
            written += len(piece)


# ---------------------------------------------------------------- child processes
def child_encode(path: str, cache_dir: str) -> dict:
    from charrnn.data import cache

    t0, c0 = time.perf_counter(), time.process_time()
    enc = cache.load(path, Path(cache_dir), progress=False)
    dt, cpu = time.perf_counter() - t0, time.process_time() - c0
    return {"seconds": dt, "cpu_seconds": cpu, "chars": len(enc.ids), "vocab": len(enc.vocab),
            "dtype": enc.ids.dtype.name, **status()}


def child_train(path: str, steps: int, t_start: float) -> dict:
    from charrnn.config import ModelConfig, TrainConfig
    from charrnn.data.corpus import Corpus
    from charrnn.train.loop import Callbacks, Trainer

    peak = {"RssAnon": 0}
    first = {}

    class Probe(Callbacks):
        def on_step(self, p) -> None:
            if not first:
                first["seconds"] = time.time() - t_start
            s = status()
            peak["RssAnon"] = max(peak["RssAnon"], s["RssAnon"])

    corpus = Corpus.load(path, 0.1)
    loaded = time.time() - t_start
    mc = ModelConfig(vocab_size=len(corpus.vocab), num_layers=2, hidden_size=256)
    tc = TrainConfig(max_steps=steps, device="cpu", val_max_chars=100_000, precision="fp32")
    with tempfile.TemporaryDirectory() as run:
        result = Trainer(mc, tc, corpus, Path(run), Probe()).run()
    s = status()
    return {"load_seconds": loaded, "first_step_seconds": first["seconds"],
            "steps": result.progress.step, "train_chars": len(corpus.train),
            "val_loss": result.best_val_loss,
            "peak_RssAnon": max(peak["RssAnon"], s["RssAnon"]), "VmHWM": s["VmHWM"]}


def child_folder(folder: str, cache_dir: str) -> dict:
    from charrnn.data import corpora

    t0, c0 = time.perf_counter(), time.process_time()
    joined = corpora.load([folder], "\n", Path(cache_dir), progress=False)
    return {"seconds": time.perf_counter() - t0, "cpu_seconds": time.process_time() - c0,
            "files": len(joined.files), "chars": len(joined.ids), **status()}


def child_stdin(run_dir: str, cache_dir: str) -> dict:
    from charrnn.data import cache, inputs

    os.environ["CHARRNN_CACHE_DIR"] = cache_dir
    t0, c0 = time.perf_counter(), time.process_time()
    [kept] = inputs.spool(["-"], Path(run_dir))  # copies, then encodes into the cache
    enc = cache.load(kept, Path(cache_dir), progress=False)  # what training then reads
    return {"seconds": time.perf_counter() - t0, "cpu_seconds": time.process_time() - c0,
            "chars": len(enc.ids), **status()}


def make_folder(root: Path, files: int) -> int:
    """``files`` small texts (1-20 kB slices of the base text), 100 per sub-folder."""
    base = (SHAKESPEARE.read_text(encoding="utf-8") if SHAKESPEARE.is_file() else None)
    if base is None:
        from charrnn.data.text import builtin_corpus

        base = builtin_corpus()
    rng = random.Random(0)
    total = 0
    for i in range(files):
        d = root / f"d{i // 100:03d}"
        d.mkdir(parents=True, exist_ok=True)
        n = rng.randint(1_000, 20_000)
        start = rng.randrange(len(base) - n)
        data = base[start:start + n].encode("utf-8")
        (d / f"f{i:05d}.txt").write_bytes(data)
        total += len(data)
    return total


def run_child(*args: str, env: dict, stdin: Path | None = None) -> dict:
    cmd = [sys.executable, __file__, "--child", *args, str(time.time())]
    with open(stdin or os.devnull, "rb") as f:
        done = subprocess.run(cmd, env=env, stdin=f, capture_output=True, text=True)
    if done.returncode:
        sys.exit(done.stderr)
    return json.loads(done.stdout)


# ---------------------------------------------------------------- main
def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--size-mb", type=int, default=200)
    ap.add_argument("--repeats", type=int, default=3, help="encoding runs (median)")
    ap.add_argument("--steps", type=int, default=5, help="training steps to measure")
    ap.add_argument("--dir", type=Path, default=None, help="scratch folder (default: /tmp)")
    ap.add_argument("--files", type=int, default=10_000, help="small files in the folder test")
    ap.add_argument("--only", default="encode,folder,stdin",
                    help="sections to run: encode (with training), folder, stdin")
    ap.add_argument("--child", nargs="+", help=argparse.SUPPRESS)
    a = ap.parse_args()
    if a.child:
        kind, *rest = a.child
        if kind == "encode":
            out = child_encode(rest[0], rest[1])
        elif kind == "folder":
            out = child_folder(rest[0], rest[1])
        elif kind == "stdin":
            out = child_stdin(rest[0], rest[1])
        else:
            out = child_train(rest[0], int(rest[1]), float(rest[2]))
        print(json.dumps(out))
        return

    env = {**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1"}
    scratch = Path(tempfile.mkdtemp(prefix="corpus_scale-", dir=a.dir))
    try:
        print(f"text size {a.size_mb} MB; scratch {scratch}; OMP_NUM_THREADS=1", flush=True)
        sections = set(a.only.split(","))
        if "folder" in sections:
            folder_section(scratch, a.files, a.repeats, env)
        if "stdin" in sections:
            stdin_section(scratch, a.size_mb, a.repeats, env)
        for mixed in (True, False) if "encode" in sections else ():
            label = "ASCII-heavy (1 non-ASCII line in 40)" if mixed else "pure ASCII"
            text = scratch / f"corpus-{'mixed' if mixed else 'ascii'}.txt"
            generate(text, a.size_mb, mixed)
            runs = []
            for i in range(a.repeats):
                runs.append(run_child("encode", str(text), str(scratch / f"cache{i}"),
                                      env=env))
                shutil.rmtree(scratch / f"cache{i}")
            secs = statistics.median(r["seconds"] for r in runs)
            r = runs[0]
            print(f"\n[{label}] {r['chars']:,} chars, vocabulary {r['vocab']} ({r['dtype']})")
            cpu = statistics.median(r["cpu_seconds"] for r in runs)
            each = ", ".join(f"{x['seconds']:.2f}" for x in runs)
            print(f"  encode: {a.size_mb / secs:7.1f} MB/s wall, {a.size_mb / cpu:.1f} MB/s of "
                  f"CPU time (medians of {a.repeats}; wall seconds {each})")
            print(f"          peak RSS {max(x['VmHWM'] for x in runs)} MiB, RssAnon "
                  f"{max(x['RssAnon'] for x in runs)} MiB at the end")
            if not mixed:
                text.unlink()
                continue
            env_cache = {**env, "CHARRNN_CACHE_DIR": str(scratch / "train-cache")}
            cold = run_child("train", str(text), str(a.steps), env=env_cache)
            warm = run_child("train", str(text), str(a.steps), env=env_cache)
            for name, t in (("cold cache", cold), ("warm cache", warm)):
                print(f"  train ({name}, 2x256 LSTM, batch 32x128, {t['steps']} steps, val "
                      f"sample 100k chars): corpus ready {t['load_seconds']:.1f}s, first "
                      f"step at {t['first_step_seconds']:.1f}s")
                print(f"          peak RssAnon {t['peak_RssAnon']} MiB, peak RSS (VmHWM) "
                      f"{t['VmHWM']} MiB")
            text.unlink()
    finally:
        shutil.rmtree(scratch, ignore_errors=True)


def folder_section(scratch: Path, files: int, repeats: int, env: dict) -> None:
    folder = scratch / "folder"
    size = make_folder(folder, files)
    runs = []
    for i in range(repeats):
        runs.append(run_child("folder", str(folder), str(scratch / f"fcache{i}"), env=env))
        shutil.rmtree(scratch / f"fcache{i}")
    secs = statistics.median(r["seconds"] for r in runs)
    each = ", ".join(f"{x['seconds']:.2f}" for x in runs)
    print(f"\n[folder of {files:,} files, {size / 1e6:.1f} MB] joined {runs[0]['chars']:,} chars")
    print(f"  walk + check + encode: {files / secs:,.0f} files/s, {size / 1e6 / secs:.1f} MB/s "
          f"(median of {repeats}; wall seconds {each}); peak RSS "
          f"{max(x['VmHWM'] for x in runs)} MiB", flush=True)
    shutil.rmtree(folder)


def stdin_section(scratch: Path, size_mb: int, repeats: int, env: dict) -> None:
    text = scratch / "piped.txt"
    generate(text, size_mb, mixed=True)
    runs = []
    for i in range(repeats):
        runs.append(run_child("stdin", str(scratch / f"run{i}"), str(scratch / f"scache{i}"),
                              env=env, stdin=text))
        shutil.rmtree(scratch / f"run{i}")
        shutil.rmtree(scratch / f"scache{i}")
    plain = [run_child("encode", str(text), str(scratch / f"pcache{i}"), env=env)
             for i in range(repeats)]  # the same text as a file, for comparison
    secs = statistics.median(r["seconds"] for r in runs)
    cpu = statistics.median(r["cpu_seconds"] for r in runs)
    p_secs = statistics.median(r["seconds"] for r in plain)
    p_cpu = statistics.median(r["cpu_seconds"] for r in plain)
    each = ", ".join(f"{x['seconds']:.2f}" for x in runs)
    print(f"\n[stdin, {size_mb} MB ASCII-heavy] copy into the run folder + encode: "
          f"{size_mb / secs:.1f} MB/s wall, {size_mb / cpu:.1f} MB/s of CPU time (medians of "
          f"{repeats}; wall seconds {each}); peak RSS {max(x['VmHWM'] for x in runs)} MiB")
    print(f"  the same text as a file, encode: {size_mb / p_secs:.1f} MB/s wall, "
          f"{size_mb / p_cpu:.1f} MB/s of CPU time", flush=True)
    text.unlink()


if __name__ == "__main__":
    main()
