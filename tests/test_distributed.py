"""Two CPU processes on gloo: the distributed loss equals the single-process loss of the global batch."""

from __future__ import annotations

from pathlib import Path

import torch
import torch.distributed as dist
import torch.multiprocessing as mp

from mclx.distributed import Rank
from mclx.losses import contrastive_loss, same_clip_target
from mclx.train import _global_view_major, _local_rows

WORLD, VIEWS, BATCH, DIM = 2, 2, 6, 5


def global_batch() -> tuple[torch.Tensor, torch.Tensor]:
    """z (V * B, D) in view-major order and the track of each of the B clips."""
    g = torch.Generator().manual_seed(0)
    return torch.randn(VIEWS * BATCH, DIM, generator=g, dtype=torch.float64), torch.arange(BATCH)


def local_slice(rank: int) -> torch.Tensor:
    """This rank's rows of the global view-major batch, in its own view-major order."""
    return _local_rows(VIEWS, BATCH, Rank(rank, WORLD))  # type: ignore[return-value]


def worker(rank: int, init: str, results: Path) -> None:
    dist.init_process_group("gloo", init_method=init, rank=rank, world_size=WORLD)
    z, tracks = global_batch()
    rows = local_slice(rank)
    z_local = z[rows].clone().requires_grad_(True)
    info = Rank(rank, WORLD)
    z_all = _global_view_major(z_local, VIEWS, info)
    loss = contrastive_loss(z_all, same_clip_target(tracks.repeat(VIEWS)), 0.1, anchors=rows)
    loss.backward()
    torch.save({"loss": loss.detach(), "grad": z_local.grad, "rows": rows, "z_all": z_all.detach()},
               results / f"rank{rank}.pt")  # fmt: skip
    dist.barrier()
    dist.destroy_process_group()


def test_distributed_loss_and_gradients_equal_the_single_process_ones(tmp_path: Path) -> None:
    mp.spawn(worker, args=(f"file://{tmp_path / 'rendezvous'}", tmp_path), nprocs=WORLD, join=True)
    z, tracks = global_batch()
    z = z.clone().requires_grad_(True)
    single = contrastive_loss(z, same_clip_target(tracks.repeat(VIEWS)), 0.1)
    single.backward()
    assert z.grad is not None
    parts = [torch.load(tmp_path / f"rank{r}.pt") for r in range(WORLD)]
    for p in parts:
        torch.testing.assert_close(p["z_all"], z.detach())  # every rank sees the global batch
    torch.testing.assert_close(sum(p["loss"] for p in parts) / WORLD, single.detach())
    for p in parts:  # gradients reach each rank's own embeddings from every rank's anchors
        torch.testing.assert_close(p["grad"] / WORLD, z.grad[p["rows"]])
