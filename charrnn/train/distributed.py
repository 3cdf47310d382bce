"""Data-parallel training under torchrun: the process group, and rank 0 having the say.

``torchrun --nproc_per_node N -m charrnn train ...`` starts N copies of the program with
RANK / WORLD_SIZE / LOCAL_RANK (and a rendezvous address) in their environment. Each
copy trains on its own B/N of the B streams; ``DistributedDataParallel`` averages the
gradients, so every step equals one single-process step over all B streams. Decisions
that depend on a clock (budget, time-based validation) or on validation (early
stopping) are made by rank 0 and broadcast, so every rank runs the same number of steps.
Without torchrun everything here is a no-op and torch.distributed is never touched.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import timedelta

from charrnn.errors import CharRNNError


@dataclass(frozen=True)
class Dist:
    """This process's place in the job; the defaults mean a plain single process."""

    rank: int = 0
    world: int = 1
    local_rank: int = 0  # index among the processes on this machine: picks the GPU
    comm_device: str = "cpu"  # where collective tensors live: cpu (gloo) or cuda:i (nccl)

    @property
    def enabled(self) -> bool:
        return self.world > 1

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    def broadcast(self, values: list[float]) -> list[float]:
        """Rank 0's ``values`` on every rank (a no-op in a single process)."""
        if not self.enabled:
            return values
        import torch
        import torch.distributed as td

        t = torch.tensor(values, dtype=torch.float64, device=self.comm_device)
        td.broadcast(t, src=0)
        return t.tolist()

    def mean(self, t):
        """The mean of a tensor over ranks (a no-op in a single process)."""
        if not self.enabled:
            return t
        import torch.distributed as td

        t = t.detach().clone()
        td.all_reduce(t)
        return t / self.world

    def gather_streams(self, t):
        """Concatenate every rank's (L, B/N, H) state into the global (L, B, H), in rank order."""
        if not self.enabled:
            return t
        import torch
        import torch.distributed as td

        parts = [torch.empty_like(t) for _ in range(self.world)]
        td.all_gather(parts, t.contiguous())
        return torch.cat(parts, dim=1)

    def barrier(self) -> None:
        if self.enabled:
            import torch.distributed as td

            td.barrier()


def from_env() -> Dist:
    """Read torchrun's variables; a plain process (no WORLD_SIZE) is rank 0 of 1."""
    try:
        world = int(os.environ.get("WORLD_SIZE", "1"))
        rank = int(os.environ.get("RANK", "0"))
        local = int(os.environ.get("LOCAL_RANK", "0"))
    except ValueError:
        raise CharRNNError("RANK, WORLD_SIZE and LOCAL_RANK must be integers "
                           "(start distributed runs with torchrun)") from None
    if world < 1 or not 0 <= rank < world:
        raise CharRNNError(f"bad torchrun environment: RANK={rank} WORLD_SIZE={world}")
    return Dist(rank, world, local)


def setup(device: str) -> Dist:
    """Join the process group when started by torchrun: NCCL on CUDA, gloo otherwise."""
    d = from_env()
    if not d.enabled:
        return d
    import torch
    import torch.distributed as td

    cuda = device in ("auto", "cuda") or device.startswith("cuda:")
    cuda = cuda and torch.cuda.is_available()
    if cuda:
        if d.local_rank >= torch.cuda.device_count():
            raise CharRNNError(f"LOCAL_RANK {d.local_rank} but only "
                               f"{torch.cuda.device_count()} CUDA devices on this machine")
        torch.cuda.set_device(d.local_rank)
    if not td.is_initialized():
        # generous: the others wait while one process per machine encodes a big corpus
        td.init_process_group("nccl" if cuda else "gloo", timeout=timedelta(hours=1))
    return Dist(d.rank, d.world, d.local_rank, f"cuda:{d.local_rank}" if cuda else "cpu")


def teardown(d: Dist) -> None:
    if d.enabled:
        import torch.distributed as td

        if td.is_initialized():
            td.destroy_process_group()


@contextmanager
def local_main_first(d: Dist) -> Iterator[None]:
    """Let one process per machine do the body first (e.g. build the corpus cache)."""
    if d.local_rank != 0:
        d.barrier()
    yield
    if d.local_rank == 0:
        d.barrier()
