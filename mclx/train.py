"""`mclx train`: contrastive pretraining, read top to bottom in :func:`run_training`.

Every random choice of step k (tracks, segment starts, augmentations) is drawn from
generators seeded with (seed, k), so a run resumed at step k continues exactly as if it
had never stopped: on the CPU the final weights are bit-identical.
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import json
import math
import sys
import time
from collections.abc import Generator, Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor, nn

from mclx import losses
from mclx.augment import Groups, augment
from mclx.checkpoint import save_encoder
from mclx.config import Config, from_dict, load_config, resolve_paths, to_toml
from mclx.devices import resolve_device, resolve_precision
from mclx.distributed import Rank, any_rank, gather, init_from_env, mean_over_ranks, same_on_every_rank
from mclx.errors import (
    ConfigError,
    Interrupted,
    MclxError,
    TrainingDiverged,
    UsageError,
    WeightsError,
    one_line,
)
from mclx.fileio import atomic_write_bytes
from mclx.labels import build_labels, check_labels_match, read_label_rows
from mclx.locks import try_lock, unlock
from mclx.models import Encoder, build_encoder
from mclx.signals import sigterm_interrupts, stop_on_signals
from mclx.traindata import TrackCache, build_cache, cache_root, list_audio
from mclx.views import sample_starts, view_sizes

STATE = "state.pt"
# Keys a resumed run may change; any other difference would silently train another model.
RESUMABLE_CHANGES = {"train.steps", "train.checkpoint_every", "train.log_every", "train.out",
                     "train.device", "train.compile", "train.precision", "data.cache",
                     "train.snapshot_every"}  # fmt: skip


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
    if m.n_mels:
        args["n_mels"] = m.n_mels
    if m.hop_length:
        args["hop_length"] = m.hop_length
    if sample_rate is not None:
        args["sample_rate"] = sample_rate
    encoder = build_encoder(m.architecture, args)
    return ContrastiveModel(encoder, ProjectionHead(m.embedding_dim, m.projection_dim))


def make_batch(step: int, config: Config, cache: TrackCache, rank: Rank) -> tuple[np.ndarray, np.ndarray]:
    """The global batch of step ``step``: (this rank's segments (M, samples) float32, all tracks (B,)).

    Segments are laid out view-major, then track, then segment within the view.
    """
    rng = np.random.default_rng([config.train.seed, step])
    n_tracks = len(cache.lengths)
    b = config.train.batch_size
    tracks = rng.choice(n_tracks, size=b, replace=b > n_tracks)
    segment = round(config.views.segment_s * cache.rate)
    starts = sample_starts(cache.lengths[tracks], config.views, segment, rng)
    per_rank = b // rank.world
    mine = slice(rank.rank * per_rank, (rank.rank + 1) * per_rank)
    seg_tracks = np.concatenate([np.repeat(tracks[mine], s.shape[1]) for s in starts])
    seg_starts = np.concatenate([s[mine].reshape(-1) for s in starts])
    return cache.segments(seg_tracks, seg_starts, segment), tracks


def batches(
    start: int,
    end: int,
    config: Config,
    cache: TrackCache,
    rank: Rank,
    gpu: bool,
    prefetch: bool | None = None,
) -> Generator[tuple[Tensor, Tensor], None, None]:
    """(segments (M, samples), all tracks (B,)) of steps start..end-1, on the CPU.

    For a GPU the tensors are pinned (their copies then overlap the kernels) and the next
    batch is cut in a thread while the current one trains (``prefetch``, default: ``gpu``).
    Each batch is a pure function of its step, so prefetching changes nothing in what is trained.
    """

    def prepare(step: int) -> tuple[Tensor, Tensor]:
        segments, tracks = make_batch(step, config, cache, rank)
        x, ids = torch.from_numpy(segments), torch.from_numpy(tracks)
        return (x.pin_memory(), ids.pin_memory()) if gpu else (x, ids)

    if not (gpu if prefetch is None else prefetch):
        yield from (prepare(step) for step in range(start, end))
        return
    with ThreadPoolExecutor(1, thread_name_prefix="mclx-batches") as executor:
        upcoming = executor.submit(prepare, start) if start < end else None
        for step in range(start, end):
            assert upcoming is not None
            current = upcoming.result()
            upcoming = executor.submit(prepare, step + 1) if step + 1 < end else None
            yield current


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


def view_groups(pool: Tensor, sizes: list[int]) -> Groups:
    """The view each segment row belongs to (for augmentations drawn per view), from the pooling
    matrix (views * n_tracks, segments); None when every view is a single segment."""
    return (pool.argmax(dim=0), pool.shape[0]) if max(sizes) > 1 else None


def target_matrix(config: Config, tracks: Tensor, labels: Tensor | None, n_views: int) -> Tensor:
    """(V * B, V * B) target of the loss for global tracks (B,) in view-major order.

    ``labels``: every cached track's label (rows as in :class:`mclx.labels.Labels`), or None.
    """
    ids = tracks.repeat(n_views)
    ssl = losses.same_clip_target(ids)
    if config.loss.kind == "ntxent" or labels is None:
        return ssl
    values = labels[ids]
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
    return resolve_device(config.train.device, rank.local, flag="train.device")


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
    # 1. Everything that can be wrong with the configuration, before any work.
    config = load_config(config_path, overrides)
    base = Path(config_path).resolve().parent
    out = Path(out_dir or config.train.out or f"runs/{Path(config_path).stem}")
    if config.train.batch_size < 2:
        raise ConfigError("train.batch_size must be at least 2 (a contrastive batch needs negatives)")
    files = list_audio(config, base)
    label_rows = read_label_rows(config, base) if config.loss.kind != "ntxent" else None
    if label_rows is not None:
        check_labels_match(config, label_rows, files)
    resolved = resolve_paths(config, base)  # what DIR/config.toml and the training state record
    state = _read_state(out, resolved, base) if resume else None
    rank = init_from_env(_device(config, Rank()).type)
    if config.train.batch_size % rank.world:
        raise ConfigError(
            f"train.batch_size {config.train.batch_size} is not divisible by {rank.world} ranks"
        )
    device = _device(config, rank)

    with _exclusive(out) if rank.main else contextlib.nullcontext():  # one run writes to out
        # 2. Data: decoded once into the cache, then segments cut from memory-mapped tracks.
        torch.manual_seed(config.train.seed)
        model = build_model(config)
        rate = model.encoder.spec.sample_rate
        try:
            with sigterm_interrupts():
                min_samples = round(config.data.min_track_s * rate)
                cache = build_cache(
                    files, rate, cache_root(config, base), min_samples, quiet or not rank.main
                )
        except KeyboardInterrupt:
            raise Interrupted(
                "interrupted while decoding into the cache; the next run keeps what was done"
            ) from None
        if rank.main and cache.skipped:
            _warn_skipped(cache.skipped)
        if rank.main and not quiet:
            size = 2 * int(cache.lengths.sum())
            print(f"mclx train: {len(cache.paths)} tracks, {size / 2**30:.2f} GiB of {rate} Hz audio in the "
                  f"cache {cache_root(config, base) / f'{rate}hz'}", file=sys.stderr)  # fmt: skip
        if len(cache.lengths) < 2:
            raise ConfigError(f"data.audio: fewer than two usable tracks ({len(cache.skipped)} skipped)")
        tracks = hashlib.sha1("\n".join(cache.paths).encode()).hexdigest()
        if not same_on_every_rank(tracks):
            raise MclxError(
                "the ranks decoded different sets of tracks (a file failed on one of them); run again"
            )
        if rank.main and state is not None and state.get("tracks", tracks) != tracks:
            print(f"mclx train: warning: the tracks differ from those of the run in {out} "
                  f"({len(cache.paths)} now: files added, removed, changed or failing to decode); the "
                  "resumed run will not equal one that never stopped", file=sys.stderr)  # fmt: skip
        identity = {"config": json.dumps(resolved.to_dict()), "tracks": tracks}
        labels = None
        if label_rows is not None:
            kind = "multiclass" if config.loss.kind == "supcon" else config.loss.target
            labels = torch.as_tensor(
                build_labels(config, label_rows, cache.paths, kind).values, device=device
            )

        # 3. Model, optimiser and, when resuming, their saved state.
        model = model.to(device)
        optimizer = torch.optim.AdamW(
            model.parameters(), lr=config.train.lr, weight_decay=config.train.weight_decay
        )
        start = 0
        if state is not None:
            try:
                model.load_state_dict(state["model"])
                optimizer.load_state_dict(state["optimizer"])
                start = int(state["step"])
            except Exception as exc:  # from another architecture or size
                raise WeightsError(f"{out / STATE}: cannot resume from it ({one_line(exc)})") from None
        net: nn.Module = model
        if rank.world > 1:
            net = nn.parallel.DistributedDataParallel(
                model, device_ids=[device.index] if device.type == "cuda" else None
            )
        forward = torch.compile(net) if config.train.compile else net
        amp = resolve_precision(config.train.precision, device.type) == "bf16"
        if device.type == "cuda":
            torch.backends.cudnn.benchmark = True
            torch.backends.cuda.matmul.allow_tf32 = torch.backends.cudnn.allow_tf32 = True
        sizes = view_sizes(config.views)
        pool = pool_matrix(config.train.batch_size // rank.world, sizes, device)
        groups = view_groups(pool, sizes)
        anchors = _local_rows(len(sizes), config.train.batch_size, rank)
        if isinstance(anchors, Tensor):
            anchors = anchors.to(device)

        # 4. The loop.
        from tqdm import tqdm

        end = min(config.train.steps, stop_after) if stop_after is not None else config.train.steps
        with contextlib.ExitStack() as stack:
            if rank.main:
                _start_metrics(out, start)
                atomic_write_bytes(out / "config.toml", to_toml(resolved).encode())
            stop = stack.enter_context(stop_on_signals(second_interrupts=True))
            show = not quiet and rank.main and sys.stderr.isatty()
            bar = stack.enter_context(tqdm(total=end, initial=start, unit="step", file=sys.stderr,
                                           dynamic_ncols=True, disable=not show))  # fmt: skip
            t0 = last_log = time.monotonic()
            loss_value, examples, done = float("nan"), 0, start
            data = stack.enter_context(
                contextlib.closing(batches(start, end, config, cache, rank, device.type == "cuda"))
            )
            # The first step whose loss was not finite, kept on the device (no per-step sync); read
            # on logging steps and before anything is written, so no checkpoint holds a diverged model.
            first_bad = torch.full((), -1, dtype=torch.long, device=device)

            def guard() -> None:
                bad = int(first_bad)
                if bad >= 0:
                    raise TrainingDiverged(
                        f"the loss became non-finite at step {bad} (loss {float(loss.detach()):g}); nothing "
                        f"after the last checkpoint was saved. Lower train.lr (now {config.train.lr:g}) or "
                        "set train.precision = 'fp32'"
                    )

            if start == 0 and config.train.snapshot_every:
                _snapshot(out, model, 0, config, rank)  # the learning curves' step 0: the initialisation
            try:
                for step, (x, track_ids) in zip(range(start, end), data, strict=True):
                    lr = lr_at(step, config)
                    for group in optimizer.param_groups:
                        group["lr"] = lr
                    x = x.to(device, non_blocking=True)
                    track_ids = track_ids.to(device, non_blocking=True)
                    gen = torch.Generator(device=device).manual_seed(
                        config.train.seed * 1_000_003 + step * 7919 + rank.rank
                    )
                    x = augment(x, config.views.augment, gen, config.views.augment_p, rate, groups)
                    model.train()
                    with torch.autocast(device.type, dtype=torch.bfloat16, enabled=amp):
                        z_local = forward(x, pool)  # (V * b, P), view-major
                    z = _global_view_major(z_local, len(sizes), rank)
                    target = target_matrix(config, track_ids, labels, len(sizes))
                    loss = losses.contrastive_loss(z, target, config.loss.temperature, anchors=anchors)
                    first_bad = torch.where(
                        (first_bad < 0) & ~torch.isfinite(loss.detach()), step + 1, first_bad
                    )
                    optimizer.zero_grad(set_to_none=True)
                    loss.backward()
                    if config.train.grad_clip > 0:
                        torch.nn.utils.clip_grad_norm_(model.parameters(), config.train.grad_clip)
                    optimizer.step()
                    done = step + 1
                    examples += config.train.batch_size
                    bar.update(1)
                    logging = done % config.train.log_every == 0 or done == end
                    if logging:
                        # Reading the loss waits for the device: only on logging steps, so that on a
                        # GPU the next batch is prepared while this one still runs.
                        guard()
                        loss_value = float(mean_over_ranks(loss.detach()))
                        now = time.monotonic()
                        rate_s = examples / max(now - last_log, 1e-9)
                        examples, last_log = 0, now
                        if rank.main:
                            record = {"step": done, "loss": round(loss_value, 6), "lr": lr,
                                      "examples_per_s": round(rate_s, 2)}  # fmt: skip
                            with open(out / "metrics.jsonl", "a") as f:
                                f.write(json.dumps(record) + "\n")
                            bar.set_postfix(loss=f"{loss_value:.4f}", ex_s=f"{rate_s:.1f}")
                    # Several ranks must agree on the step they stop at: they compare on logging steps.
                    if stop.is_set() if rank.world == 1 else logging and any_rank(stop.is_set(), device):
                        guard()
                        _checkpoint(out, model, optimizer, done, config, rank, identity)
                        raise Interrupted(f"interrupted after step {done}; add --resume to continue ({out})")
                    if config.train.snapshot_every and done % config.train.snapshot_every == 0:
                        guard()
                        _snapshot(out, model, done, config, rank)
                    if done % config.train.checkpoint_every == 0 and done < end:
                        guard()
                        _checkpoint(out, model, optimizer, done, config, rank, identity)
                guard()
                _checkpoint(out, model, optimizer, done, config, rank, identity)
            except KeyboardInterrupt:  # a second signal: stop at once, the last checkpoint stands
                raise Interrupted(
                    f"stopped during step {done + 1}; --resume continues from the last checkpoint"
                ) from None
    wall = time.monotonic() - t0
    trained = done - start
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
        encoder = out / "encoder.safetensors"
        print(f"mclx train: {trained} steps in {wall:.1f} s, final loss {loss_value:.4f}, "
              f"{summary['examples_per_s']} tracks/s -> {encoder}", file=sys.stderr)  # fmt: skip
    return summary


def _read_state(out: Path, config: Config, base: Path) -> dict[str, Any]:
    """The training state to resume from, refused when the configuration has changed.

    ``config`` has its paths resolved; so have the states written since DIR/config.toml records
    absolute paths, and an older state's relative ones are resolved from ``base``."""
    path = out / STATE
    if not path.exists():
        raise ConfigError(f"--resume: no checkpoint in {out} ({STATE} is missing)")
    try:
        state = torch.load(io.BytesIO(path.read_bytes()), map_location="cpu", weights_only=True)
        saved = json.loads(state.get("config", "null"))
    except Exception as exc:  # truncated or edited
        raise WeightsError(f"{path}: cannot resume from it ({one_line(exc)})") from None
    if saved is not None:
        now = config.to_dict()
        with contextlib.suppress(ConfigError):  # a state with other keys is compared as it is
            saved = resolve_paths(from_dict(saved), base).to_dict()
        changed = [f"{s}.{k}" for s in now for k in now[s] if saved.get(s, {}).get(k, now[s][k]) != now[s][k]]
        changed = [key for key in changed if key not in RESUMABLE_CHANGES]
        if changed:
            raise ConfigError(
                f"--resume: {', '.join(changed)} differ from the run in {out}; "
                "set them back or use another --out"
            )
    return dict(state)


def _warn_skipped(skipped: list[tuple[str, str]], shown: int = 20) -> None:
    print(f"mclx train: skipped {len(skipped)} file(s):", file=sys.stderr)
    for path, reason in skipped[:shown]:
        print(f"  {path}: {reason}", file=sys.stderr)
    if len(skipped) > shown:
        print(f"  ... and {len(skipped) - shown} more", file=sys.stderr)


def _start_metrics(out: Path, start: int) -> None:
    """A fresh metrics.jsonl, or, when resuming at ``start``, the rows up to it (a killed run logged more)."""
    path = out / "metrics.jsonl"
    if start == 0:
        path.unlink(missing_ok=True)
    elif path.exists():
        rows = [line for line in path.read_text().splitlines() if line.strip()]
        kept = []
        for line in rows:
            with contextlib.suppress(ValueError, KeyError, TypeError):
                if int(json.loads(line)["step"]) <= start:
                    kept.append(line + "\n")
        atomic_write_bytes(path, "".join(kept).encode())


@contextlib.contextmanager
def _exclusive(out: Path) -> Iterator[None]:
    """One training process writes to ``out`` at a time."""
    try:
        out.mkdir(parents=True, exist_ok=True)
        fd = try_lock(out / ".lock")
    except OSError as exc:
        raise UsageError(f"--out {out}: {one_line(exc)}") from None
    if fd is None:
        raise UsageError(f"--out {out}: another mclx train is writing there")
    try:
        yield
    finally:
        unlock(fd)


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
                config: Config, rank: Rank, identity: dict[str, str]) -> None:  # fmt: skip
    """Training state and the encoder, each written atomically (rank 0 only). ``identity``: the
    resolved configuration and a digest of the tracks, which a resume checks."""
    if not rank.main:
        return
    if not all(bool(torch.isfinite(p).all()) for p in model.parameters()):
        raise TrainingDiverged(
            f"the weights became non-finite by step {step}; the last checkpoint in {out} stands. "
            "Lower train.lr or set train.precision = 'fp32'"
        )
    buf = io.BytesIO()
    state = {"model": model.state_dict(), "optimizer": optimizer.state_dict(), "step": step, **identity}
    torch.save(state, buf)
    atomic_write_bytes(out / STATE, buf.getvalue())
    save_encoder(out / "encoder.safetensors", model.encoder, training_config=config.to_dict())


def _snapshot(out: Path, model: ContrastiveModel, step: int, config: Config, rank: Rank) -> None:
    """Keep the encoder of step ``step`` in ``DIR/snapshots/`` (for learning curves), rank 0 only."""
    if rank.main:
        (out / "snapshots").mkdir(exist_ok=True)
        save_encoder(out / "snapshots" / f"step-{step:06d}.safetensors", model.encoder,
                     training_config=config.to_dict())  # fmt: skip
