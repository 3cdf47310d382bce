"""Load on `charrnn serve`: the figures behind issue 17's targets.

Starts the real server (`python -m charrnn serve`) in a subprocess on a free loopback port
and drives it with asyncio clients (httpx) streaming completions, as programs would:

- one client alone: characters per second of one streamed completion, from its first
  streamed character to its last, against `charrnn sample`'s batch-1 streaming speed
  on the same model (the same measurement as bench/sample_speed.py: first to last byte);
- 16 concurrent clients: time from sending the request to the first streamed character
  (p50, p99 over all requests of all rounds);
- 64 concurrent clients of 500 characters each: total characters per second (all
  characters over the wall time from the first request to the last [DONE]), and errors;
- for reference, the batching engine alone in-process (no HTTP, no event loop) at 1 and
  64 rows: the ceiling of what batching gains for this model on this machine.

The model is a 2x256 LSTM (--hidden) trained for --train-seconds on Python's help text (speed does
not depend on how well it is trained), or an existing run given with --run. Every figure
is the median of --repeats rounds. Clients are on loopback only, bounded in number, and
every request has a timeout. Run from the repository root:

    python bench/serve_load.py                 # about 1.5 minutes on 2 cores
    python bench/serve_load.py --run checkpoints/shakespeare --repeats 5
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parent.parent
ENV = {**os.environ, "PYTHONPATH": str(ROOT)}


def train(folder: Path, seconds: float, hidden: int) -> Path:
    run = folder / f"bench-2x{hidden}"
    subprocess.run([sys.executable, "-m", "charrnn", "train", "-o", str(run), "--layers", "2",
                    "--hidden-size", str(hidden), "--max-time", str(seconds)], check=True, env=ENV,
                   stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    return run


def sample_speed(run: Path, chars: int) -> float:
    """`charrnn sample` at batch 1: characters per second from its first byte to its last."""
    proc = subprocess.Popen([sys.executable, "-m", "charrnn", "sample", "-c", str(run), "-n",
                             str(chars), "--seed", "1", "--no-echo"], stdout=subprocess.PIPE,
                            env=ENV, bufsize=0)
    got = len(proc.stdout.read(1))
    t0 = t1 = time.perf_counter()
    while block := proc.stdout.read(65536):
        got += len(block)
        t1 = time.perf_counter()
    proc.wait()
    return (chars - 1) / (t1 - t0)


def engine_only(run: Path, rows: int, chars: int) -> float:
    """The batching engine alone, in this process (no HTTP): chars/s with ``rows`` rows.
    The ceiling the server's figures can be compared with."""
    sys.path.insert(0, str(ROOT))
    from charrnn.generate.sampler import Sampler
    from charrnn.serve.engine import Batch, Choice, Job, Settings

    model = Sampler.load(run)
    batch = Batch(model)
    jobs = [Job(model.start_ids(""), [Choice(0, i, Settings(max_chars=chars))], lambda: None)
            for i in range(rows)]
    t0 = time.perf_counter()
    batch.step(jobs)
    while batch.busy:
        batch.step([])
    return rows * chars / (time.perf_counter() - t0)


async def stream(client: httpx.AsyncClient, url: str, chars: int, seed: int) -> dict:
    """One streamed completion: time to first character, first-to-last seconds, count."""
    body = {"prompt": "def ", "max_tokens": chars, "seed": seed, "stream": True}
    t0 = time.perf_counter()
    first = last = None
    count, done = 0, False
    async with client.stream("POST", f"{url}/v1/completions", json=body) as r:
        if r.status_code != 200:
            return {"error": r.status_code}
        async for line in r.aiter_lines():
            if line == "data: [DONE]":
                done = True
            elif line.startswith("data: "):
                text = json.loads(line[6:])["choices"][0]["text"]
                if text:
                    last = time.perf_counter()
                    first = first or last
                    count += len(text)
    if not done or count != chars:
        return {"error": f"{count} of {chars} characters, done={done}"}
    return {"ttfc": first - t0, "span": last - first, "chars": count, "start": t0, "end": last}


async def round_of(url: str, clients: int, chars: int, seed: int) -> list[dict]:
    limits = httpx.Limits(max_connections=clients + 4)
    async with httpx.AsyncClient(timeout=60, limits=limits) as client:
        return await asyncio.gather(*(stream(client, url, chars, seed + i)
                                      for i in range(clients)))


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_server(run: Path) -> tuple[subprocess.Popen, str]:
    port = free_port()
    t0 = time.perf_counter()
    proc = subprocess.Popen([sys.executable, "-m", "charrnn", "serve", "-c", str(run),
                             "--port", str(port), "--max-streams", "128"], env=ENV,
                            stderr=subprocess.DEVNULL)
    url = f"http://127.0.0.1:{port}"
    while True:
        try:
            if httpx.get(f"{url}/health", timeout=1).status_code == 200:
                break
        except httpx.HTTPError:
            pass
        if proc.poll() is not None or time.perf_counter() - t0 > 30:
            raise SystemExit("the server did not start")
        time.sleep(0.02)
    print(f"server ready after {time.perf_counter() - t0:.2f} s (spawn to first /health)")
    return proc, url


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--run", type=Path, help="an existing run (default: train one)")
    p.add_argument("--train-seconds", type=float, default=15.0)
    p.add_argument("--hidden", type=int, default=256, help="units per layer of the model trained")
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--one-chars", type=int, default=3000)
    args = p.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        run = args.run or train(Path(tmp), args.train_seconds, args.hidden)
        base = statistics.median(sample_speed(run, args.one_chars)
                                 for _ in range(args.repeats))
        print(f"charrnn sample, batch 1: {base:,.0f} chars/s")
        os.environ["OPENBLAS_NUM_THREADS"] = "1"  # as the server sets it, before numpy loads
        alone = [statistics.median(engine_only(run, rows, 500) for _ in range(args.repeats))
                 for rows in (1, 64)]
        print(f"engine alone (no HTTP): 1 row {alone[0]:,.0f} chars/s, 64 rows "
              f"{alone[1]:,.0f} chars/s = {alone[1] / alone[0]:.1f}x")
        proc, url = start_server(run)
        try:
            asyncio.run(round_of(url, 4, 50, 0))  # warm-up
            one = [asyncio.run(round_of(url, 1, args.one_chars, r))[0]
                   for r in range(args.repeats)]
            speed = statistics.median((r["chars"] - 1) / r["span"] for r in one)
            print(f"one client: {speed:,.0f} chars/s = {speed / base:.0%} of charrnn sample "
                  "(target >= 80%)")
            ttfc = []
            for r in range(args.repeats):
                results = asyncio.run(round_of(url, 16, 200, 100 * r))
                ttfc += [x["ttfc"] for x in results if "ttfc" in x]
            ttfc.sort()
            p99 = ttfc[min(len(ttfc) - 1, int(0.99 * len(ttfc)))]
            print(f"16 clients: time to first character p50 {statistics.median(ttfc) * 1e3:.0f}"
                  f" ms, p99 {p99 * 1e3:.0f} ms over {len(ttfc)} requests (target p99 <= 100)")
            totals, errors = [], 0
            for r in range(args.repeats):
                t0 = time.perf_counter()
                results = asyncio.run(round_of(url, 64, 500, 1000 * r))
                wall = time.perf_counter() - t0
                good = [x for x in results if "chars" in x]
                errors += len(results) - len(good)
                totals.append(sum(x["chars"] for x in good) / wall)
            total = statistics.median(totals)
            print(f"64 clients x 500 chars: {total:,.0f} chars/s in all = {total / speed:.1f}x "
                  f"one client (target >= 5x); errors: {errors}")
        finally:
            proc.terminate()
            proc.wait(timeout=60)
        print(f"server exit status after SIGTERM: {proc.returncode}")


if __name__ == "__main__":
    main()
