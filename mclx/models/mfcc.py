"""The MFCC baseline: a fixed (non-learned) encoder, the reference every learned model must beat."""

from __future__ import annotations

import torch
import torchaudio
from torch import Tensor

from mclx.models.base import Encoder, EncoderSpec


class MFCCEncoder(Encoder):
    """Per window: mean and standard deviation of MFCCs and of their deltas over time.

    embedding_dim = 4 * n_mfcc. Computed the same way everywhere, so numbers stay
    comparable across runs and machines.
    """

    def __init__(
        self,
        sample_rate: int = 16000,
        window_s: float = 3.0,
        n_mfcc: int = 20,
        n_mels: int = 40,
        n_fft: int = 400,
        hop_length: int = 160,
        embedding_dim: int | None = None,
    ) -> None:
        super().__init__()
        dim = 4 * n_mfcc
        if embedding_dim is not None and embedding_dim != dim:
            raise ValueError(f"mfcc embedding_dim must be 4 * n_mfcc = {dim}, got {embedding_dim}")
        self.spec = EncoderSpec.from_args(
            "mfcc",
            {
                "sample_rate": sample_rate,
                "window_s": window_s,
                "n_mfcc": n_mfcc,
                "n_mels": n_mels,
                "n_fft": n_fft,
                "hop_length": hop_length,
                "embedding_dim": dim,
            },
        )
        self.mfcc = torchaudio.transforms.MFCC(
            sample_rate=sample_rate,
            n_mfcc=n_mfcc,
            melkwargs={"n_fft": n_fft, "hop_length": hop_length, "n_mels": n_mels},
        )
        self.deltas = torchaudio.transforms.ComputeDeltas()

    def forward(self, x: Tensor) -> Tensor:
        """(batch, samples) -> (batch, 4 * n_mfcc)."""
        # A channel axis keeps the dB floor (top_db) per clip: on (batch, samples) torchaudio
        # would take the maximum over the whole batch, making rows depend on each other.
        # The baseline is computed the same way on every device: never under bf16 autocast.
        with torch.autocast(device_type=x.device.type, enabled=False):
            coeffs = self.mfcc(x.float().unsqueeze(1)).squeeze(1)  # (batch, n_mfcc, frames)
            delta = self.deltas(coeffs)
            feats = [coeffs.mean(-1), coeffs.std(-1), delta.mean(-1), delta.std(-1)]
            return torch.cat(feats, dim=-1)
