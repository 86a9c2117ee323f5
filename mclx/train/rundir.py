"""A training run's directory: what `mclx train --out DIR` writes (``--resume`` reads it back in
:func:`mclx.train.plan.read_state`).

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

from mclx.config import Config, to_toml
from mclx.errors import TrainingDiverged, UsageError, one_line
from mclx.fileio import atomic_write_bytes
from mclx.locks import try_lock, unlock
from mclx.models.checkpoint import save_encoder
from mclx.train.model import TrainedModel

STATE = "state.pt"


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
