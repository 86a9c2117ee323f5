"""`mclx train`: contrastive pretraining, read top to bottom in :func:`run_training`.

Every random choice of step k (tracks, segment starts, augmentations) is drawn from
generators seeded with (seed, k), so a run resumed at step k continues exactly as if it
had never stopped: on the CPU the final weights are bit-identical.
"""

from __future__ import annotations

import io
import json
import math
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor, nn

from mclx import losses
from mclx.audio import one_line
from mclx.augment import augment
from mclx.checkpoint import atomic_write_bytes, save_encoder
from mclx.config import Config, load_config, to_toml
from mclx.distributed import Rank, gather, init_from_env
from mclx.errors import ConfigError, Interrupted, WeightsError
from mclx.models import Encoder, build_encoder
from mclx.traindata import Labels, TrackCache, build_cache, cache_root, list_audio, read_labels
from mclx.views import sample_starts, view_sizes

STATE = "state.pt"


class ProjectionHead(nn.Module):
    """The MLP whose output feeds the loss; discarded after training."""

    def __init__(self, dim: int, out: int) -> None:
        super().__init__()
        self.net = nn.Sequential(nn.Linear(dim, dim), nn.ReLU(inplace=True), nn.Linear(dim, out))

    def forward(self, x: Tensor) -> Tensor:
        """(batch, dim) -> (batch, out)."""
        return self.net(x)


class ContrastiveModel(nn.Module):
    """Encoder + head over views: (views * segments, samples) -> (views, projection_dim)."""

    def __init__(self, encoder: Encoder, head: ProjectionHead) -> None:
        super().__init__()
        self.encoder, self.head = encoder, head

    def forward(self, x: Tensor, pool: Tensor) -> Tensor:
        """x (M, samples) segments; pool (views, M) averaging matrix -> (views, projection_dim)."""
        return self.head(pool @ self.encoder(x).float())


def lr_at(step: int, config: Config) -> float:
    """Linear warm-up, then cosine decay to zero: a pure function of the step."""
    t = config.train
    if step < t.warmup_steps:
        return t.lr * (step + 1) / t.warmup_steps
    progress = (step - t.warmup_steps) / max(1, t.steps - t.warmup_steps)
    return t.lr * 0.5 * (1 + math.cos(math.pi * min(1.0, progress)))


def build_model(config: Config, sample_rate: int | None = None) -> ContrastiveModel:
    m = config.model
    args: dict[str, Any] = {"embedding_dim": m.embedding_dim, "window_s": config.views.segment_s}
    if m.channels:
        args["channels"] = m.channels
    if sample_rate is not None:
        args["sample_rate"] = sample_rate
    encoder = build_encoder(m.architecture, args)
    return ContrastiveModel(encoder, ProjectionHead(m.embedding_dim, m.projection_dim))


def make_batch(
    step: int, config: Config, cache: TrackCache, rank: Rank
) -> tuple[np.ndarray, np.ndarray, np.ndarray, list[int]]:
    """The global batch of step ``step``, this rank's share of it.

    Returns (this rank's segments (M, samples) float32, all tracks (B,), this rank's
    tracks (b,), segments per view).
    """
    rng = np.random.default_rng([config.train.seed, step])
    n_tracks = len(cache.lengths)
    b = config.train.batch_size
    tracks = rng.choice(n_tracks, size=b, replace=b > n_tracks)
    segment = round(config.views.segment_s * cache.rate)
    starts = sample_starts(cache.lengths[tracks], config.views, segment, rng)
    per_rank = b // rank.world
    mine = slice(rank.rank * per_rank, (rank.rank + 1) * per_rank)
    # layout: view-major, then track, then segment within the view
    seg_tracks = np.concatenate([np.repeat(tracks[mine], s.shape[1]) for s in starts])
    seg_starts = np.concatenate([s[mine].reshape(-1) for s in starts])
    return cache.segments(seg_tracks, seg_starts, segment), tracks, tracks[mine], view_sizes(config.views)


def pool_matrix(n_tracks: int, sizes: list[int], device: torch.device) -> Tensor:
    """(views * n_tracks, segments) matrix averaging each view's segments (view-major layout)."""
    rows, total = [], sum(sizes) * n_tracks
    offset = 0
    for k in sizes:
        for t in range(n_tracks):
            row = torch.zeros(total)
            row[offset + t * k : offset + (t + 1) * k] = 1.0 / k
            rows.append(row)
        offset += n_tracks * k
    return torch.stack(rows).to(device)


def target_matrix(config: Config, tracks: Tensor, labels: Labels | None, n_views: int) -> Tensor:
    """(V * B, V * B) target of the loss for global tracks (B,) in view-major order."""
    ids = tracks.repeat(n_views)
    ssl = losses.same_clip_target(ids)
    if config.loss.kind == "ntxent" or labels is None:
        return ssl
    values = torch.as_tensor(labels.values, device=tracks.device)[ids]
    if config.loss.kind == "supcon" or config.loss.target == "multiclass":
        sup = losses.multiclass_target(values)
    elif config.loss.target == "multilabel":
        sup = losses.multilabel_target(values, config.loss.multilabel)
    elif config.loss.target == "regression":
        sup = losses.regression_target(values, config.loss.regression_scale)
    else:
        sup = losses.similarity_target(values)
    if config.loss.kind == "supcon":
        return torch.maximum(ssl, sup)  # an unlabelled track is still a positive of itself
    return losses.semisup_target(ssl, sup, config.loss.supervised_weight)


def _device(config: Config, rank: Rank) -> torch.device:
    if config.train.device == "auto":
        return torch.device(f"cuda:{rank.local}" if torch.cuda.is_available() else "cpu")
    return torch.device(config.train.device)


def run_training(
    config_path: str,
    out_dir: str | None,
    resume: bool,
    overrides: list[str],
    quiet: bool = False,
    stop_after: int | None = None,
) -> dict[str, Any]:
    """Train from a TOML config; returns a summary (steps, final_loss, wall_s, examples_per_s, out_dir).

    ``stop_after``: checkpoint and return after this many steps in total, as if the run had
    been interrupted there (``--resume`` continues it).
    """
    config = load_config(config_path, overrides)
    base = Path(config_path).resolve().parent
    out = Path(out_dir or config.train.out or f"runs/{Path(config_path).stem}")
    if config.train.batch_size < 2:
        raise ConfigError("train.batch_size must be at least 2 (a contrastive batch needs negatives)")
    files = list_audio(config, base)
    if resume and not (out / STATE).exists():
        raise ConfigError(f"--resume: no checkpoint in {out} ({STATE} is missing)")

    torch.manual_seed(config.train.seed)
    probe = build_model(config)
    rate = probe.encoder.spec.sample_rate
    rank = init_from_env(_device(config, Rank()).type)
    if config.train.batch_size % rank.world:
        raise ConfigError(
            f"train.batch_size {config.train.batch_size} is not divisible by {rank.world} ranks"
        )
    device = _device(config, rank)
    cache = build_cache(
        files, rate, cache_root(config, base), round(config.data.min_track_s * rate), quiet or not rank.main
    )
    if len(cache.lengths) < 2:
        raise ConfigError(f"data.audio: fewer than two usable tracks ({len(cache.skipped)} skipped)")
    labels = None
    if config.loss.kind != "ntxent":
        kind = "multiclass" if config.loss.kind == "supcon" else config.loss.target
        labels = read_labels(config, base, cache.paths, kind)

    model = probe.to(device)
    model.encoder.spec = probe.encoder.spec
    optimizer = torch.optim.AdamW(
        model.parameters(), lr=config.train.lr, weight_decay=config.train.weight_decay
    )
    start = 0
    out.mkdir(parents=True, exist_ok=True)
    if resume:
        try:
            state = torch.load(io.BytesIO((out / STATE).read_bytes()), map_location=device, weights_only=True)
            model.load_state_dict(state["model"])
            optimizer.load_state_dict(state["optimizer"])
            start = int(state["step"])
        except Exception as exc:  # truncated, edited, or from another configuration
            raise WeightsError(f"{out / STATE}: cannot resume from it ({one_line(exc)})") from None
    elif rank.main:
        (out / "metrics.jsonl").unlink(missing_ok=True)
    if rank.main:
        atomic_write_bytes(out / "config.toml", to_toml(config).encode())
    net: nn.Module = model
    if rank.world > 1:
        net = nn.parallel.DistributedDataParallel(
            model, device_ids=[device.index] if device.type == "cuda" else None
        )
    forward = torch.compile(net) if config.train.compile else net
    precision = config.train.precision
    amp = device.type == "cuda" and precision in ("auto", "bf16")
    sizes = view_sizes(config.views)
    local_tracks = config.train.batch_size // rank.world
    pool = pool_matrix(local_tracks, sizes, device)

    from tqdm import tqdm

    end = min(config.train.steps, stop_after) if stop_after is not None else config.train.steps
    _sigterm_as_interrupt()
    show = not quiet and rank.main and sys.stderr.isatty()
    bar = tqdm(total=end, initial=start, unit="step", file=sys.stderr, dynamic_ncols=True, disable=not show)
    t0, loss_value, examples = time.monotonic(), float("nan"), 0
    last_log = time.monotonic()
    completed = start
    try:
        for step in range(start, end):
            lr = lr_at(step, config)
            for group in optimizer.param_groups:
                group["lr"] = lr
            segments, all_tracks, _, _ = make_batch(step, config, cache, rank)
            x = torch.from_numpy(segments)
            if device.type == "cuda":
                x = x.pin_memory()  # the copy overlaps the previous step's kernels
            x = x.to(device, non_blocking=True)
            gen = torch.Generator(device=device).manual_seed(
                config.train.seed * 1_000_003 + step * 7919 + rank.rank
            )
            x = augment(x, config.views.augment, gen, config.views.augment_p, rate)
            model.train()
            with torch.autocast(device.type, dtype=torch.bfloat16, enabled=amp):
                z_local = forward(x, pool)  # (V * b, P), view-major
            z = _global_view_major(z_local, len(sizes), rank)
            target = target_matrix(config, torch.as_tensor(all_tracks, device=device), labels, len(sizes))
            anchors = _local_rows(len(sizes), config.train.batch_size, rank)
            loss = losses.contrastive_loss(z, target, config.loss.temperature, anchors=anchors)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            if config.train.grad_clip > 0:
                torch.nn.utils.clip_grad_norm_(model.parameters(), config.train.grad_clip)
            optimizer.step()
            completed = done = step + 1
            examples += config.train.batch_size
            if done % config.train.log_every == 0 or done == end:
                # Reading the loss waits for the device: only on logging steps, so that on a GPU
                # the next batch is prepared while this one still runs.
                loss_value = float(loss.detach())
                if not math.isfinite(loss_value):
                    raise ConfigError(f"the loss became {loss_value} at step {step}: lower train.lr")
            if rank.main and (done % config.train.log_every == 0 or done == end):
                now = time.monotonic()
                rate_s = examples / max(now - last_log, 1e-9)
                record = {
                    "step": done,
                    "loss": round(loss_value, 6),
                    "lr": lr,
                    "examples_per_s": round(rate_s, 2),
                }
                with open(out / "metrics.jsonl", "a") as f:
                    f.write(json.dumps(record) + "\n")
                examples, last_log = 0, now
                bar.set_postfix(loss=f"{loss_value:.4f}", ex_s=f"{rate_s:.1f}")
            bar.update(1)
            if done % config.train.checkpoint_every == 0 and done < end:
                _checkpoint(out, model, optimizer, done, config, rank)
    except KeyboardInterrupt:
        _checkpoint(out, model, optimizer, completed, config, rank)
        raise Interrupted(
            f"interrupted after step {completed}; `mclx train ... --resume --out {out}` continues"
        ) from None
    finally:
        bar.close()
    _checkpoint(out, model, optimizer, completed, config, rank)
    wall = time.monotonic() - t0
    trained = completed - start
    summary = {
        "steps": config.train.steps,
        "trained_steps": trained,
        "final_loss": loss_value,
        "wall_s": round(wall, 2),
        "examples_per_s": round(trained * config.train.batch_size / max(wall, 1e-9), 2),
        "tracks": len(cache.lengths),
        "skipped": len(cache.skipped),
        "out_dir": str(out),
    }
    if rank.main and not quiet:
        print(
            f"mclx train: {trained} steps in {wall:.1f} s, final loss {loss_value:.4f}, "
            f"{summary['examples_per_s']} tracks/s -> {out / 'encoder.safetensors'}",
            file=sys.stderr,
        )
    return summary


def _sigterm_as_interrupt() -> None:
    """SIGTERM (a scheduler stopping the job) checkpoints and stops like Ctrl-C."""
    import signal
    import threading

    def interrupt(signum: int, frame: Any) -> None:
        raise KeyboardInterrupt

    if threading.current_thread() is threading.main_thread():
        signal.signal(signal.SIGTERM, interrupt)


def _global_view_major(z_local: Tensor, n_views: int, rank: Rank) -> Tensor:
    """Gather (V * b, P) from every rank into the global view-major (V * B, P) order."""
    if rank.world == 1:
        return z_local
    parts = gather(z_local).reshape(rank.world, n_views, -1, z_local.shape[-1])  # (W, V, b, P)
    return parts.transpose(0, 1).reshape(-1, z_local.shape[-1])


def _local_rows(n_views: int, batch: int, rank: Rank) -> Tensor | slice:
    """Rows of the global view-major batch that are this rank's anchors."""
    if rank.world == 1:
        return slice(None)
    b = batch // rank.world
    return torch.cat(
        [torch.arange(v * batch + rank.rank * b, v * batch + (rank.rank + 1) * b) for v in range(n_views)]
    )


def _checkpoint(out: Path, model: ContrastiveModel, optimizer: torch.optim.Optimizer, step: int,
                config: Config, rank: Rank) -> None:  # fmt: skip
    """Training state and the encoder, each written atomically (rank 0 only)."""
    if not rank.main:
        return
    buf = io.BytesIO()
    torch.save({"model": model.state_dict(), "optimizer": optimizer.state_dict(), "step": step}, buf)
    atomic_write_bytes(out / STATE, buf.getvalue())
    save_encoder(out / "encoder.safetensors", model.encoder, training_config=config.to_dict())
