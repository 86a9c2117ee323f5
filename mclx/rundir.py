"""A training run's directory: what `mclx train --out DIR` writes and `--resume` reads.

``state.pt`` (model, optimiser, step, resolved config, tracks digest), ``encoder.safetensors``,
``snapshots/step-NNNNNN.safetensors``, ``metrics.jsonl``, ``config.toml`` (the resolved config)
and ``.lock`` (one training process writes to a directory at a time). Every file is replaced
atomically: a run killed at any instant leaves the last whole checkpoint.
"""

from __future__ import annotations

import contextlib
import io
import json
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from mclx.config import Config, from_dict, resolve_paths, to_toml
from mclx.contrastive import TrainedModel
from mclx.errors import ConfigError, TrainingDiverged, UsageError, WeightsError, one_line
from mclx.fileio import atomic_write_bytes
from mclx.locks import try_lock, unlock
from mclx.models.checkpoint import save_encoder

STATE = "state.pt"
# Keys a resumed run may change; any other difference would silently train another model.
RESUMABLE_CHANGES = {"train.steps", "train.checkpoint_every", "train.log_every", "train.out",
                     "train.device", "train.compile", "train.precision", "data.cache",
                     "train.snapshot_every"}  # fmt: skip


@dataclass(frozen=True)
class Checkpointer:
    """Writes the run's state, encoder and snapshots (rank 0 only; the other ranks write nothing).

    ``config``: the resolved configuration, recorded in the state, the encoder's metadata and
    ``config.toml`` alike; ``identity``: the state's record of the config and tracks digest."""

    out: Path
    config: Config
    identity: dict[str, str]
    main: bool

    def write_config(self) -> None:
        if self.main:
            atomic_write_bytes(self.out / "config.toml", to_toml(self.config).encode())

    def save(self, model: TrainedModel, optimizer: torch.optim.Optimizer, step: int) -> None:
        """Training state and the encoder, each written atomically."""
        if not self.main:
            return
        if not all(bool(torch.isfinite(p).all()) for p in model.parameters()):
            raise TrainingDiverged(
                f"the weights became non-finite by step {step}; the last checkpoint in {self.out} stands. "
                "Lower train.lr or set train.precision = 'fp32'"
            )
        buf = io.BytesIO()
        state = {
            "model": model.state_dict(),
            "optimizer": optimizer.state_dict(),
            "step": step,
            **self.identity,
        }
        torch.save(state, buf)
        atomic_write_bytes(self.out / STATE, buf.getvalue())
        save_encoder(self.out / "encoder.safetensors", model.encoder, training_config=self.config.to_dict())

    def snapshot(self, model: TrainedModel, step: int) -> None:
        """Keep the encoder of step ``step`` in ``DIR/snapshots/`` (for learning curves)."""
        if self.main:
            (self.out / "snapshots").mkdir(exist_ok=True)
            save_encoder(self.out / "snapshots" / f"step-{step:06d}.safetensors", model.encoder,
                         training_config=self.config.to_dict())  # fmt: skip


@dataclass(frozen=True)
class MetricsLog:
    """``metrics.jsonl``: one JSON object per logging step (rank 0 only)."""

    path: Path
    main: bool

    def start(self, step: int) -> None:
        """A fresh log, or, when resuming at ``step``, its rows up to it (a killed run logged more)."""
        if not self.main:
            return
        if step == 0:
            self.path.unlink(missing_ok=True)
        elif self.path.exists():
            kept = []
            for line in (x for x in self.path.read_text().splitlines() if x.strip()):
                with contextlib.suppress(ValueError, KeyError, TypeError):
                    if int(json.loads(line)["step"]) <= step:
                        kept.append(line + "\n")
            atomic_write_bytes(self.path, "".join(kept).encode())

    def write(self, record: dict[str, Any]) -> None:
        if self.main:
            with open(self.path, "a") as f:
                f.write(json.dumps(record) + "\n")


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
            saved = resolve_paths(from_dict(saved), base).to_dict()
        changed = [f"{s}.{k}" for s in now for k in now[s] if saved.get(s, {}).get(k, now[s][k]) != now[s][k]]
        changed = [key for key in changed if key not in RESUMABLE_CHANGES]
        if changed:
            raise ConfigError(
                f"--resume: {', '.join(changed)} differ from the run in {out}; "
                "set them back or use another --out"
            )
    return dict(state)


@contextlib.contextmanager
def exclusive(out: Path) -> Iterator[None]:
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
