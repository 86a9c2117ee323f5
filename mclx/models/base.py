"""What every encoder shares: a self-description that checkpoints and stores carry."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
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
    def from_args(cls, architecture: str, args: dict[str, Any], aggregator: str = "mean") -> EncoderSpec:
        """The spec of an encoder built with constructor ``args`` (which name its rate, window, dim).

        ``aggregator`` joins the arguments unless it is "mean": absent for mean pooling, so that
        the checkpoints and stores of encoders without one describe them as they always did."""
        if aggregator != "mean":
            args = {**args, "aggregator": aggregator}
        return cls(
            architecture, int(args["sample_rate"]), float(args["window_s"]), int(args["embedding_dim"]), args
        )

    @property
    def window_samples(self) -> int:
        return round(self.window_s * self.sample_rate)

    def args_json(self) -> str:
        return json.dumps(self.args, sort_keys=True)


class Encoder(nn.Module):
    """Base of the encoders: subclasses set ``spec`` and implement ``forward``; those that take an
    ``aggregator`` argument register it as the submodule ``aggregator`` (:mod:`mclx.models.aggregators`)."""

    spec: EncoderSpec

    @property
    def aggregator_module(self) -> nn.Module | None:
        """The submodule ``aggregator`` (its weights are the checkpoint's ``aggregator.*``); None: a
        sequence of windows is pooled by its mean."""
        return self._modules.get("aggregator")

    def aggregate(self, seq: Tensor) -> Tensor:
        """(n, K, D) window embeddings in time order -> (n, D): their mean, or the aggregator's."""
        module = self.aggregator_module
        return seq.mean(dim=1) if module is None else module(seq.float())

    def aggregate_windows(self, emb: np.ndarray) -> np.ndarray:
        """(K, D) float32 window embeddings of one file -> its (D,) float32 global embedding.

        The mean is taken in float64 on the host (as stores always had it); an aggregator runs on
        the encoder's device in float32."""
        module = self.aggregator_module
        if module is None:
            return emb.mean(axis=0, dtype=np.float64).astype(np.float32)
        device = next(module.parameters()).device
        with torch.inference_mode(), torch.autocast(device.type, enabled=False):
            seq = torch.from_numpy(np.ascontiguousarray(emb, dtype=np.float32)).to(device)[None]
            return module(seq)[0].float().cpu().numpy()

    def forward(self, x: Tensor) -> Tensor:  # pragma: no cover - abstract
        """(batch, samples) float audio in [-1, 1] -> (batch, embedding_dim)."""
        raise NotImplementedError
