"""Shared fixtures: small synthetic audio written in every format the pipeline reads."""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

FORMATS = {
    "wav": ("WAV", "PCM_16"),
    "flac": ("FLAC", "PCM_16"),
    "ogg": ("OGG", "VORBIS"),
    "opus": ("OGG", "OPUS"),
    "mp3": ("MP3", "MPEG_LAYER_III"),
    "aiff": ("AIFF", "PCM_16"),
}

os.environ.setdefault("MCLX_JOURNAL_EVERY_S", "0.05")


def tone(seconds: float, rate: int, freq: float = 440.0, channels: int = 1, seed: int = 0) -> np.ndarray:
    """(frames, channels) float32: a sine plus a little noise, a different gain per channel."""
    rng = np.random.default_rng(seed)
    t = np.arange(round(seconds * rate)) / rate
    x = 0.4 * np.sin(2 * np.pi * freq * t) + 0.01 * rng.standard_normal(len(t))
    return np.stack([x * (1.0 - 0.2 * c) for c in range(channels)], axis=1).astype(np.float32)


WriteAudio = Callable[..., Path]


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    """Leave a mark that the session ran to its end (`make test` checks for it)."""
    (Path(session.config.rootpath) / ".pytest-finished").write_text(f"{exitstatus}\n")


@pytest.fixture(autouse=True)
def _work_in_tmp(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Run every test in its own directory: nothing a test writes lands in the checkout."""
    monkeypatch.chdir(tmp_path)


@pytest.fixture
def write_audio(tmp_path: Path) -> WriteAudio:
    def write(
        name: str,
        seconds: float = 4.0,
        rate: int = 22050,
        channels: int = 1,
        freq: float = 440.0,
        seed: int = 0,
        directory: Path | None = None,
    ) -> Path:
        path = (directory or tmp_path / "audio") / name
        path.parent.mkdir(parents=True, exist_ok=True)
        ext = path.suffix.lstrip(".")
        fmt, subtype = FORMATS[ext]
        data = tone(seconds, rate, freq, channels, seed)
        with sf.SoundFile(path, "w", rate, channels, subtype=subtype, format=fmt) as f:
            for i in range(0, len(data), 1 << 20):  # chunked: one big OGG write overflows libsndfile
                f.write(data[i : i + (1 << 20)])
        return path

    return write
