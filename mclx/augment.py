"""Batched audio augmentations that run on the training device.

Each takes a (batch, samples) tensor and a seeded ``torch.Generator`` on the same device,
draws its parameters for every row at once, and applies itself to a random subset of rows
(probability ``p`` each). No Python loop over clips.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
from torch import Tensor


def _uniform(n: int, lo: float, hi: float, gen: torch.Generator, device: torch.device) -> Tensor:
    return lo + (hi - lo) * torch.rand(n, generator=gen, device=device)


def _chosen(n: int, p: float, gen: torch.Generator, device: torch.device) -> Tensor:
    """(n, 1) float mask: 1 for the rows an augmentation applies to."""
    return (torch.rand(n, generator=gen, device=device) < p).float().unsqueeze(1)


def gain(x: Tensor, gen: torch.Generator, p: float = 0.8, db: float = 6.0) -> Tensor:
    """Random gain in [-db, +db] dB."""
    g = 10 ** (_uniform(len(x), -db, db, gen, x.device) / 20).unsqueeze(1)
    m = _chosen(len(x), p, gen, x.device)
    return x * (m * g + (1 - m))


def polarity(x: Tensor, gen: torch.Generator, p: float = 0.8) -> Tensor:
    """Invert the waveform (inaudible alone; breaks waveform encoders' shortcuts)."""
    return x * (1 - 2 * _chosen(len(x), p, gen, x.device))


def noise(
    x: Tensor, gen: torch.Generator, p: float = 0.8, snr_db: tuple[float, float] = (15.0, 40.0)
) -> Tensor:
    """White noise at a random signal-to-noise ratio."""
    rms = x.pow(2).mean(dim=1, keepdim=True).sqrt().clamp(min=1e-5)
    snr = _uniform(len(x), *snr_db, gen, x.device).unsqueeze(1)
    n = torch.randn(x.shape, generator=gen, device=x.device, dtype=x.dtype)
    return x + _chosen(len(x), p, gen, x.device) * n * rms / 10 ** (snr / 20)


def filter_(x: Tensor, gen: torch.Generator, p: float = 0.8, sample_rate: int = 16000) -> Tensor:
    """A random low-pass or high-pass (soft cut-off, in the frequency domain)."""
    n, t = x.shape
    spec = torch.fft.rfft(x, dim=1)
    freqs = torch.fft.rfftfreq(t, d=1 / sample_rate).to(x.device)  # (bins,)
    log_cut = _uniform(n, math.log(200.0), math.log(0.45 * sample_rate), gen, x.device).unsqueeze(1)
    slope = (torch.log(freqs.clamp(min=1.0)).unsqueeze(0) - log_cut) * 6.0  # (n, bins)
    lowpass = torch.rand(n, generator=gen, device=x.device).unsqueeze(1) < 0.5
    response = torch.where(lowpass, torch.sigmoid(-slope), torch.sigmoid(slope))
    m = _chosen(n, p, gen, x.device)
    filtered = torch.fft.irfft(spec * response, n=t, dim=1)
    return m * filtered + (1 - m) * x


def delay(x: Tensor, gen: torch.Generator, p: float = 0.8, sample_rate: int = 16000) -> Tensor:
    """Add one echo: a copy delayed by 10-100 ms at 0.2-0.6 of the level."""
    n, t = x.shape
    d = (_uniform(n, 0.010, 0.100, gen, x.device) * sample_rate).long().unsqueeze(1)  # (n, 1)
    level = _uniform(n, 0.2, 0.6, gen, x.device).unsqueeze(1)
    idx = torch.arange(t, device=x.device).unsqueeze(0) - d  # (n, t)
    echo = torch.gather(x, 1, idx.clamp(min=0)) * (idx >= 0)
    return x + _chosen(n, p, gen, x.device) * level * echo


def augment(x: Tensor, names: Sequence[str], gen: torch.Generator, p: float, sample_rate: int) -> Tensor:
    """Apply the named augmentations in a fixed order: (batch, samples) -> (batch, samples)."""
    for name in names:
        if name == "gain":
            x = gain(x, gen, p)
        elif name == "polarity":
            x = polarity(x, gen, p)
        elif name == "noise":
            x = noise(x, gen, p)
        elif name == "filter":
            x = filter_(x, gen, p, sample_rate)
        elif name == "delay":
            x = delay(x, gen, p, sample_rate)
        else:
            raise ValueError(f"unknown augmentation {name!r}")
    return x
