"""What every encoder shares: a self-description that checkpoints and stores carry."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

from torch import Tensor, nn


@dataclass(frozen=True)
class EncoderSpec:
    """Everything needed to rebuild an encoder: its architecture and constructor arguments.

    ``sample_rate``, ``window_s`` and ``embedding_dim`` are repeated here (they are also
    constructor arguments) because the embed pipeline derives window sizes from them.
    """

    architecture: str
    sample_rate: int
    window_s: float
    embedding_dim: int
    args: dict[str, Any] = field(default_factory=dict)

    @classmethod
    def from_args(cls, architecture: str, args: dict[str, Any]) -> EncoderSpec:
        """The spec of an encoder built with constructor ``args`` (which name its rate, window, dim)."""
        return cls(
            architecture, int(args["sample_rate"]), float(args["window_s"]), int(args["embedding_dim"]), args
        )

    @property
    def window_samples(self) -> int:
        return round(self.window_s * self.sample_rate)

    def args_json(self) -> str:
        return json.dumps(self.args, sort_keys=True)


class Encoder(nn.Module):
    """Base of the encoders: subclasses set ``spec`` and implement ``forward``."""

    spec: EncoderSpec

    def forward(self, x: Tensor) -> Tensor:  # pragma: no cover - abstract
        """(batch, samples) float audio in [-1, 1] -> (batch, embedding_dim)."""
        raise NotImplementedError
