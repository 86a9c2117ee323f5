"""The network trained by `mclx train`: an encoder and the projection head the loss sees."""

from __future__ import annotations

from typing import Any

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
        """x (M, samples) segments; pool (views, M) averaging matrix -> (views, projection_dim)."""
        return self.head(pool @ self.encoder(x).float())


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
