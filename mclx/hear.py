"""The HEAR 2021 API over mclx encoders, so the HEAR evaluation kit can run mclx models.

``load_model(model_file_path, hop_s=0.05)`` takes a checkpoint path, a model name, or "" for
the default model. Audio given to the embedding functions is (n_sounds, n_samples) at the
model's ``sample_rate``.

- ``get_timestamp_embeddings``: regular timestamps every ``hop_s`` seconds (default 50 ms, the
  most HEAR suggests for event tasks), starting at 0 and not past the sound's end; each is the
  centre of a window of the model's length (zero-padded beyond the sound).
- ``get_scene_embeddings``: the mean over non-overlapping windows with the last one aligned to
  the end, which is exactly the ``global`` row `mclx embed` writes for the same audio.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from mclx.embed.windows import window_starts
from mclx.models.base import Encoder
from mclx.models.registry import load_model as _load

DEFAULT_HOP_S = 0.05


class HearModel(nn.Module):
    """An encoder plus the attributes the HEAR API asks for."""

    def __init__(self, encoder: Encoder, hop_s: float = DEFAULT_HOP_S) -> None:
        super().__init__()
        if hop_s <= 0:
            raise ValueError(f"hop_s must be positive, got {hop_s}")
        self.encoder = encoder.eval()
        spec = encoder.spec
        self.sample_rate = spec.sample_rate
        self.scene_embedding_size = spec.embedding_dim
        self.timestamp_embedding_size = spec.embedding_dim
        self.window = spec.window_samples
        self.hop_s = hop_s
        self.hop = max(1, round(hop_s * spec.sample_rate))

    def centred_windows(self, audio: Tensor) -> tuple[Tensor, Tensor]:
        """(n_sounds, n_samples) -> windows (n_sounds, n_frames, window) centred on 0, hop, 2 hop, ...
        up to the last sample, and their centres (n_frames,) in ms."""
        n = audio.shape[1]
        half = self.window // 2
        padded = torch.nn.functional.pad(audio, (half, self.window - half))
        centres = torch.arange(0, max(n, 1), self.hop, device=audio.device)
        frames = padded.unfold(1, self.window, self.hop)[:, : len(centres)]  # frame k starts at k*hop - half
        return frames, (centres.double().cpu() * 1000.0 / self.sample_rate).float()  # float32, as HEAR asks

    def embed_windows(self, frames: Tensor, batch_size: int = 64) -> Tensor:
        """(n_sounds, n_windows, window) -> (n_sounds, n_windows, dim).

        ``frames`` may be an overlapping view of the audio (unfold): only one batch of windows
        is copied out of it at a time, never all of them (60x the audio at a 3-s window and a
        50-ms hop)."""
        n, k, _ = frames.shape
        rows = torch.arange(n * k, device=frames.device)
        with torch.inference_mode():
            out = torch.cat(
                [self.encoder(frames[j // k, j % k]) for j in rows.split(batch_size)]
            )  # (n * k, dim), sound-major
        return out.reshape(n, k, -1).float()


def load_model(model_file_path: str = "", hop_s: float = DEFAULT_HOP_S) -> HearModel:
    """The model of ``model_file_path`` (a checkpoint, a model name, or "" for the default model)."""
    from mclx.devices import resolve_device

    return HearModel(_load(model_file_path or None).encoder, hop_s).to(resolve_device("auto"))


def _device(model: HearModel) -> torch.device:
    return next(model.encoder.parameters(), torch.empty(0)).device


def get_timestamp_embeddings(audio: Tensor, model: HearModel) -> tuple[Tensor, Tensor]:
    """(n_sounds, n_samples) -> (n_sounds, n_timestamps, dim) embeddings, (n_sounds, n_timestamps)
    float32 timestamps in ms."""
    frames, centres = model.centred_windows(audio.to(_device(model)).float())
    emb = model.embed_windows(frames)
    return emb, centres.unsqueeze(0).expand(audio.shape[0], -1).to(emb.device)


def get_scene_embeddings(audio: Tensor, model: HearModel) -> Tensor:
    """(n_sounds, n_samples) -> (n_sounds, dim): the mean over non-overlapping windows (or the
    encoder's aggregator over them), as `mclx embed`."""
    audio = audio.to(_device(model)).float()
    wins = window_starts(audio.shape[1], model.window, model.window)
    padded = torch.nn.functional.pad(audio, (0, max(0, model.window - audio.shape[1])))
    frames = torch.stack([padded[:, w.start : w.start + model.window] for w in wins], dim=1)
    emb = model.embed_windows(frames)
    with torch.inference_mode():
        return model.encoder.aggregate(emb).float()
