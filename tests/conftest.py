"""Shared fixtures: small synthetic audio written in every format the pipeline reads."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
import soundfile as sf

from .audio_fixtures import FORMATS, WriteAudio, tone

os.environ.setdefault("MCLX_JOURNAL_EVERY_S", "0.05")


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
