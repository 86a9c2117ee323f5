"""Two CPU processes on gloo: the distributed loss equals the single-process loss of the global batch."""

from __future__ import annotations

import json
import os
import socket
from pathlib import Path
from typing import Any

import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp

from mclx.distributed import Rank
from mclx.train import run_training
from mclx.train.batch import gather_view_major, local_rows
from mclx.train.losses import contrastive_loss, same_clip_target
from mclx.train.rundir import Checkpointer

from ..audio_fixtures import WriteAudio
from ..helpers import write_config

WORLD, VIEWS, BATCH, DIM = 2, 2, 6, 5


def global_batch() -> tuple[torch.Tensor, torch.Tensor]:
    """z (V * B, D) in view-major order and the track of each of the B clips."""
    g = torch.Generator().manual_seed(0)
    return torch.randn(VIEWS * BATCH, DIM, generator=g, dtype=torch.float64), torch.arange(BATCH)


def local_slice(rank: int) -> torch.Tensor:
    """This rank's rows of the global view-major batch, in its own view-major order."""
    return local_rows(VIEWS, BATCH, Rank(rank, WORLD))  # type: ignore[return-value]


def leave() -> None:
    """Every rank has written its results: meet once more, then end this process at once. Once, in
    CI, a rank of one of these tests died of SIGABRT ("terminate called without an active
    exception": native code, no Python traceback); the likeliest place is gloo's
    teardown (destroy_process_group, interpreter exit), which these tests do not check. os._exit
    skips it; mp.spawn reads exit code 0, and a rank that fails before this point still fails."""
    dist.barrier()
    os._exit(0)


def worker(rank: int, init: str, results: Path) -> None:
    dist.init_process_group("gloo", init_method=init, rank=rank, world_size=WORLD)
    z, tracks = global_batch()
    rows = local_slice(rank)
    z_local = z[rows].clone().requires_grad_(True)
    info = Rank(rank, WORLD)
    z_all = gather_view_major(z_local, VIEWS, info)
    loss = contrastive_loss(z_all, same_clip_target(tracks.repeat(VIEWS)), 0.1, anchors=rows)
    loss.backward()
    torch.save({"loss": loss.detach(), "grad": z_local.grad, "rows": rows, "z_all": z_all.detach()},
               results / f"rank{rank}.pt")  # fmt: skip
    leave()


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


def train_worker(rank: int, port: int, config: str, out: str, results: Path) -> None:
    # The variables torchrun sets (TORCHELASTIC_RUN_ID: this process was started by torchrun).
    os.environ.update(RANK=str(rank), LOCAL_RANK=str(rank), WORLD_SIZE=str(WORLD), MASTER_ADDR="127.0.0.1",
                      MASTER_PORT=str(port), TORCHELASTIC_RUN_ID="test")  # fmt: skip
    torch.set_num_threads(1)
    checkpoint = Checkpointer.save

    def keep_parameters(self: Checkpointer, model: torch.nn.Module, *args: Any) -> None:
        torch.save(dict(model.named_parameters()), results / f"params{rank}.pt")
        checkpoint(self, model, *args)  # type: ignore[arg-type]

    Checkpointer.save = keep_parameters  # type: ignore[method-assign]
    summary = run_training(config, out, False, ["train.device='cpu'", "train.steps=4"], quiet=True)
    torch.save(summary, results / f"summary{rank}.pt")
    dist.destroy_process_group()


def test_training_on_two_ranks_keeps_them_in_step(tmp_path: Path, write_audio: WriteAudio) -> None:
    config = write_config(tmp_path, write_audio)
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    out = tmp_path / "run"
    mp.spawn(train_worker, args=(port, str(config), str(out), tmp_path), nprocs=WORLD, join=True)
    summaries = [torch.load(tmp_path / f"summary{r}.pt") for r in range(WORLD)]
    assert [s["trained_steps"] for s in summaries] == [4, 4]
    assert summaries[0]["final_loss"] == summaries[1]["final_loss"]  # the global batch's loss
    a, b = (torch.load(tmp_path / f"params{r}.pt") for r in range(WORLD))
    for key in a:  # gradients were averaged over the ranks: the weights never diverged
        assert torch.equal(a[key], b[key]), key
    assert [json.loads(line)["step"] for line in (out / "metrics.jsonl").read_text().splitlines()] == [2, 4]
    assert (out / "encoder.safetensors").exists()


def recipe_worker(rank: int, init: str, results: Path, recipe: str) -> None:
    """This rank's loss and gradients for the intra-track or CPC recipe, as Step computes them."""
    from mclx.train.losses import cpc_loss

    dist.init_process_group("gloo", init_method=init, rank=rank, world_size=WORLD)
    info = Rank(rank, WORLD)
    z, _ = global_batch()
    rows = local_slice(rank)
    z_local = z[rows].clone().requires_grad_(True)
    z_all = gather_view_major(z_local, VIEWS, info)
    if recipe == "intra-track":
        tracks = torch.tensor([0, 0, 0, 1, 1, 1])  # two tracks of three pairs: they straddle the ranks
        slots = torch.arange(BATCH).repeat(VIEWS)
        cand = same_clip_target(tracks.repeat(VIEWS)) > 0
        loss = contrastive_loss(z_all, same_clip_target(slots), 0.1, anchors=rows, candidates=cand)
    else:  # cpc: view 0 is the context, view 1 the step predicted; predictions from local rows
        b = BATCH // WORLD
        predictions = (z_local[:b] * 2.0).unsqueeze(0)  # (1, b, D), a stand-in for the GRU
        anchors = torch.arange(rank * b, (rank + 1) * b)
        loss = cpc_loss(predictions, z_all.reshape(VIEWS, BATCH, -1)[1:], 0.1, anchors)
    loss.backward()
    torch.save({"loss": loss.detach(), "grad": z_local.grad, "rows": rows}, results / f"rank{rank}.pt")
    leave()


@pytest.mark.parametrize("recipe", ["intra-track", "cpc"])
def test_intra_track_and_cpc_losses_over_ranks_equal_the_single_process_ones(
    tmp_path: Path, recipe: str
) -> None:
    from mclx.train.losses import cpc_loss

    mp.spawn(recipe_worker, args=(f"file://{tmp_path / 'rendezvous'}", tmp_path, recipe), nprocs=WORLD,
             join=True)  # fmt: skip
    z, _ = global_batch()
    z = z.clone().requires_grad_(True)
    if recipe == "intra-track":
        tracks = torch.tensor([0, 0, 0, 1, 1, 1])
        cand = same_clip_target(tracks.repeat(VIEWS)) > 0
        single = contrastive_loss(
            z, same_clip_target(torch.arange(BATCH).repeat(VIEWS)), 0.1, candidates=cand
        )
    else:
        seq = z.reshape(VIEWS, BATCH, -1)
        single = cpc_loss((seq[0] * 2.0).unsqueeze(0), seq[1:], 0.1)
    single.backward()
    assert z.grad is not None
    parts = [torch.load(tmp_path / f"rank{r}.pt") for r in range(WORLD)]
    torch.testing.assert_close(sum(p["loss"] for p in parts) / WORLD, single.detach())
    for p in parts:
        torch.testing.assert_close(p["grad"] / WORLD, z.grad[p["rows"]])
