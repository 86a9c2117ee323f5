"""Sequence aggregators: how a track's window embeddings, in time order, become one embedding.

"mean" (no module) is Siamese pooling; "gru" and "transformer" are Choi et al.'s sequence models
over a track's segments. An aggregator belongs to its encoder: its weights are saved in the
encoder's checkpoint (keys ``aggregator.*``) and `mclx embed` uses it for a file's global row.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor, nn

from mclx.errors import ConfigError

KINDS = ("mean", "gru", "transformer")


class GRUAggregator(nn.Module):
    """A one-layer GRU read in time order; the embedding is its last hidden state."""

    def __init__(self, dim: int) -> None:
        super().__init__()
        self.gru = nn.GRU(dim, dim, batch_first=True)

    def forward(self, seq: Tensor) -> Tensor:
        """(n, K, D) -> (n, D)."""
        _, h = self.gru(seq)
        return h[-1]


class TransformerAggregator(nn.Module):
    """Two self-attention layers over the sequence with sinusoidal positions, then the mean.

    Dropout is 0: a training step must be a function of its seed alone (resumed = uninterrupted).
    """

    def __init__(self, dim: int, layers: int = 2) -> None:
        super().__init__()
        heads = next(h for h in (8, 4, 2, 1) if dim % h == 0)
        layer = nn.TransformerEncoderLayer(dim, heads, dim_feedforward=2 * dim, dropout=0.0, batch_first=True)
        self.layers = nn.TransformerEncoder(layer, layers, enable_nested_tensor=False)
        self.dim = dim

    def positions(self, k: int, device: torch.device) -> Tensor:
        """(K, D) sinusoidal position codes."""
        pos = torch.arange(k, device=device, dtype=torch.float32)[:, None]
        freq = torch.exp(torch.arange(0, self.dim, 2, device=device) * (-math.log(10000.0) / self.dim))
        codes = torch.zeros(k, self.dim, device=device)
        codes[:, 0::2] = torch.sin(pos * freq)
        codes[:, 1::2] = torch.cos(pos * freq[: self.dim // 2])
        return codes

    def forward(self, seq: Tensor) -> Tensor:
        """(n, K, D) -> (n, D)."""
        return self.layers(seq + self.positions(seq.shape[1], seq.device)).mean(dim=1)


def build_aggregator(kind: str, dim: int) -> nn.Module | None:
    """The aggregator module of ``kind`` over ``dim``-wide embeddings; None for "mean"."""
    if kind == "mean":
        return None
    if kind == "gru":
        return GRUAggregator(dim)
    if kind == "transformer":
        return TransformerAggregator(dim)
    raise ConfigError(f"unknown aggregator {kind!r} (known: {', '.join(KINDS)})")
