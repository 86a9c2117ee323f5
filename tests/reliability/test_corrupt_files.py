"""Corrupted, truncated and lying files: each is embedded with finite values or recorded as failed."""

from __future__ import annotations

import struct
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from mclx.audio import decode_blocks
from mclx.embed import EmbedSettings, embed
from mclx.embed.windows import WindowCutter
from mclx.errors import DecodeError
from mclx.models import build_encoder
from mclx.resample import TorchStreamResampler as StreamResampler
from mclx.store import read_store

from ..audio_fixtures import ENCODED, FORMATS, RATE, music_like, tone
from .report import record

MFCC = build_encoder("mfcc").eval()


def valid_file(ext: str, tmp: Path) -> bytes:
    fmt, subtype = FORMATS[ext]
    rate = 48000 if ext == "opus" else 22050
    path = tmp / f"valid.{ext}"
    sf.write(path, tone(3.2, rate, channels=2), rate, format=fmt, subtype=subtype)
    return path.read_bytes()


VALID: dict[str, bytes] = {}


def valid(ext: str, tmp_path_factory: pytest.TempPathFactory) -> bytes:
    if ext not in VALID:
        VALID[ext] = valid_file(ext, tmp_path_factory.mktemp("valid"))
    return VALID[ext]


def embed_in_process(path: Path) -> np.ndarray | None:
    """The decode -> resample -> window -> encoder path of the pipeline, in one process.

    Returns (k, D) embeddings, or None when the file is refused with a DecodeError. Any other
    exception fails the test.
    """
    cutter, resampler, chunks = WindowCutter(48000, 48000), None, []
    try:
        for rate, block in decode_blocks(str(path), block_frames=8192):
            resampler = resampler or StreamResampler(rate, 16000)
            chunks += cutter.push(resampler.push(torch.from_numpy(block)))[1]
    except DecodeError:
        return None
    if resampler is not None:
        chunks += cutter.push(resampler.flush())[1]
    chunks += cutter.finish()[1]
    if not chunks:
        return None
    with torch.inference_mode():
        return MFCC(torch.stack(chunks)).numpy()


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    ext=st.sampled_from(["wav", "flac", "ogg", "mp3", "aiff"]),
    flips=st.lists(st.tuples(st.floats(0, 1), st.integers(0, 255)), max_size=8),
    cut=st.one_of(st.none(), st.floats(0, 1)),
    header=st.one_of(st.none(), st.binary(min_size=1, max_size=16)),
)
def test_corrupted_variants_are_embedded_finite_or_refused(
    tmp_path_factory: pytest.TempPathFactory, ext: str, flips, cut, header
) -> None:
    data = bytearray(valid(ext, tmp_path_factory))
    for where, value in flips:
        data[min(int(where * len(data)), len(data) - 1)] = value
    if header is not None:
        data[: len(header)] = header
    if cut is not None:
        data = data[: int(cut * len(data))]
    path = tmp_path_factory.mktemp("variant") / f"x.{ext}"
    path.write_bytes(bytes(data))
    emb = embed_in_process(path)
    assert emb is None or np.isfinite(emb).all()
    record(corrupted_variants=1)


@pytest.mark.parametrize("ext", ["flac", "mp3", "ogg"])
def test_truncated_files_through_the_pipeline(tmp_path: Path, tmp_path_factory, ext: str) -> None:
    data = valid(ext, tmp_path_factory)
    files = []
    for frac in (0.02, 0.1, 0.33, 0.5, 0.77, 0.97):
        path = tmp_path / f"cut{int(frac * 100):02d}.{ext}"
        path.write_bytes(data[: int(frac * len(data))])
        files.append(str(path))
    embed(files, str(tmp_path / "o.h5"), EmbedSettings(model="mfcc", workers=2, quiet=True, level="both"))
    records = read_store(tmp_path / "o.h5").records
    assert len(records) == len(files)
    for rec in records:
        if rec.status == "ok":
            assert rec.global_ is not None and np.isfinite(rec.global_).all()
            assert rec.segments is not None and np.isfinite(rec.segments).all()
            assert rec.duration_s < 3.3
        else:
            assert rec.error and "\n" not in rec.error
    record(truncated_files=len(files))


def test_wav_header_claiming_more_frames_than_present(tmp_path: Path) -> None:
    path = tmp_path / "liar.wav"
    sf.write(path, tone(2, 16000)[:, 0], 16000, subtype="PCM_16")
    data = bytearray(path.read_bytes())
    data[40:44] = struct.pack("<I", 10 * 16000 * 2)  # data chunk size: 10 s instead of 2 s
    data[4:8] = struct.pack("<I", 36 + 10 * 16000 * 2)
    path.write_bytes(bytes(data))
    embed([str(path)], str(tmp_path / "o.h5"), EmbedSettings(model="mfcc", workers=1, quiet=True))
    rec = read_store(tmp_path / "o.h5").records[0]
    assert rec.status == "ok" and rec.duration_s == pytest.approx(2.0, abs=0.01)


@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf])
def test_float_wav_with_non_finite_samples_is_recorded(tmp_path: Path, bad: float) -> None:
    data = tone(4, 16000)[:, 0]
    data[30000] = bad
    path = tmp_path / "bad.wav"
    sf.write(path, data, 16000, subtype="FLOAT")
    summary = embed([str(path)], str(tmp_path / "o.h5"), EmbedSettings(model="mfcc", workers=1, quiet=True))
    rec = read_store(tmp_path / "o.h5").records[0]
    assert summary.failed == 1 and rec.status == "failed" and "non-finite" in rec.error
    assert rec.global_ is None


def test_a_file_that_disappears_after_listing_is_recorded(tmp_path: Path) -> None:
    keep, gone = tmp_path / "keep.wav", tmp_path / "gone.wav"
    for p in (keep, gone):
        sf.write(p, tone(2, 16000)[:, 0], 16000)
    files = [str(keep), str(gone)]
    gone.unlink()
    summary = embed(files, str(tmp_path / "o.h5"), EmbedSettings(model="mfcc", workers=1, quiet=True))
    rows = {Path(r.path).name: r for r in read_store(tmp_path / "o.h5").records}
    assert summary.ok == 1 and rows["gone.wav"].status == "failed"
    assert "No such file" in rows["gone.wav"].error


@pytest.fixture(scope="module")
def ffmpeg_library(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """4 s of music in each FFmpeg format (tests.audio_fixtures writes them with PyAV's encoders)."""
    from ..audio_fixtures import write_encoded

    root = tmp_path_factory.mktemp("ffmpeg")
    audio = music_like(4.0)
    for name, codec in ENCODED:
        write_encoded(root / name, audio, RATE, codec)
    return root


@pytest.mark.parametrize("name", [name for name, _ in ENCODED])
def test_truncated_and_corrupted_ffmpeg_files_are_embedded_finite_or_recorded(
    ffmpeg_library: Path, tmp_path: Path, name: str
) -> None:
    data = (ffmpeg_library / name).read_bytes()
    rng = np.random.default_rng(0)
    files = []
    for frac in (0.05, 0.3, 0.6, 0.95):
        cut = tmp_path / f"cut{int(frac * 100):02d}-{name}"
        cut.write_bytes(data[: int(frac * len(data))])
        files.append(str(cut))
    for k in range(3):
        flipped = bytearray(data)
        for where in rng.integers(0, len(data), size=16 * (k + 1)):
            flipped[where] = int(rng.integers(0, 256))
        path = tmp_path / f"flip{k}-{name}"
        path.write_bytes(bytes(flipped))
        files.append(str(path))
    embed(files, str(tmp_path / "o.h5"), EmbedSettings(model="mfcc", workers=2, quiet=True, level="both"))
    records = read_store(tmp_path / "o.h5").records
    assert [r.path for r in records] == files
    for rec in records:
        if rec.status == "ok":
            assert rec.global_ is not None and np.isfinite(rec.global_).all()
            assert rec.segments is not None and np.isfinite(rec.segments).all()
        else:
            assert rec.error and "\n" not in rec.error and str(tmp_path) not in rec.error
    record(ffmpeg_truncated_files=4, ffmpeg_corrupted_variants=3)
