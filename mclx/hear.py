"""The HEAR 2021 API over mclx encoders, so the HEAR evaluation kit can run mclx models.

``load_model(model_file_path)`` takes a checkpoint path, a model name, or "" for the
default model. Audio given to the embedding functions is (n_sounds, n_samples) at the
model's ``sample_rate``; windows and pooling follow the embed pipeline's rule.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from mclx.audio import window_starts
from mclx.models.base import Encoder
from mclx.models.registry import load_model as _load


class HearModel(nn.Module):
    """An encoder plus the attributes the HEAR API asks for."""

    def __init__(self, encoder: Encoder, hop_s: float | None = None) -> None:
        super().__init__()
        self.encoder = encoder.eval()
        spec = encoder.spec
        self.sample_rate = spec.sample_rate
        self.scene_embedding_size = spec.embedding_dim
        self.timestamp_embedding_size = spec.embedding_dim
        self.window = spec.window_samples
        self.hop = round((hop_s or spec.window_s / 4) * spec.sample_rate)

    def windows(self, audio: Tensor) -> tuple[Tensor, Tensor]:
        """(n_sounds, n_samples) -> windows (n_sounds, n_windows, window), centres (n_windows,) in ms."""
        wins = window_starts(audio.shape[1], self.window, self.hop)
        padded = torch.nn.functional.pad(audio, (0, max(0, self.window - audio.shape[1])))
        frames = torch.stack([padded[:, w.start : w.start + self.window] for w in wins], dim=1)
        centres = torch.tensor([(w.start + w.end) / 2 / self.sample_rate * 1000 for w in wins])
        return frames, centres

    def embed_windows(self, frames: Tensor, batch_size: int = 64) -> Tensor:
        """(n_sounds, n_windows, window) -> (n_sounds, n_windows, dim)."""
        n, k, w = frames.shape
        flat = frames.reshape(n * k, w)
        with torch.inference_mode():
            out = torch.cat([self.encoder(flat[i : i + batch_size]) for i in range(0, n * k, batch_size)])
        return out.reshape(n, k, -1).float()


def load_model(model_file_path: str = "") -> HearModel:
    device = "cuda" if torch.cuda.is_available() else "cpu"
    return HearModel(_load(model_file_path or None).encoder).to(device)


def get_timestamp_embeddings(audio: Tensor, model: HearModel) -> tuple[Tensor, Tensor]:
    """(n_sounds, n_samples) -> (n_sounds, n_timestamps, dim) embeddings, (n_sounds, n_timestamps) ms."""
    device = next(model.encoder.parameters(), torch.empty(0)).device
    frames, centres = model.windows(audio.to(device).float())
    emb = model.embed_windows(frames)
    return emb, centres.unsqueeze(0).expand(audio.shape[0], -1).to(emb.device)


def get_scene_embeddings(audio: Tensor, model: HearModel) -> Tensor:
    """(n_sounds, n_samples) -> (n_sounds, dim): the mean over non-overlapping windows, as `mclx embed`."""
    device = next(model.encoder.parameters(), torch.empty(0)).device
    audio = audio.to(device).float()
    wins = window_starts(audio.shape[1], model.window, model.window)
    padded = torch.nn.functional.pad(audio, (0, max(0, model.window - audio.shape[1])))
    frames = torch.stack([padded[:, w.start : w.start + model.window] for w in wins], dim=1)
    return model.embed_windows(frames).mean(dim=1)
