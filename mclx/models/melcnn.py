"""Mel-spectrogram 2-D CNN (the short-chunk CNN family used by Choi et al.)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch
import torchaudio
from torch import Tensor, nn

from mclx.models.aggregators import build_aggregator
from mclx.models.base import Encoder, EncoderSpec

DEFAULT_CHANNELS = (64, 64, 128, 128, 256, 256, 512)


class MelCNN(Encoder):
    """log-mel -> [conv3x3, BN, ReLU, maxpool 2x2] x len(channels) -> global max pool -> linear."""

    def __init__(
        self,
        sample_rate: int = 16000,
        window_s: float = 3.0,
        n_fft: int = 512,
        hop_length: int = 256,
        n_mels: int = 96,
        channels: Sequence[int] = DEFAULT_CHANNELS,
        embedding_dim: int = 512,
        aggregator: str = "mean",
    ) -> None:
        super().__init__()
        channels = tuple(int(c) for c in channels)
        args: dict[str, Any] = {
            "sample_rate": sample_rate,
            "window_s": window_s,
            "n_fft": n_fft,
            "hop_length": hop_length,
            "n_mels": n_mels,
            "channels": list(channels),
            "embedding_dim": embedding_dim,
        }
        self.spec = EncoderSpec.from_args("melcnn", args, aggregator)
        self.mel = torchaudio.transforms.MelSpectrogram(
            sample_rate=sample_rate, n_fft=n_fft, hop_length=hop_length, n_mels=n_mels
        )
        self.input_norm = nn.BatchNorm2d(1)
        layers: list[nn.Module] = []
        c_in = 1
        for c_out in channels:
            layers += [
                nn.Conv2d(c_in, c_out, kernel_size=3, padding=1, bias=False),
                nn.BatchNorm2d(c_out),
                nn.ReLU(inplace=True),
                nn.MaxPool2d(2, ceil_mode=True),
            ]
            c_in = c_out
        self.features = nn.Sequential(*layers)
        self.out = nn.Linear(c_in, embedding_dim)
        self.add_module("aggregator", build_aggregator(aggregator, embedding_dim))

    def forward(self, x: Tensor) -> Tensor:
        """(batch, samples) -> (batch, embedding_dim)."""
        with torch.autocast(device_type=x.device.type, enabled=False):
            spec = torch.log(self.mel(x.float()) + 1e-5)  # (batch, n_mels, frames)
        h = self.features(self.input_norm(spec.unsqueeze(1)))  # (batch, C, f, t)
        return self.out(h.amax(dim=(2, 3)))
