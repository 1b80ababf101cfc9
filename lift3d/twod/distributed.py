"""What every 2D training loop shares under torchrun: the process's place in the job, process-group start-up, the
global batch every rank agrees on, and the progress bar (rank 0 only)."""

from __future__ import annotations

import os

import torch

__all__ = ["dist_env", "init_distributed", "batch_indices", "training_progress"]


def dist_env() -> tuple[int, int, int]:
    """``(rank, world size, local rank)`` from torchrun's environment (``(0, 1, 0)`` without it)."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    return int(os.environ.get("RANK", "0")), world, int(os.environ.get("LOCAL_RANK", "0"))


def init_distributed(world: int, local_rank: int, device: str) -> str:
    """Start the process group once (nccl on CUDA, gloo on the CPU) when ``world > 1``; returns this process's device
    (``cuda:<local rank>`` on CUDA)."""
    if world <= 1:
        return device
    import torch.distributed as dist

    if not dist.is_initialized():
        dist.init_process_group("nccl" if device.startswith("cuda") else "gloo")
    return f"cuda:{local_rank}" if device.startswith("cuda") else device


def batch_indices(n_items: int, batch_size: int, step: int, seed: int) -> list[tuple[int, int]]:
    """The global batch of ``step`` as ``(epoch, item)`` pairs: consecutive items of per-epoch permutations seeded
    by ``(seed, epoch)`` (every rank computes the same list and takes its share)."""
    out = []
    for j in range(batch_size):
        epoch, k = divmod(step * batch_size + j, n_items)
        perm = torch.randperm(n_items, generator=torch.Generator().manual_seed(seed * 7919 + epoch))
        out.append((epoch, int(perm[k])))
    return out


def training_progress(enabled: bool, total: int, start: int, label: str):
    """A started rich progress bar and its task (``(progress, task)``), or None when not ``enabled``."""
    if not enabled:
        return None
    from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn

    p = Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        TextColumn("{task.completed}/{task.total}"),
        TimeElapsedColumn(),
        TimeRemainingColumn(),
    )
    p.start()
    return p, p.add_task(label, total=total, completed=start)
