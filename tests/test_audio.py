"""Streaming decode, resampling and the window rule."""

from __future__ import annotations

import numpy as np
import pytest
import soundfile as sf
import torch
import torchaudio
from hypothesis import given, settings
from hypothesis import strategies as st

from mclx.audio import decode_blocks
from mclx.embed.windows import WindowCutter, window_starts
from mclx.errors import DecodeError
from mclx.resample import TorchStreamResampler as StreamResampler

RATES = [8000, 16000, 22050, 44100, 48000]


@pytest.mark.parametrize(("orig", "new"), [(44100, 16000), (22050, 16000), (48000, 22050), (8000, 16000)])
@pytest.mark.parametrize("length", [1, 999, 50_000])
def test_stream_resampler_equals_whole_signal(orig: int, new: int, length: int) -> None:
    x = torch.randn(length, generator=torch.Generator().manual_seed(length))
    whole = torchaudio.functional.resample(x.unsqueeze(0), orig, new).squeeze(0)
    r = StreamResampler(orig, new)
    parts = [r.push(x[i : i + 4099]) for i in range(0, length, 4099)] + [r.flush()]
    streamed = torch.cat(parts)
    assert streamed.shape == whole.shape
    torch.testing.assert_close(streamed, whole, atol=1e-4, rtol=0)


def test_resampled_tone_keeps_its_frequency() -> None:
    rate = 44100
    t = torch.arange(rate * 2) / rate
    x = torch.sin(2 * torch.pi * 1000 * t)
    r = StreamResampler(rate, 16000)
    y = torch.cat([r.push(x[i : i + 10_000]) for i in range(0, len(x), 10_000)] + [r.flush()])
    spectrum = torch.fft.rfft(y[:16000]).abs()
    assert int(spectrum.argmax()) == 1000  # 1 s at 16 kHz: bin k is k Hz


@settings(max_examples=60, deadline=None)
@given(
    total=st.integers(0, 200),
    window=st.integers(1, 40),
    hop=st.integers(1, 50),
    block=st.integers(1, 64),
    as_numpy=st.booleans(),
)
def test_window_cutter_matches_the_rule(
    total: int, window: int, hop: int, block: int, as_numpy: bool
) -> None:
    """Torch tensors (the local decoders) and numpy arrays (the Ray decode tasks) alike."""
    x = torch.arange(total, dtype=torch.float32) + 1
    cutter = WindowCutter(window, hop)
    wins, chunks = [], []
    for i in range(0, total, block):
        w, c = cutter.push(x[i : i + block].numpy() if as_numpy else x[i : i + block])
        wins += w
        chunks += c
    w, c = cutter.finish()
    wins += w
    chunks += c
    assert wins == window_starts(total, window, hop)
    for win, chunk in zip(wins, chunks, strict=True):
        expected = torch.zeros(window)
        expected[: win.end - win.start] = x[win.start : win.end]
        assert isinstance(chunk, np.ndarray) == as_numpy
        assert torch.equal(torch.as_tensor(chunk), expected)


def test_window_rule_examples() -> None:
    assert window_starts(0, 10, 10) == []
    assert [(w.start, w.end) for w in window_starts(7, 10, 10)] == [(0, 7)]
    assert [(w.start, w.end) for w in window_starts(10, 10, 10)] == [(0, 10)]
    assert [(w.start, w.end) for w in window_starts(11, 10, 10)] == [(0, 10), (1, 11)]
    assert [(w.start, w.end) for w in window_starts(25, 10, 5)] == [(0, 10), (5, 15), (10, 20), (15, 25)]


def test_decode_blocks_downmixes_and_streams(tmp_path) -> None:
    rate = 16000
    data = np.random.default_rng(0).uniform(-0.5, 0.5, size=(rate * 3, 2)).astype(np.float32)
    path = tmp_path / "x.wav"
    sf.write(path, data, rate, subtype="FLOAT")
    blocks = list(decode_blocks(str(path), block_frames=5000))
    assert all(r == rate for r, _ in blocks)
    assert max(len(b) for _, b in blocks) == 5000
    mono = np.concatenate([b for _, b in blocks])
    np.testing.assert_allclose(mono, data.mean(axis=1), atol=1e-7)


@pytest.mark.parametrize(
    ("content", "reason"),
    [(b"", "empty file"), (b"RIFF" + b"\x00" * 40, "unreadable audio"), (b"hello" * 100, "unreadable audio")],
)
def test_decode_errors_are_one_line(tmp_path, content: bytes, reason: str) -> None:
    path = tmp_path / "bad.wav"
    path.write_bytes(content)
    with pytest.raises(DecodeError, match=reason) as info:
        list(decode_blocks(str(path)))
    assert "\n" not in str(info.value)


def test_non_finite_samples_are_refused(tmp_path) -> None:
    data = np.zeros(1000, dtype=np.float32)
    data[500] = np.nan
    path = tmp_path / "nan.wav"
    sf.write(path, data, 8000, subtype="FLOAT")
    with pytest.raises(DecodeError, match="non-finite"):
        list(decode_blocks(str(path)))
