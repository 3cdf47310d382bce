"""How fast this machine trains a model shape: the measurement behind machine-following
defaults.

The right model for a time budget depends on how many characters the budget will
actually see, and that differs threefold between machines (bf16 or not, one core or
many). ``kernel_rate`` times the training step itself (forward, backward, AdamW) on
random ids for a fraction of a second, so a default can be chosen from what this
machine does rather than from a guess about it.
"""

from __future__ import annotations

import statistics
import time

import torch
import torch.nn.functional as F

from charrnn.config import ModelConfig
from charrnn.model import CharRNN, detach_state


def kernel_rate(config: ModelConfig, batch_size: int, seq_len: int, device: torch.device,
                dtype: torch.dtype | None, seconds: float = 0.5, warmup: int = 2) -> float:
    """Training chars/s at this shape: the median step after ``warmup`` steps, timed for
    about ``seconds`` (at least 3 steps). Leaves torch's RNG as it found it."""
    rng = torch.get_rng_state()
    try:
        model = CharRNN(config).to(device).train()
        opt = torch.optim.AdamW(model.parameters(), lr=1e-4)
        x = torch.randint(0, config.vocab_size, (batch_size, seq_len), device=device)
        y = torch.randint(0, config.vocab_size, (batch_size, seq_len), device=device)
        state, times = None, []
        end = None
        while len(times) < 3 or time.perf_counter() < end:
            t0 = time.perf_counter()
            with torch.autocast(device.type, dtype or torch.float32, enabled=dtype is not None):
                logits, state = model(x, state)
            loss = F.cross_entropy(logits.float().flatten(0, 1), y.flatten())
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            loss.item()  # waits for the device
            state = detach_state(state)
            if warmup:
                warmup -= 1
                continue
            times.append(time.perf_counter() - t0)
            if end is None:
                end = time.perf_counter() + seconds
        return batch_size * seq_len / statistics.median(times)
    finally:
        torch.set_rng_state(rng)
