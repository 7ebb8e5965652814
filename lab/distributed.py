"""Data parallelism for the lab's own PPO loop: one process, or many under `accelerate launch`.

Each process samples its own prompts and computes its own gradients; gradients are averaged
before every optimizer step, so every process holds the same weights (`check_in_sync`).
With one process every function here is a no-op. TRL's trainers parallelise themselves.
"""

from __future__ import annotations

from collections.abc import Iterable
from functools import lru_cache

import torch
import torch.distributed as dist
from accelerate import PartialState


@lru_cache(maxsize=1)
def process() -> PartialState:
    """This process's place in the group (initialises torch.distributed when launched).

    Without GPUs the processes talk over gloo: `cpu=True` makes accelerate set that up.
    """
    return PartialState(cpu=not torch.cuda.is_available())


def is_main() -> bool:
    """True in the process that logs, checkpoints and evaluates (and when running alone)."""
    return process().is_main_process


def _distributed() -> bool:
    return process().num_processes > 1 and dist.is_initialized()


def average_gradients(params: Iterable[torch.nn.Parameter]) -> None:
    """Replace every gradient by its mean over the processes (what DDP does in its hooks)."""
    if not _distributed():
        return
    n = process().num_processes
    for p in params:
        if p.grad is not None:
            dist.all_reduce(p.grad, op=dist.ReduceOp.SUM)
            p.grad /= n


def average_metrics(metrics: dict[str, float]) -> dict[str, float]:
    """The mean of each metric over the processes (every process must call this)."""
    if not _distributed():
        return metrics
    names = sorted(metrics)
    values = torch.tensor([float(metrics[k]) for k in names], dtype=torch.float64)
    dist.all_reduce(values, op=dist.ReduceOp.SUM)
    return dict(zip(names, (values / process().num_processes).tolist(), strict=True))


def check_in_sync(params: Iterable[torch.nn.Parameter]) -> None:
    """Raise if the processes' weights differ (they must be identical after every step)."""
    if not _distributed():
        return
    total = torch.stack([p.detach().double().sum() for p in params]).sum().reshape(1)
    gathered = [torch.zeros_like(total) for _ in range(process().num_processes)]
    dist.all_gather(gathered, total)
    if any(not torch.allclose(g, gathered[0], rtol=1e-9, atol=1e-6) for g in gathered):
        raise RuntimeError(f"processes' weights diverged: checksums {[float(g) for g in gathered]}")


def barrier() -> None:
    """Wait for every process (e.g. until the main one has written a file)."""
    if _distributed():
        dist.barrier()
