"""Batched audio augmentations that run on the training device.

Each takes a (batch, samples) tensor and a seeded ``torch.Generator`` on the same device,
draws its parameters for every group of rows at once, and applies itself to a random subset of
the groups (probability ``p`` each). A group is one view: a single row, or the K segments that
are pooled into one view (``groups``), which then share one gain, filter, echo and noise level.
No Python loop over clips.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence

import torch
from torch import Tensor

# (group of each row (N,) int64 on the rows' device, number of groups G); None: a group per row.
Groups = tuple[Tensor, int] | None


def _rand(x: Tensor, groups: Groups, gen: torch.Generator) -> Tensor:
    """(N,) uniform [0, 1) draws, one per group, repeated over its rows."""
    if groups is None:
        return torch.rand(len(x), generator=gen, device=x.device)
    index, count = groups
    return torch.rand(count, generator=gen, device=x.device)[index]


def _uniform(x: Tensor, lo: float, hi: float, gen: torch.Generator, groups: Groups) -> Tensor:
    """(N, 1) draws in [lo, hi), one per group."""
    return (lo + (hi - lo) * _rand(x, groups, gen)).unsqueeze(1)


def _chosen(x: Tensor, p: float, gen: torch.Generator, groups: Groups) -> Tensor:
    """(N, 1) float mask: 1 for the rows of the groups an augmentation applies to."""
    return (_rand(x, groups, gen) < p).float().unsqueeze(1)


def gain(x: Tensor, gen: torch.Generator, p: float = 0.8, db: float = 6.0, groups: Groups = None) -> Tensor:
    """Random gain in [-db, +db] dB."""
    g = 10 ** (_uniform(x, -db, db, gen, groups) / 20)
    m = _chosen(x, p, gen, groups)
    return x * (m * g + (1 - m))


def polarity(x: Tensor, gen: torch.Generator, p: float = 0.8, groups: Groups = None) -> Tensor:
    """Invert the waveform (inaudible alone; breaks waveform encoders' shortcuts)."""
    return x * (1 - 2 * _chosen(x, p, gen, groups))


def noise(
    x: Tensor,
    gen: torch.Generator,
    p: float = 0.8,
    snr_db: tuple[float, float] = (15.0, 40.0),
    groups: Groups = None,
) -> Tensor:
    """White noise at a random signal-to-noise ratio (relative to each row's level)."""
    rms = x.pow(2).mean(dim=1, keepdim=True).sqrt().clamp(min=1e-5)
    snr = _uniform(x, *snr_db, gen, groups)
    n = torch.randn(x.shape, generator=gen, device=x.device, dtype=x.dtype)
    return x + _chosen(x, p, gen, groups) * n * rms / 10 ** (snr / 20)


def filter_(
    x: Tensor, gen: torch.Generator, p: float = 0.8, sample_rate: int = 16000, groups: Groups = None
) -> Tensor:
    """A random low-pass or high-pass (soft cut-off, in the frequency domain)."""
    t = x.shape[1]
    spec = torch.fft.rfft(x, dim=1)
    freqs = torch.fft.rfftfreq(t, d=1 / sample_rate).to(x.device)  # (bins,)
    log_cut = _uniform(x, math.log(200.0), math.log(0.45 * sample_rate), gen, groups)
    slope = (torch.log(freqs.clamp(min=1.0)).unsqueeze(0) - log_cut) * 6.0  # (n, bins)
    lowpass = _rand(x, groups, gen).unsqueeze(1) < 0.5
    response = torch.where(lowpass, torch.sigmoid(-slope), torch.sigmoid(slope))
    m = _chosen(x, p, gen, groups)
    filtered = torch.fft.irfft(spec * response, n=t, dim=1)
    return m * filtered + (1 - m) * x


def delay(
    x: Tensor, gen: torch.Generator, p: float = 0.8, sample_rate: int = 16000, groups: Groups = None
) -> Tensor:
    """Add one echo: a copy delayed by 10-100 ms at 0.2-0.6 of the level."""
    t = x.shape[1]
    d = (_uniform(x, 0.010, 0.100, gen, groups) * sample_rate).long()  # (n, 1)
    level = _uniform(x, 0.2, 0.6, gen, groups)
    idx = torch.arange(t, device=x.device).unsqueeze(0) - d  # (n, t)
    echo = torch.gather(x, 1, idx.clamp(min=0)) * (idx >= 0)
    return x + _chosen(x, p, gen, groups) * level * echo


Augmenter = Callable[[Tensor, torch.Generator], Tensor]


def chain(names: Sequence[str], p: float, sample_rate: int, groups: Groups = None) -> Augmenter:
    """The named augmentations as one function, resolved once: (batch, samples), generator ->
    (batch, samples), applied in the order named. ``groups``: rows drawn together (the segments
    of one view); None: every row alone. An unknown name is refused here, not at the first step."""
    steps: list[Callable[[Tensor, torch.Generator], Tensor]] = []
    for name in names:
        if name == "gain":
            steps.append(lambda x, g: gain(x, g, p, groups=groups))
        elif name == "polarity":
            steps.append(lambda x, g: polarity(x, g, p, groups=groups))
        elif name == "noise":
            steps.append(lambda x, g: noise(x, g, p, groups=groups))
        elif name == "filter":
            steps.append(lambda x, g: filter_(x, g, p, sample_rate, groups=groups))
        elif name == "delay":
            steps.append(lambda x, g: delay(x, g, p, sample_rate, groups=groups))
        else:
            raise ValueError(f"unknown augmentation {name!r}")

    def apply(x: Tensor, gen: torch.Generator) -> Tensor:
        for step in steps:
            x = step(x, gen)
        return x

    return apply


def augment(
    x: Tensor,
    names: Sequence[str],
    gen: torch.Generator,
    p: float,
    sample_rate: int,
    groups: Groups = None,
) -> Tensor:
    """Apply the named augmentations in a fixed order: (batch, samples) -> (batch, samples)."""
    return chain(names, p, sample_rate, groups)(x, gen)
