"""How fast this machine trains a model shape: the measurement behind machine-following
defaults.

The right model for a time budget depends on how many characters the budget will
actually see, and that differs threefold between machines (bf16 or not, one core or
many). ``kernel_rate`` times the training step itself (forward, backward, AdamW) on
random ids for a fraction of a second, so a default can be chosen from what this
machine does rather than from a guess about it.
"""

from __future__ import annotations

import math
import statistics
import time
from dataclasses import dataclass, replace

import torch
import torch.nn.functional as F

from charrnn.config import ModelConfig
from charrnn.model.network import CharRNN, detach_state

SIZES = (256, 384, 512)  # hidden sizes the probe chooses from, smallest first
# A size is chosen when the budget shows it this many characters per parameter: on Tiny
# Shakespeare in 10 minutes, 2x384 won at 2.3 (2 cores) and lost to 2x256 at 1.3 (one
# core); docs/benchmarks.md, "Defaults that follow the machine".
CHARS_PER_PARAM = 1.7
TRAINING_SHARE = 0.93  # of a time budget, spent in training steps (the rest validates)
# Dropout by how often the budget will go through the training text: 0.1 below this many
# passes (a model that sees its text a few times underfits; 0.25 cost 0.02 nats), 0.25
# from it (16 passes on a bf16 CPU: 0.25 won by 0.015); docs/benchmarks.md.
DROPOUT_EPOCHS = 8.0
PROBE_SHARE = 0.05  # of a time budget, the probe may spend at most
BUSY_SHARE = 0.6  # a probe that got less of its threads' CPU time saw a busy machine


def kernel_rate(config: ModelConfig, batch_size: int, seq_len: int, device: torch.device,
                dtype: torch.dtype | None, seconds: float = 0.5, warmup: int = 2,
                limit: float = math.inf) -> float:
    """Training chars/s at this shape: the median step after ``warmup`` steps, timed for
    about ``seconds`` (at least 3 steps, unless ``limit`` seconds in all run out first:
    then what was timed, at least one step). Leaves torch's RNG as it found it."""
    rng = torch.get_rng_state()
    give_up = time.perf_counter() + limit
    try:
        model = CharRNN(config).to(device).train()
        opt = torch.optim.AdamW(model.parameters(), lr=1e-4)
        x = torch.randint(0, config.vocab_size, (batch_size, seq_len), device=device)
        y = torch.randint(0, config.vocab_size, (batch_size, seq_len), device=device)
        state = None
        times: list[float] = []
        end = math.inf  # set when the first timed step starts
        while (len(times) < 3 or time.perf_counter() < end) and (
                not times or time.perf_counter() < give_up):
            t0 = time.perf_counter()
            with torch.autocast(device.type, dtype or torch.float32, enabled=dtype is not None):
                logits, state = model(x, state)
            loss = F.cross_entropy(logits.float().flatten(0, 1), y.flatten())
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            loss.item()  # waits for the device
            state = detach_state(state)
            if warmup and time.perf_counter() < give_up:
                warmup -= 1
                continue
            if not times:
                end = t0 + seconds
            times.append(time.perf_counter() - t0)
        return batch_size * seq_len / statistics.median(times)
    finally:
        torch.set_rng_state(rng)


@dataclass(frozen=True)
class Choice:
    """The hidden size a time budget affords on this machine, and the measurements."""

    hidden_size: int
    rates: dict[int, float]  # chars/s per hidden size probed
    seconds: float  # spent probing
    share: float  # of the CPU time its threads could use that this process got while probing

    @property
    def busy(self) -> bool:
        """Whether other work held this process back while it was timed."""
        return self.share < BUSY_SHARE


def budget_chars(rate: float, max_time: float) -> float:
    """Characters a time budget will train on at ``rate`` chars/s."""
    return rate * max_time * TRAINING_SHARE


def choose_size(base: ModelConfig, batch_size: int, seq_len: int, device: torch.device,
                dtype: torch.dtype | None, max_time: float, seconds: float = 0.3,
                sizes: tuple[int, ...] = SIZES) -> Choice:
    """The largest of ``sizes`` whose characters in ``max_time`` on this machine reach
    ``CHARS_PER_PARAM`` per parameter (the smallest if none does).

    Sizes are timed smallest first and the probe stops at the first that falls short,
    as larger ones would too: 2-4 seconds on a 2-core CPU, and never more than
    ``PROBE_SHARE`` of the budget (a size it has no time left for is not chosen). The
    rates are what this process gets, with the threads it was given: on a busy machine
    that is the cores left (``model.device.Governor``); whether other work still held it
    back shows in ``Choice.share`` (CPU time got against wall time and threads).
    """
    t0, cpu0 = time.perf_counter(), time.process_time()
    limit = t0 + PROBE_SHARE * max_time
    rates: dict[int, float] = {}
    chosen = sizes[0]
    for h in sizes:
        left = limit - time.perf_counter()
        if h != sizes[0] and left <= 0:
            break
        config = replace(base, hidden_size=h)
        rates[h] = kernel_rate(config, batch_size, seq_len, device, dtype, seconds,
                               limit=max(left, 0.0))
        if budget_chars(rates[h], max_time) < CHARS_PER_PARAM * config.num_params():
            break
        chosen = h
    wall = time.perf_counter() - t0
    share = (time.process_time() - cpu0) / max(wall * torch.get_num_threads(), 1e-9)
    return Choice(chosen, rates, wall, min(share, 1.0))


def dropout_for(epochs: float) -> float:
    """Dropout for a run that will pass over its training text ``epochs`` times."""
    return 0.25 if epochs >= DROPOUT_EPOCHS else 0.1
