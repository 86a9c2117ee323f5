"""Streaming resampling: libsoxr in the decoders, torch on the encoder's device, and both paths agreeing."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import soxr
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from mclx.embed import EmbedSettings, embed
from mclx.resample import SoxrStream, TorchStreamResampler, resampled_length
from mclx.store import read_store

from .audio_fixtures import tone

RATE_PAIRS = [(44100, 16000), (48000, 16000), (22050, 16000), (8000, 16000), (44100, 22050), (16000, 16000)]


def stream(resampler: SoxrStream, x: np.ndarray, sizes: list[int]) -> np.ndarray:
    parts, i, k = [], 0, 0
    while i < len(x):
        step = sizes[k % len(sizes)]
        parts.append(resampler.push(x[i : i + step]))
        i, k = i + step, k + 1
    parts.append(resampler.flush())
    return np.concatenate(parts)


@settings(max_examples=40, deadline=None)
@given(
    rates=st.sampled_from(RATE_PAIRS),
    length=st.integers(0, 30_000),
    sizes=st.lists(st.integers(1, 9000), min_size=1, max_size=4),
)
def test_soxr_stream_equals_the_whole_signal_resampled(rates, length: int, sizes: list[int]) -> None:
    orig, new = rates
    x = np.random.default_rng(length).standard_normal(length).astype(np.float32)
    streamed = stream(SoxrStream(orig, new), x, sizes)
    assert len(streamed) == resampled_length(length, orig, new)
    whole = x if orig == new else soxr.resample(x, orig, new, quality="HQ")
    # libsoxr's own total is round(); the stream pads its last sample to the ceil() rule.
    np.testing.assert_array_equal(streamed[: len(whole)], whole)
    assert not streamed[len(whole) :].any()


@pytest.mark.parametrize(("orig", "new"), [(44100, 16000), (48000, 22050), (22050, 16000), (8000, 16000)])
def test_soxr_and_torch_resamplers_agree_in_the_passband(orig: int, new: int) -> None:
    """Stated tolerance: below 0.4 of the lower rate's Nyquist, the two differ by < 1e-3 of full scale.

    (Measured: at most 3e-4 for 100 Hz-3 kHz tones at 44.1 -> 16 kHz. Near the output Nyquist they
    differ more, by design of the filters: at 0.8 of it torch's kernel is 0.7 dB down, soxr's flat.)
    """
    t = np.arange(orig * 2) / orig
    top = 0.4 * min(orig, new) / 2  # 0.4 of the lower Nyquist: the band both rates carry
    x = sum(0.25 * np.sin(2 * np.pi * f * t + f) for f in (110.0, 440.0, 0.5 * top, top))
    x = x.astype(np.float32)
    ours = stream(SoxrStream(orig, new), x, [4096])
    r = TorchStreamResampler(orig, new)
    xt = torch.from_numpy(x)
    theirs = torch.cat([r.push(xt[i : i + 4096]) for i in range(0, len(x), 4096)] + [r.flush()]).numpy()
    assert len(ours) == len(theirs) == resampled_length(len(x), orig, new)
    edge = new // 50  # both zero-pad the ends, with different kernels: compare away from them
    assert np.abs(ours[edge:-edge] - theirs[edge:-edge]).max() < 1e-3


@pytest.mark.parametrize("device", ["cpu", "meta"])
@pytest.mark.parametrize(("orig", "new"), [(16000, 16000), (44100, 16000)])
def test_torch_resampler_output_stays_on_its_device(device: str, orig: int, new: int) -> None:
    # The GPU path concatenates flush() with blocks on the encoder's device: an empty tensor from
    # the CPU there broke every file already at the model's rate. "meta" stands in for CUDA.
    r = TorchStreamResampler(orig, new, device)
    assert r.flush().device.type == device  # nothing pushed
    if orig == new:
        r = TorchStreamResampler(orig, new, device)
        r.push(torch.zeros(100, device=device))
        assert r.flush().device.type == device


@pytest.fixture(scope="module")
def mixed_files(tmp_path_factory: pytest.TempPathFactory) -> list[str]:
    """Files at the model's rate (16 kHz for mfcc) and at others; short, exact and long."""
    root = tmp_path_factory.mktemp("mixed")
    specs = [
        ("at-rate.wav", 16000, 1, 7.3),
        ("at-rate-stereo.flac", 16000, 2, 3.0),
        ("short.wav", 16000, 1, 0.4),
        ("cd.flac", 44100, 2, 6.1),
        ("dat.wav", 48000, 1, 3.0),
        ("22k.wav", 22050, 1, 4.2),
        ("low.wav", 8000, 1, 4.2),
    ]
    paths = []
    for i, (name, rate, channels, seconds) in enumerate(specs):
        path = root / name
        sf.write(path, tone(seconds, rate, 220.0 * (i + 1), channels, seed=i), rate)
        paths.append(str(path))
    return paths


def test_decoder_and_encoder_resampling_paths_agree(mixed_files: list[str], tmp_path: Path) -> None:
    stores = {}
    for where in ("decoders", "encoder"):
        out = tmp_path / f"{where}.h5"
        summary = embed(
            mixed_files,
            str(out),
            EmbedSettings(model="mfcc", level="both", hop_s=1.0, workers=2, quiet=True, resample_in=where),
        )
        assert (summary.ok, summary.failed) == (len(mixed_files), 0)
        stores[where] = read_store(out)
    for a, b in zip(stores["decoders"].records, stores["encoder"].records, strict=True):
        assert a.path == b.path and a.segment_count == b.segment_count
        np.testing.assert_array_equal(a.starts, b.starts)
        np.testing.assert_array_equal(a.ends, b.ends)
        assert a.segments is not None and b.segments is not None
        if "at-rate" in a.path or "short" in a.path:  # nothing to resample: the same numbers
            np.testing.assert_allclose(a.segments, b.segments, atol=1e-5, rtol=0)
        else:  # soxr vs the sinc kernel: close, not equal (see the passband test)
            cos = (
                (a.segments * b.segments).sum(1)
                / np.linalg.norm(a.segments, axis=1)
                / np.linalg.norm(b.segments, axis=1)
            )
            # Measured 0.9998 for 22.05-48 kHz files. Upsampled 8 kHz audio has nothing above 4 kHz
            # but what each filter leaks there, which the top MFCC bands see: 0.974 measured.
            assert cos.min() > (0.95 if "low" in a.path else 0.999), (a.path, cos.min())


def test_an_unknown_resampling_place_is_a_usage_error(mixed_files: list[str], tmp_path: Path) -> None:
    from mclx.errors import UsageError

    with pytest.raises(UsageError, match="--resample-in"):
        embed(mixed_files[:1], str(tmp_path / "o.h5"), EmbedSettings(model="mfcc", resample_in="gpu"))


def test_decoder_processes_need_no_torch(mixed_files: list[str]) -> None:
    """What a decoder process runs (decode, down-mix, resample with libsoxr) imports no torch."""
    import subprocess
    import sys

    code = (
        "import sys\n"
        "from mclx.decoders import _decode_one\n"
        "class Sink:\n"
        "    def __init__(self): self.messages = []\n"
        "    def send(self, m): self.messages.append(m)\n"
        "sink = Sink()\n"
        f"_decode_one(0, {mixed_files[3]!r}, sink, 65536, 16000)\n"
        "assert sink.messages[-1][0] == 'end', sink.messages[-1]\n"
        "print('torch' in sys.modules)\n"
    )
    env = {"PYTHONPATH": str(Path(__file__).parents[1]), "PATH": "/usr/bin:/bin"}
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == "False"
