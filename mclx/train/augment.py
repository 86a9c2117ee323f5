"""Batched audio augmentations that run on the training device.

Each takes a (batch, samples) tensor and a seeded ``torch.Generator`` on the same device,
draws its parameters for every group of rows at once, and applies itself to a random subset of
the groups (probability ``p`` each). A group is one view: a single row, or the K segments that
are pooled into one view (``groups``), which then share one gain, filter, echo, noise level,
pitch shift and room. No Python loop over clips (``pitch`` loops over its few semitone values).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence

import torch
import torch.nn.functional as F
import torchaudio.functional as AF
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


# pitch: whole semitones in [-PITCH_SEMITONES, +PITCH_SEMITONES], never 0 (a chosen view moves).
PITCH_SEMITONES = 4
_PITCH_N_FFT = 1024
_PITCH_HOP = 256


def _shift_rows(x: Tensor, semitones: int) -> Tensor:
    """(n, samples) float -> (n, samples): every row up (or down) by the same whole semitones.

    A phase vocoder stretches the rows to ``2 ** (semitones / 12)`` times their duration at the
    same pitch, then band-limited (FFT) resampling brings them back to their length, which scales
    every frequency by that factor. Resampling down to fewer samples drops the bins above the new
    Nyquist, so an upward shift does not alias.

    The vocoder's phases are locked to the nearest spectral peak (within 2 bins, Laroche and
    Dolson's identity locking): without it the bins of one partial drift apart in phase wherever
    a frame pair is repeated, and a stretched tone lost 6 dB. Noise-like content still loses up to
    ~3 dB (its frames overlap-add incoherently)."""
    t = x.shape[1]
    if t < _PITCH_N_FFT:  # shorter than a frame: shift it padded with silence, then cut
        return _shift_rows(F.pad(x, (0, _PITCH_N_FFT - t)), semitones)[:, :t]
    factor = 2.0 ** (semitones / 12)
    window = torch.hann_window(_PITCH_N_FFT, device=x.device, dtype=x.dtype)
    spec = torch.stft(x, _PITCH_N_FFT, _PITCH_HOP, window=window, return_complex=True)  # (n, bins, frames)
    n, bins, frames = spec.shape
    advance = torch.linspace(0, math.pi * _PITCH_HOP, bins, device=x.device, dtype=x.dtype)
    stretched = AF.phase_vocoder(spec, 1 / factor, advance.unsqueeze(1))  # (n, bins, frames')
    out_frames = stretched.shape[2]
    source = torch.arange(0, frames, 1 / factor, device=x.device, dtype=x.dtype)[:out_frames].long()
    analysed = spec.index_select(2, source).angle()  # (n, bins, frames'): phase of the frame read
    magnitude = stretched.abs()
    columns = magnitude.transpose(1, 2).reshape(n * out_frames, 1, bins)
    _, peak = F.max_pool1d(columns, 5, stride=1, padding=2, return_indices=True)
    peak = peak.reshape(n, out_frames, bins).transpose(1, 2)  # (n, bins, frames'): each bin's peak
    phase = stretched.angle().gather(1, peak) + analysed - analysed.gather(1, peak)
    longer = round(t * factor)
    y = torch.istft(torch.polar(magnitude, phase), _PITCH_N_FFT, _PITCH_HOP, window=window, length=longer)
    kept = torch.fft.rfft(y, dim=1)[:, : t // 2 + 1]  # down: the bins above the new Nyquist go
    # irfft zero-pads (up) and divides by t, not by the longer length: keep each tone's amplitude.
    return torch.fft.irfft(kept, n=t, dim=1) * (t / longer)


def pitch(x: Tensor, gen: torch.Generator, p: float = 0.8, groups: Groups = None) -> Tensor:
    """Shift the pitch by a whole number of semitones, at most ``PITCH_SEMITONES`` up or down
    (0 is never drawn), keeping the duration: (batch, samples) -> (batch, samples).

    Rows are gathered by their shift, so the cost is one phase vocoder per distinct shift (at
    most 8), not per clip. Onsets smear a little (1024-sample STFT frames)."""
    k = (_rand(x, groups, gen) * 2 * PITCH_SEMITONES).long().clamp(max=2 * PITCH_SEMITONES - 1)
    semitones = torch.where(k < PITCH_SEMITONES, k - PITCH_SEMITONES, k - PITCH_SEMITONES + 1)  # (N,)
    shift = semitones * _chosen(x, p, gen, groups).squeeze(1).long()  # 0: left alone
    out = x.clone()
    work = x.float()
    for s in torch.unique(shift).tolist():  # one sync: the distinct shifts
        if s == 0:
            continue
        rows = (shift == s).nonzero().squeeze(1)
        out[rows] = _shift_rows(work[rows], int(s)).to(x.dtype)
    return out


# reverb: RT60 and wet share drawn per view in these ranges.
REVERB_RT60_S = (0.2, 1.0)
REVERB_WET = (0.2, 0.6)


def room_impulse(rt60_s: Tensor, sample_rate: int, length: int, generator: torch.Generator) -> Tensor:
    """Synthetic room impulse responses: (rooms,) RT60s in seconds -> (rooms, length) float32.

    Gaussian noise under an exponential envelope that falls by 60 dB at each room's RT60 (the
    late reverberation of a diffuse room), on the generator's device, each normalised to unit
    energy so that convolving with it keeps a broadband signal's level."""
    t = torch.arange(length, device=rt60_s.device, dtype=torch.float32) / sample_rate  # (length,)
    decay = 3 * math.log(10) / rt60_s.float().unsqueeze(1)  # amplitude e^(-decay t): -60 dB at RT60
    noise = torch.randn(len(rt60_s), length, generator=generator, device=rt60_s.device)
    ir = noise * torch.exp(-decay * t)
    return ir / ir.norm(dim=1, keepdim=True).clamp(min=1e-12)


def reverb(
    x: Tensor, gen: torch.Generator, p: float = 0.8, sample_rate: int = 16000, groups: Groups = None
) -> Tensor:
    """Put the views in a synthetic room (``room_impulse``): (batch, samples) -> (batch, samples).

    RT60 in ``REVERB_RT60_S`` and wet share in ``REVERB_WET`` are drawn per view; the mix is
    equal-power (``sqrt(1 - w) dry + sqrt(w) wet``), so a broadband signal keeps its level (within
    ~1 dB); a few steady tones can move by several dB, as a real room's modes colour them.
    One FFT convolution for the whole batch, the tail past the input's end cut off."""
    n, t = x.shape
    index, count = groups if groups is not None else (torch.arange(n, device=x.device), n)
    lo, hi = REVERB_RT60_S
    rt60 = lo + (hi - lo) * torch.rand(count, generator=gen, device=x.device)  # (G,): one room per view
    wet = _uniform(x, *REVERB_WET, gen, groups)  # (N, 1)
    m = _chosen(x, p, gen, groups)
    length = min(t, math.ceil(REVERB_RT60_S[1] * sample_rate))
    ir = room_impulse(rt60, sample_rate, length, gen)  # (G, length)
    size = 1 << (t + length - 2).bit_length()  # a power of two >= t + length - 1: no wrap-around
    spec = torch.fft.rfft(x.float(), n=size, dim=1) * torch.fft.rfft(ir, n=size, dim=1)[index]
    wetted = torch.fft.irfft(spec, n=size, dim=1)[:, :t].to(x.dtype)
    y = (1 - wet).sqrt() * x + wet.sqrt() * wetted
    return torch.where(m > 0, y, x)


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
        elif name == "pitch":
            steps.append(lambda x, g: pitch(x, g, p, groups=groups))
        elif name == "reverb":
            steps.append(lambda x, g: reverb(x, g, p, sample_rate, groups=groups))
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
