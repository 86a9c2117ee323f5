"""The network trained by `mclx train`: an encoder and the projection head the loss sees."""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor, nn

from mclx.config import Config
from mclx.models import Encoder, build_encoder


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
        """x (M, samples) segments; pool (views, M) averaging matrix -> (views, projection_dim).

        With a sequence aggregator every view is K consecutive rows of x (a track input), which
        the encoder's aggregator reads in order instead of averaging them."""
        e = self.encoder(x).float()  # (M, D)
        if self.encoder.aggregator_module is None:
            return self.head(pool @ e)
        return self.head(self.encoder.aggregate(e.reshape(pool.shape[0], -1, e.shape[-1])))


class CPCHead(nn.Module):
    """Choi et al.'s CPC module: a GRU reads a track's first ``context`` segment embeddings and one
    linear map per step ahead predicts each of the next ``predictions`` embeddings."""

    def __init__(self, dim: int, context: int, predictions: int) -> None:
        super().__init__()
        self.context, self.predictions = context, predictions
        self.gru = nn.GRU(dim, dim, batch_first=True)
        self.ahead = nn.ModuleList(nn.Linear(dim, dim) for _ in range(predictions))

    def forward(self, seq: Tensor) -> Tensor:
        """(b, context + predictions, D) embeddings in time order -> (predictions, b, D) predictions."""
        _, h = self.gru(seq[:, : self.context])
        return torch.stack([w(h[-1]) for w in self.ahead])


class CPCModel(nn.Module):
    """Encoder + CPC head: (steps * b, samples) segments, view-major (one view per time step) ->
    ((steps * b, D) segment embeddings, (predictions, b, D) predictions of the last steps)."""

    def __init__(self, encoder: Encoder, head: CPCHead) -> None:
        super().__init__()
        self.encoder, self.head = encoder, head

    def forward(self, x: Tensor, pool: Tensor) -> tuple[Tensor, Tensor]:
        """x (steps * b, samples); pool: the layout's (steps * b, steps * b) identity, unused."""
        z = self.encoder(x).float()  # (steps * b, D), step-major
        steps = self.head.context + self.head.predictions
        seq = z.reshape(steps, -1, z.shape[-1]).transpose(0, 1)  # (b, steps, D)
        return z, self.head(seq)


TrainedModel = ContrastiveModel | CPCModel  # what `mclx train` optimises: an encoder and a head


def build_model(config: Config, sample_rate: int | None = None) -> TrainedModel:
    """The encoder of ``config.model`` with the head its loss sees (a projection MLP, or CPC's)."""
    m = config.model
    args: dict[str, Any] = {"embedding_dim": m.embedding_dim, "window_s": config.views.segment_s}
    if m.aggregator != "mean":
        args["aggregator"] = m.aggregator
    if m.channels:
        args["channels"] = m.channels
    if m.n_mels:
        args["n_mels"] = m.n_mels
    if m.hop_length:
        args["hop_length"] = m.hop_length
    if sample_rate is not None:
        args["sample_rate"] = sample_rate
    encoder = build_encoder(m.architecture, args)
    if config.loss.kind == "cpc":
        return CPCModel(
            encoder, CPCHead(m.embedding_dim, config.loss.cpc_context, config.loss.cpc_predictions)
        )
    return ContrastiveModel(encoder, ProjectionHead(m.embedding_dim, m.projection_dim))
