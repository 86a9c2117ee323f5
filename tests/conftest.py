"""Shared fixtures (small synthetic audio written in every format the pipeline reads) and the two
test tiers.

Tiers: `make test` runs the fast tier (``-m "not slow"``), `make test-all` (what CI runs) adds
the slow one. A test is slow when it is marked ``slow`` or lives where the slow kinds of test
live (``SLOW_PATHS``: Ray clusters, torchrun and DDP processes, the GPU path on the CPU, kill
loops, the study smoke grid). An unmarked test whose call takes longer than ``FAST_LIMIT_S``
(``$MCLX_FAST_LIMIT_S``, default 20 s) fails the session: mark it or make it faster."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import pytest
import soundfile as sf

from .audio_fixtures import FORMATS, WriteAudio, tone

os.environ.setdefault("MCLX_JOURNAL_EVERY_S", "0.05")

SLOW_PATHS = (
    "tests/ray/",
    "tests/gpu/",
    "tests/studies/test_runner.py",
    "tests/test_distributed.py",
    "tests/train/test_distributed.py",
    "tests/reliability/test_kills_and_full_disks.py",
    "tests/reliability/test_embed_faults.py",
    "tests/reliability/test_training_faults.py",
)
FAST_LIMIT_S = float(os.environ.get("MCLX_FAST_LIMIT_S", "20"))
_too_slow: list[tuple[str, float]] = []


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    root = Path(config.rootpath)
    for item in items:
        where = Path(str(item.fspath)).relative_to(root).as_posix()
        if any(where.startswith(p) for p in SLOW_PATHS):
            item.add_marker(pytest.mark.slow)


def pytest_runtest_logreport(report: pytest.TestReport) -> None:
    if report.when == "call" and report.duration > FAST_LIMIT_S and "slow" not in report.keywords:
        _too_slow.append((report.nodeid, report.duration))


def pytest_terminal_summary(terminalreporter: Any) -> None:
    for nodeid, seconds in _too_slow:
        terminalreporter.write_line(
            f"unmarked test over {FAST_LIMIT_S:g} s: {nodeid} ({seconds:.1f} s): mark it slow or speed it up",
            red=True,
        )


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    """Fail a session in which an unmarked test was too slow; leave a mark that the session ran to
    its end (`make test` checks for it)."""
    if _too_slow and session.exitstatus == 0:
        session.exitstatus = 1
    (Path(session.config.rootpath) / ".pytest-finished").write_text(f"{session.exitstatus}\n")


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
