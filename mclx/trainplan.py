"""Everything `mclx train` works out before its first step, once, in one frozen plan.

Built in two stages because it must be: :func:`make_train_plan` reads the configuration, lists
the audio, reads the labels, resolves the paths, reads the state to resume from and settles the
ranks and the device, raising every configuration and usage error before any rank could wait on
another; :func:`prepare_data` then decodes the tracks into the cache at the model's sample rate
(known only once the model is built) and orders the labels as the cache orders its tracks.
"""

from __future__ import annotations

import hashlib
import json
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor

from mclx.config import Config, load_config, resolve_paths
from mclx.devices import resolve_device, resolve_precision
from mclx.distributed import Rank, init_from_env, same_on_every_rank
from mclx.errors import ConfigError, Interrupted, MclxError
from mclx.labels import build_labels, check_labels_match, read_label_rows
from mclx.rundir import read_state
from mclx.signals import sigterm_interrupts
from mclx.traindata import TrackCache, build_cache, cache_root, list_audio


@dataclass(frozen=True)
class TrainPlan:
    config: Config  # as loaded, overrides applied
    resolved: Config  # paths made absolute: what DIR/config.toml, the state and the encoder record
    base: Path  # the config file's folder, against which its relative paths are read
    out: Path
    files: tuple[str, ...]  # the audio files listed by data.audio
    label_rows: dict[str, str] | None  # path -> label, for the losses that take labels
    cache_dir: Path
    rank: Rank
    device: torch.device
    amp: bool  # bf16 autocast
    state: dict[str, Any] | None  # the training state resumed from
    end: int  # the step this call stops after (train.steps, or stop_after)
    quiet: bool

    @property
    def start(self) -> int:
        return int(self.state["step"]) if self.state is not None else 0

    @property
    def report(self) -> bool:
        """Whether this process prints (rank 0, not quiet)."""
        return self.rank.main and not self.quiet


@dataclass(frozen=True)
class TrainData:
    cache: TrackCache
    labels: Tensor | None  # (tracks,) or (tracks, tags): every cached track's label, on the device
    labelled: np.ndarray | None  # (L,) indices of the tracks that kept a label (None: no labels)
    identity: dict[str, str]  # the resolved config and the tracks' digest, which a resume checks


def make_train_plan(
    config_path: str,
    out_dir: str | None,
    resume: bool,
    overrides: list[str],
    quiet: bool = False,
    stop_after: int | None = None,
) -> TrainPlan:
    config = load_config(config_path, overrides)
    base = Path(config_path).resolve().parent
    out = Path(out_dir or config.train.out or f"runs/{Path(config_path).stem}")
    if config.train.batch_size < 2:
        raise ConfigError("train.batch_size must be at least 2 (a contrastive batch needs negatives)")
    files = list_audio(config, base)
    label_rows = read_label_rows(config, base) if config.loss.kind in ("supcon", "semisupcon") else None
    if label_rows is not None:
        check_labels_match(config, label_rows, files)
    resolved = resolve_paths(config, base)
    state = read_state(out, resolved, base) if resume else None
    flag = "train.device"
    rank = init_from_env(resolve_device(config.train.device, Rank().local, flag=flag).type)
    if config.train.batch_size % rank.world:
        raise ConfigError(
            f"train.batch_size {config.train.batch_size} is not divisible by {rank.world} ranks"
        )
    device = resolve_device(config.train.device, rank.local, flag=flag)
    amp = resolve_precision(config.train.precision, device.type) == "bf16"
    end = min(config.train.steps, stop_after) if stop_after is not None else config.train.steps
    return TrainPlan(config, resolved, base, out, tuple(files), label_rows, cache_root(config, base), rank,
                     device, amp, state, end, quiet)  # fmt: skip


def prepare_data(plan: TrainPlan, rate: int) -> TrainData:
    """The tracks decoded into the cache at ``rate`` Hz (SIGTERM stops it like Ctrl-C, keeping what
    was decoded) and the labels in the cache's track order."""
    config = plan.config
    try:
        with sigterm_interrupts():
            min_samples = round(config.data.min_track_s * rate)
            cache = build_cache(list(plan.files), rate, plan.cache_dir, min_samples, not plan.report)
    except KeyboardInterrupt:
        raise Interrupted(
            "interrupted while decoding into the cache; the next run keeps what was done"
        ) from None
    if plan.rank.main and cache.skipped:
        _warn_skipped(cache.skipped)
    if plan.report:
        size = 2 * int(cache.lengths.sum())
        print(f"mclx train: {len(cache.paths)} tracks, {size / 2**30:.2f} GiB of {rate} Hz audio in the "
              f"cache {plan.cache_dir / f'{rate}hz'}", file=sys.stderr)  # fmt: skip
    if len(cache.lengths) < 2:
        raise ConfigError(f"data.audio: fewer than two usable tracks ({len(cache.skipped)} skipped)")
    tracks = hashlib.sha1("\n".join(cache.paths).encode()).hexdigest()
    if not same_on_every_rank(tracks):
        raise MclxError(
            "the ranks decoded different sets of tracks (a file failed on one of them); run again"
        )
    if plan.rank.main and plan.state is not None and plan.state.get("tracks", tracks) != tracks:
        print(f"mclx train: warning: the tracks differ from those of the run in {plan.out} "
              f"({len(cache.paths)} now: files added, removed, changed or failing to decode); the "
              "resumed run will not equal one that never stopped", file=sys.stderr)  # fmt: skip
    labels, labelled = None, None
    if plan.label_rows is not None:
        kind = "multiclass" if config.loss.kind == "supcon" else config.loss.target
        built = build_labels(config, plan.label_rows, cache.paths, kind)
        labels, labelled = torch.as_tensor(built.values, device=plan.device), built.labelled_tracks()
    identity = {"config": json.dumps(plan.resolved.to_dict()), "tracks": tracks}
    return TrainData(cache, labels, labelled, identity)


def _warn_skipped(skipped: list[tuple[str, str]], shown: int = 20) -> None:
    print(f"mclx train: skipped {len(skipped)} file(s):", file=sys.stderr)
    for path, reason in skipped[:shown]:
        print(f"  {path}: {reason}", file=sys.stderr)
    if len(skipped) > shown:
        print(f"  ... and {len(skipped) - shown} more", file=sys.stderr)
