"""Augmentations: seeded, batched, and doing what their names say."""

from __future__ import annotations

import math

import torch

from mclx.train.augment import (
    PITCH_SEMITONES,
    augment,
    delay,
    filter_,
    gain,
    noise,
    pitch,
    polarity,
    reverb,
    room_impulse,
)

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


def peak_hz(x: torch.Tensor) -> torch.Tensor:
    """(rows, samples) -> (rows,) frequency of each row's strongest bin."""
    return torch.fft.rfft(x, dim=1).abs().argmax(dim=1) * RATE / x.shape[1]


def test_pitch_moves_a_tone_by_its_semitones_and_keeps_the_level() -> None:
    t = torch.arange(RATE) / RATE  # 1 s: bins are 1 Hz apart
    x = 0.3 * torch.sin(2 * math.pi * 440 * t).repeat(64, 1)
    y = pitch(x, gen(), p=1.0)
    assert y.shape == x.shape and y.dtype == x.dtype
    semitones = 12 * torch.log2(peak_hz(y) / 440)
    steps = semitones.round()
    assert (semitones - steps).abs().max() < 0.05  # whole semitones
    assert steps.abs().min() >= 1 and steps.abs().max() <= PITCH_SEMITONES
    assert len(set(steps.tolist())) > 4  # both directions, several sizes
    middle = y[:, 2000:-2000]  # away from the edges' frames
    level = middle.pow(2).mean(1).sqrt() / (0.3 / math.sqrt(2))
    assert ((level > 0.85) & (level < 1.15)).all()


def test_pitch_an_octave_up_puts_440_hz_at_880_hz() -> None:
    import mclx.train.augment as a

    t = torch.arange(RATE) / RATE
    x = 0.3 * torch.sin(2 * math.pi * 440 * t).repeat(2, 1)
    up = a._shift_rows(x, 12)
    down = a._shift_rows(x, -12)
    assert peak_hz(up).tolist() == [880.0, 880.0] and peak_hz(down).tolist() == [220.0, 220.0]
    spec = torch.fft.rfft(up[0]).abs()
    assert spec[880] > 100 * spec[440]  # the original tone is gone, not mixed in


def test_pitch_shares_the_shift_within_a_view_and_skips_unchosen_rows() -> None:
    t = torch.arange(RATE // 2) / RATE
    x = 0.3 * torch.sin(2 * math.pi * 440 * t).repeat(12, 1)
    groups = (torch.arange(3).repeat_interleave(4), 3)
    shifts = set()
    for seed in range(6):
        y = pitch(x, gen(seed), p=0.5, groups=groups)
        per_view = y.reshape(3, 4, -1)
        assert torch.equal(per_view, per_view[:, :1].expand_as(per_view)), seed
        for v in per_view[:, 0]:
            shifts.add(round(12 * math.log2(float(peak_hz(v.unsqueeze(0))[0]) / 440)))
    assert 0 in shifts and len(shifts) > 3  # p = 0.5: some views untouched, others shifted
    assert torch.equal(pitch(x, gen(), p=0.0), x)


def test_room_impulse_falls_60_db_at_its_rt60() -> None:
    rt60 = torch.tensor([0.3, 0.5, 0.8])
    ir = room_impulse(rt60, RATE, RATE, gen())
    assert ir.shape == (3, RATE) and ir.dtype == torch.float32
    torch.testing.assert_close(ir.norm(dim=1), torch.ones(3))
    window = int(0.02 * RATE)
    start = int(0.05 * RATE)

    def level_db(row: torch.Tensor, at: int) -> float:
        return 10 * math.log10(float(row[at : at + window].pow(2).mean()))

    for row, r in zip(ir, rt60.tolist(), strict=True):
        drop = level_db(row, start) - level_db(row, start + int(r * RATE))
        assert 57 < drop < 63, (r, drop)


def test_reverb_lengthens_the_decay_after_a_click_and_keeps_the_level() -> None:
    x = torch.zeros(8, RATE)
    x[:, 100] = 1.0
    y = reverb(x, gen(), p=1.0, sample_rate=RATE)
    assert y.shape == x.shape and y.dtype == x.dtype
    tail = y[:, 100 + int(0.05 * RATE) : 100 + int(0.15 * RATE)]  # 50-150 ms after the click
    assert (tail.pow(2).sum(1) > 1e-3 * y.pow(2).sum(1)).all()
    assert y[:, :100].abs().max() < 1e-6  # causal: nothing before the click (FFT rounding aside)
    # A broadband signal keeps its level (a few tones may not: the room colours them, by design).
    hiss = 0.1 * torch.randn(32, 2 * RATE, generator=gen(1))
    wet = reverb(hiss, gen(2), p=1.0, sample_rate=RATE)
    ratio_db = 10 * torch.log10(wet.pow(2).mean(1) / hiss.pow(2).mean(1))
    assert (ratio_db.abs() < 1.5).all(), ratio_db


def test_pitch_and_reverb_are_seeded_and_p_zero_is_identity() -> None:
    x = tones()
    for f in (pitch, reverb):
        a, b, c = f(x, gen(1), p=0.8), f(x, gen(1), p=0.8), f(x, gen(2), p=0.8)
        assert torch.equal(a, b) and not torch.equal(a, c), f.__name__
        assert torch.equal(f(x, gen(), p=0.0), x), f.__name__
        changed = (f(x, gen(), p=1.0) - x).abs().amax(dim=1) > 1e-3
        assert changed.all(), f.__name__
    y = augment(x, ["pitch", "reverb"], gen(4), 0.8, RATE)
    assert torch.equal(y, augment(x, ["pitch", "reverb"], gen(4), 0.8, RATE)) and torch.isfinite(y).all()


def test_reverb_shares_the_room_within_a_view() -> None:
    x = torch.zeros(12, 4000)
    x[:, 10] = 1.0
    groups = (torch.arange(3).repeat_interleave(4), 3)
    y = reverb(x, gen(), p=1.0, sample_rate=RATE, groups=groups).reshape(3, 4, -1)
    torch.testing.assert_close(y, y[:, :1].expand_as(y))
    assert (y[0, 0] - y[1, 0]).abs().max() > 1e-3  # another view, another room


def test_pitch_handles_clips_shorter_than_its_frame() -> None:
    t = torch.arange(400) / RATE
    x = 0.3 * torch.sin(2 * math.pi * 1000 * t).repeat(4, 1)
    y = pitch(x, gen(), p=1.0)
    assert y.shape == x.shape and torch.isfinite(y).all() and not torch.equal(y, x)
