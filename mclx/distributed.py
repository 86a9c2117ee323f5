"""torch.distributed helpers: the contrastive loss sees the global batch on every rank."""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass

import torch
import torch.distributed as dist
from torch import Tensor

from mclx.devices import local_rank


@dataclass(frozen=True)
class Rank:
    rank: int = 0
    world: int = 1
    local: int = 0

    @property
    def main(self) -> bool:
        return self.rank == 0


def torchrun_rank() -> Rank | None:
    """This process's rank when torchrun started it among several processes, else None.

    The one answer to "am I under torchrun?", for embed (shard, then merge) and train (join the
    process group). The test is TORCHELASTIC_RUN_ID, which torchrun's agent sets in exactly the
    processes it starts for this command. RANK, WORLD_SIZE, LOCAL_RANK and MASTER_ADDR alone do
    not count: other launchers (SLURM and MPI wrappers) and job scripts export them for some other
    step, and a lone process taking itself for one rank of several would embed only its shard or
    wait for ranks that never come.
    """
    if "TORCHELASTIC_RUN_ID" not in os.environ:
        return None
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world <= 1:
        return None
    return Rank(int(os.environ.get("RANK", "0")), world, local_rank() or 0)


def init_from_env(device_type: str) -> Rank:
    """Join the process group of the torchrun job this process belongs to, if any."""
    launched = torchrun_rank()
    if launched is None:
        return Rank()
    local = launched.local
    if device_type == "cuda":
        torch.cuda.set_device(local)  # NCCL's own buffers (all_gather_object) live on the current device
    if not dist.is_initialized():
        dist.init_process_group("nccl" if device_type == "cuda" else "gloo")
    return Rank(dist.get_rank(), dist.get_world_size(), local)


def gather(x: Tensor) -> Tensor:
    """(n, ...) on each rank -> (world * n, ...) in rank order, gradients flowing back to every rank."""
    if not dist.is_initialized() or dist.get_world_size() == 1:
        return x
    from torch.distributed.nn.functional import all_gather

    return torch.cat(all_gather(x), dim=0)


def gather_plain(x: Tensor) -> Tensor:
    """The same without gradients (labels, ids)."""
    if not dist.is_initialized() or dist.get_world_size() == 1:
        return x
    parts = [torch.empty_like(x) for _ in range(dist.get_world_size())]
    dist.all_gather(parts, x.contiguous())
    return torch.cat(parts, dim=0)


def any_rank(flag: bool, device: torch.device) -> bool:
    """True on every rank when ``flag`` is true on any (a stop request must stop all ranks at one step)."""
    if not dist.is_initialized() or dist.get_world_size() == 1:
        return flag
    t = torch.tensor([float(flag)], device=device)
    dist.all_reduce(t, op=dist.ReduceOp.MAX)
    return bool(t.item())


def same_on_every_rank(text: str) -> bool:
    """Whether every rank holds the same ``text`` (e.g. a digest of its list of tracks)."""
    if not dist.is_initialized() or dist.get_world_size() == 1:
        return True
    texts: list[object] = [None] * dist.get_world_size()
    dist.all_gather_object(texts, text)
    return all(t == text for t in texts)


def mean_over_ranks(x: Tensor) -> Tensor:
    """The mean of ``x`` over the ranks (a logged loss is the global batch's, not one rank's)."""
    if not dist.is_initialized() or dist.get_world_size() == 1:
        return x
    x = x.clone()
    dist.all_reduce(x)
    return x / dist.get_world_size()


def merge_after_barrier(output: str, rank: int, world: int, order: Sequence[str]) -> int | None:
    """Each rank of a torchrun embed calls this after writing its shard store; rank 0 then merges
    the shard stores into ``output`` (returns its rows), rows in the inputs' ``order``, while the
    others wait, so that the job ends with one store. A gloo group is enough: only barriers go
    through it."""
    from mclx.inputs import shard_store_path
    from mclx.store import merge_stores

    if not dist.is_initialized():
        dist.init_process_group("gloo")
    rows = None
    try:
        dist.barrier()  # every shard store is complete
        if rank == 0:
            shards = [shard_store_path(output, r, world) for r in range(world)]
            rows = merge_stores(output, shards, order)
    finally:
        dist.barrier()  # nobody leaves before the merge (or its failure)
        dist.destroy_process_group()
    return rows
