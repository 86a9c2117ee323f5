"""Everything `mclx train` works out before its first step, once, in one frozen plan.

Built in two stages because it must be: :func:`make_train_plan` reads the configuration, resolves
its data paths (here, once: everything else reads them from the plan), lists the audio, reads the
labels, reads the state to resume from and settles the ranks and the device, raising every
configuration and usage error before any rank could wait on another; :func:`prepare_data` then
decodes the tracks into the cache at the model's sample rate (known only once the model is built)
and orders the labels as the cache orders its tracks.
"""

from __future__ import annotations

import contextlib
import dataclasses
import hashlib
import io
import json
import os
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor

from mclx.config import Config, expand_path, from_dict, load_config
from mclx.devices import resolve_device, resolve_precision
from mclx.distributed import Rank, init_from_env, same_on_every_rank
from mclx.errors import ConfigError, Interrupted, MclxError, WeightsError, one_line
from mclx.signals import sigterm_interrupts
from mclx.train.data import TrackCache, build_cache, list_audio
from mclx.train.labels import build_labels, check_labels_match, read_label_rows
from mclx.train.rundir import STATE

# Keys a resumed run may change; any other difference would silently train another model.
RESUMABLE_CHANGES = {"train.steps", "train.checkpoint_every", "train.log_every", "train.out",
                     "train.device", "train.compile", "train.precision", "data.cache",
                     "train.snapshot_every"}  # fmt: skip


@dataclass(frozen=True)
class DataPaths:
    """A config's data paths, each expanded once (``~``, ``${VAR}``, relative to the config's folder):
    what the file listing, the labels and the cache read, and what ``DIR/config.toml`` records."""

    audio: tuple[Path, ...]  # data.audio's items, in order
    labels: Path | None  # data.labels; None when it is not set
    cache: Path  # the cache directory: data.cache, else $MCLX_CACHE/train, else ~/.cache/mclx/train

    def absolute(self, config: Config) -> Config:
        """``config`` with these paths made absolute, as ``DIR/config.toml`` records them (so that
        the copy runs from any folder)."""
        d = config.data
        data = dataclasses.replace(
            d,
            audio=[os.path.abspath(p) if a else a for a, p in zip(d.audio, self.audio, strict=True)],
            labels=os.path.abspath(self.labels) if d.labels and self.labels is not None else d.labels,
            cache=os.path.abspath(self.cache) if d.cache else d.cache,
        )
        return dataclasses.replace(config, data=data)


def data_paths(config: Config, base: Path | None) -> DataPaths:
    """The data paths of ``config``, relative ones taken from ``base`` (the config file's folder)."""
    d = config.data
    audio = tuple(expand_path(item, base) for item in d.audio)
    labels = expand_path(d.labels, base) if d.labels else None
    if d.cache:
        cache = expand_path(d.cache, base)
    elif os.environ.get("MCLX_CACHE"):
        cache = Path(os.environ["MCLX_CACHE"]) / "train"
    else:
        cache = Path.home() / ".cache" / "mclx" / "train"
    return DataPaths(audio, labels, cache)


@dataclass(frozen=True)
class TrainPlan:
    config: Config  # as loaded, overrides applied
    resolved: Config  # paths made absolute: what DIR/config.toml, the state and the encoder record
    base: Path  # the config file's folder, against which its relative paths are read
    paths: DataPaths  # the data paths, resolved once
    out: Path
    files: tuple[str, ...]  # the audio files listed by data.audio
    label_rows: dict[str, str] | None  # path -> label, for the losses that take labels
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
    paths = data_paths(config, base)
    files = list_audio(config, paths.audio)
    label_rows = None
    if config.loss.kind in ("supcon", "semisupcon") and paths.labels is not None:
        label_rows = read_label_rows(config, paths.labels)
        check_labels_match(config, label_rows, files)
    resolved = paths.absolute(config)
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
    return TrainPlan(config, resolved, base, paths, out, tuple(files), label_rows, rank, device, amp, state,
                     end, quiet)  # fmt: skip


def read_state(out: Path, config: Config, base: Path) -> dict[str, Any]:
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
            old = from_dict(saved)
            saved = data_paths(old, base).absolute(old).to_dict()
        changed = [f"{s}.{k}" for s in now for k in now[s] if saved.get(s, {}).get(k, now[s][k]) != now[s][k]]
        changed = [key for key in changed if key not in RESUMABLE_CHANGES]
        if changed:
            raise ConfigError(
                f"--resume: {', '.join(changed)} differ from the run in {out}; "
                "set them back or use another --out"
            )
    return dict(state)


def prepare_data(plan: TrainPlan, rate: int) -> TrainData:
    """The tracks decoded into the cache at ``rate`` Hz (SIGTERM stops it like Ctrl-C, keeping what
    was decoded) and the labels in the cache's track order."""
    config = plan.config
    try:
        with sigterm_interrupts():
            min_samples = round(config.data.min_track_s * rate)
            cache = build_cache(list(plan.files), rate, plan.paths.cache, min_samples, not plan.report)
    except KeyboardInterrupt:
        raise Interrupted(
            "interrupted while decoding into the cache; the next run keeps what was done"
        ) from None
    if plan.rank.main and cache.skipped:
        _warn_skipped(cache.skipped)
    if plan.report:
        size = 2 * int(cache.lengths.sum())
        print(f"mclx train: {len(cache.paths)} tracks, {size / 2**30:.2f} GiB of {rate} Hz audio in the "
              f"cache {plan.paths.cache / f'{rate}hz'}", file=sys.stderr)  # fmt: skip
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
