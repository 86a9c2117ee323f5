"""SampleCNN, CLMR's waveform encoder: stacked size-3 convolutions on raw samples."""

from __future__ import annotations

import itertools
from collections.abc import Sequence
from typing import Any

from torch import Tensor, nn

from mclx.models.aggregators import build_aggregator
from mclx.models.base import Encoder, EncoderSpec

DEFAULT_CHANNELS = (128, 128, 128, 256, 256, 256, 256, 256, 256, 512)


class SampleCNN(Encoder):
    """Strided conv (3, stride 3), then [conv3, BN, ReLU, maxpool 3] blocks, pooled over time.

    With the default 10 stages a 59,049-sample (3^10) window shrinks to one frame; other
    window lengths work too, their remaining frames are averaged.
    """

    def __init__(
        self,
        sample_rate: int = 22050,
        window_s: float = 59049 / 22050,
        channels: Sequence[int] = DEFAULT_CHANNELS,
        embedding_dim: int = 512,
        aggregator: str = "mean",
    ) -> None:
        super().__init__()
        channels = tuple(int(c) for c in channels)
        args: dict[str, Any] = {
            "sample_rate": sample_rate,
            "window_s": window_s,
            "channels": list(channels),
            "embedding_dim": embedding_dim,
        }
        self.spec = EncoderSpec.from_args("samplecnn", args, aggregator)
        layers: list[nn.Module] = [
            nn.Conv1d(1, channels[0], kernel_size=3, stride=3, bias=False),
            nn.BatchNorm1d(channels[0]),
            nn.ReLU(inplace=True),
        ]
        for c_in, c_out in itertools.pairwise(channels):
            layers += [
                nn.Conv1d(c_in, c_out, kernel_size=3, padding=1, bias=False),
                nn.BatchNorm1d(c_out),
                nn.ReLU(inplace=True),
                nn.MaxPool1d(3, ceil_mode=True),
            ]
        self.features = nn.Sequential(*layers)
        self.out = nn.Linear(channels[-1], embedding_dim)
        self.add_module("aggregator", build_aggregator(aggregator, embedding_dim))

    def forward(self, x: Tensor) -> Tensor:
        """(batch, samples) -> (batch, embedding_dim)."""
        h = self.features(x.unsqueeze(1))  # (batch, C, frames)
        return self.out(h.mean(dim=-1))
