"""Augmentations: seeded, batched, and doing what their names say."""

from __future__ import annotations

import math

import torch

from mclx.augment import augment, delay, filter_, gain, noise, polarity

RATE = 16000


def gen(seed: int = 0) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def tones(n: int = 8, seconds: float = 0.5) -> torch.Tensor:
    t = torch.arange(int(RATE * seconds)) / RATE
    return torch.stack([0.3 * torch.sin(2 * math.pi * (200 + 300 * i) * t) for i in range(n)])


def test_same_seed_same_result_and_shapes() -> None:
    x = tones()
    names = ["gain", "polarity", "noise", "filter", "delay"]
    a = augment(x, names, gen(1), 0.8, RATE)
    b = augment(x, names, gen(1), 0.8, RATE)
    c = augment(x, names, gen(2), 0.8, RATE)
    assert a.shape == x.shape and torch.equal(a, b) and not torch.equal(a, c)
    assert torch.isfinite(a).all()


def test_probability_zero_is_identity_and_one_changes_every_row() -> None:
    x = tones()
    for f in (gain, polarity, noise, delay):
        assert torch.equal(f(x, gen(), p=0.0), x)
        changed = (f(x, gen(), p=1.0) - x).abs().amax(dim=1) > 1e-6
        assert changed.all(), f.__name__
    torch.testing.assert_close(filter_(x, gen(), p=0.0), x)


def test_gain_scales_and_polarity_inverts() -> None:
    x = tones()
    g = gain(x, gen(), p=1.0, db=6.0)
    ratio = g.abs().amax(1) / x.abs().amax(1)
    assert ((ratio >= 10 ** (-6 / 20) - 1e-6) & (ratio <= 10 ** (6 / 20) + 1e-6)).all()
    torch.testing.assert_close(polarity(x, gen(), p=1.0), -x)


def test_noise_respects_the_snr_range() -> None:
    x = tones()
    y = noise(x, gen(), p=1.0, snr_db=(20.0, 20.0))
    snr = 10 * torch.log10(x.pow(2).mean(1) / (y - x).pow(2).mean(1))
    assert ((snr > 19) & (snr < 21)).all()


def test_filter_attenuates_one_side_of_the_cutoff() -> None:
    t = torch.arange(RATE) / RATE
    low, high = torch.sin(2 * math.pi * 100 * t), torch.sin(2 * math.pi * 6000 * t)
    x = (low + high).repeat(16, 1)
    y = filter_(x, gen(3), p=1.0, sample_rate=RATE)
    spec = torch.fft.rfft(y, dim=1).abs()
    ratio = spec[:, 100] / spec[:, 6000]  # 1 s at 16 kHz: bin k is k Hz
    assert ((ratio > 2) | (ratio < 0.5)).all()  # every row moved one tone against the other


def test_delay_adds_an_echo_of_an_impulse() -> None:
    x = torch.zeros(4, RATE)
    x[:, 100] = 1.0
    y = delay(x, gen(), p=1.0, sample_rate=RATE)
    for row in y:
        peaks = (row > 0.1).nonzero().flatten().tolist()
        assert peaks[0] == 100 and len(peaks) == 2
        assert 0.010 * RATE <= peaks[1] - 100 <= 0.100 * RATE


def test_the_segments_of_one_view_share_their_augmentation() -> None:
    # 3 views of 4 segments each (a "track" input): rows 0-3, 4-7, 8-11.
    x = torch.ones(12, 1600)
    groups = (torch.arange(3).repeat_interleave(4), 3)
    for seed in range(10):
        y = augment(x, ["gain", "polarity", "filter", "delay"], gen(seed), 0.5, RATE, groups)
        per_view = y.reshape(3, 4, -1)
        assert torch.allclose(per_view, per_view[:, :1].expand_as(per_view)), seed  # same within a view
    # Different views differ (for some seed), and a group per row draws like no groups at all.
    y = augment(x, ["gain"], gen(3), 1.0, RATE, groups)
    assert len({round(float(v), 6) for v in y[::4, 0]}) == 3
    names = ["gain", "polarity", "noise", "filter", "delay"]
    single = (torch.arange(12), 12)
    assert torch.equal(
        augment(tones(12), names, gen(5), 0.8, RATE, single), augment(tones(12), names, gen(5), 0.8, RATE)
    )
