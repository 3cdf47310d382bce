"""Where a model runs, in what precision and on how many threads: the device, the autocast
dtype, and torch's CPU threads on a shared machine (``Governor``).

Training, evaluation and the benchmarks all choose through here, so ``--device`` and
``--precision`` mean the same thing everywhere.
"""

from __future__ import annotations

import time
from functools import cache

import torch

from charrnn.config import DEVICES, gigabytes, memory_bytes, valid_device
from charrnn.errors import CharRNNError, ConfigError
from charrnn.threads import Load, Threads, choose, torch_threads


def pick_device(name: str) -> torch.device:
    """'auto' -> cuda, then mps, then cpu; an explicit device must exist."""
    if not valid_device(name):
        raise ConfigError(f"device must be one of {', '.join(DEVICES)} or cuda:N, got {name!r}")
    if name == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda")
        if torch.backends.mps.is_available():
            return torch.device("mps")
        return torch.device("cpu")
    if name.startswith("cuda") and not torch.cuda.is_available():
        raise CharRNNError("--device cuda: no CUDA GPU is available to torch")
    if name == "mps" and not torch.backends.mps.is_available():
        raise CharRNNError("--device mps: Apple's MPS backend is not available")
    return torch.device(name)


def memory_of(device: torch.device) -> int | None:
    """Memory a model on ``device`` can use: a GPU's own, else the machine's."""
    if device.type == "cuda":
        return torch.cuda.get_device_properties(device).total_memory
    return memory_bytes()


def check_fits(need: int, device: torch.device, what: str, advice: str) -> None:
    """Refuse, saying how much it needs, what could never fit in ``device``'s memory
    (``need`` bytes; ``what`` needs them), before any of it is allocated."""
    have = memory_of(device)
    if have is not None and need > have:
        where = "this machine has" if device.type != "cuda" else f"{device} has"
        raise ConfigError(f"{what} needs about {gigabytes(need)} of memory; {where} "
                          f"{gigabytes(have)}: {advice}")


@cache
def cpu_bf16_runs(cell: str) -> bool:
    """Whether this CPU's torch runs a bfloat16 ``cell`` layer at all.

    oneDNN has no bfloat16 LSTM/GRU kernels below AVX-512 (e.g. AVX2-only CPUs, or
    ``ONEDNN_MAX_CPU_ISA=AVX2``) and raises when asked for one, so a tiny layer is tried
    once: measured, not guessed from CPU flags.
    """
    layer = {"lstm": torch.nn.LSTM, "gru": torch.nn.GRU, "rnn": torch.nn.RNN}[cell](4, 4)
    try:
        with torch.autocast("cpu", torch.bfloat16):
            out, _ = layer(torch.zeros(1, 2, 4))
            out.float().sum().backward()
    except RuntimeError:
        return False
    return True


def _cpu_bf16_native() -> bool:
    """AMX tiles or AVX-512 BF16 instructions: bfloat16 is faster than float32 there."""
    try:
        return torch.cpu._is_amx_tile_supported() or torch.cpu._is_avx512_bf16_supported()
    except AttributeError:  # older torch without the probes
        return False


def pick_dtype(precision: str, device: torch.device, cell: str = "lstm") -> torch.dtype | None:
    """The autocast dtype for training, or None for plain float32.

    'auto' takes bfloat16 where the hardware runs it natively: CUDA GPUs that support it,
    and CPUs with AMX tiles or AVX-512 BF16 instructions (docs/benchmarks.md has the
    speed-ups); float32 elsewhere, where bf16 is emulated and slower. 'bf16' where the
    hardware cannot run it at all is a one-line error, not a crash inside the kernel.
    """
    if precision == "fp32" or device.type == "mps":
        return None
    if device.type == "cuda":
        runs = native = torch.cuda.is_bf16_supported()
    else:
        native = _cpu_bf16_native()
        runs = (native or precision == "bf16") and cpu_bf16_runs(cell)
    if precision == "bf16":
        if not runs:
            raise ConfigError(
                f"--precision bf16: this {device.type} cannot run a bfloat16 {cell.upper()} "
                "(on CPUs oneDNN needs AVX-512 or AMX); use --precision fp32 or auto")
        return torch.bfloat16
    return torch.bfloat16 if native and runs else None


class Governor:
    """torch's thread count for one command, chosen from the cores left (``threads``) and,
    as a long run goes on, re-checked: when other work takes a core, a thread goes before
    it can wait on a descheduled peer; when cores free up, it comes back (after two
    readings in a row, so a passing blip does not make it flip)."""

    def __init__(self, load: Load, every: float = 2.0) -> None:
        """``every``: seconds between re-checks (reading /proc/stat costs ~50 us)."""
        self.load, self.every = load, every
        self.threads = torch_threads(load)
        self._due = time.perf_counter() + every
        self._up = 0
        torch.set_num_threads(self.threads.count)

    def tick(self) -> str | None:
        """Re-check if one is due; a note when the thread count changed."""
        now = time.perf_counter()
        if self.threads.user or now < self._due:
            return None
        self._due = now + self.every
        others = self.load.others()
        want = choose(others, self.threads.cores)
        if want > self.threads.count:
            self._up += 1
            if self._up < 2:
                return None
        self._up = 0
        if want == self.threads.count:
            return None
        old, self.threads = self.threads, Threads(want, self.threads.cores, others)
        torch.set_num_threads(want)
        return f"threads: {old.count} -> {self.threads.describe()}"
