"""kill -9 at random instants and a disk that fills up: the store is never corrupted."""

from __future__ import annotations

import json
import os
import random
import resource
import signal
import subprocess
import sys
import time
from pathlib import Path

from ..audio_fixtures import WriteAudio
from ..helpers import assert_same_store, run_cli
from .report import record

ROOT = Path(__file__).parents[2]
ARGS = ["--model", "random-melcnn", "--level", "both", "--workers", "2", "--batch-size", "4", "-q"]


def test_kill_9_at_ten_random_instants_then_resume(write_audio: WriteAudio, tmp_path: Path) -> None:
    for i in range(100):
        write_audio(f"{i:03d}.ogg", seconds=5 + i % 4, freq=150 + 10 * i, seed=i, rate=44100, channels=2)
    src = str(tmp_path / "audio")
    ref = run_cli("embed", src, str(tmp_path / "ref.h5"), *ARGS)
    assert ref.returncode == 0, ref.stderr
    env = {**os.environ, "PYTHONPATH": str(ROOT), "MCLX_JOURNAL_EVERY_S": "0.05"}
    rng = random.Random(0)
    kills, stores, out = 0, 0, tmp_path / "out0.h5"
    for _ in range(40):  # ten kills, however fast this machine embeds the directory
        proc = subprocess.Popen([sys.executable, "-m", "mclx", "embed", src, str(out), *ARGS], env=env)
        time.sleep(rng.uniform(0.8, 3.0))  # start-up, decoding, journal writes: anywhere
        if proc.poll() is not None:  # it finished, resuming what the kills left: the whole store
            assert proc.returncode == 0
            assert_same_store(tmp_path / "ref.h5", out)
            stores += 1
            out = tmp_path / f"out{stores}.h5"  # and the next kills hit a fresh run
            continue
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        kills += 1
        if out.exists():  # whenever a store is visible, it is a whole, readable one
            assert run_cli("info", str(out), "--json").returncode == 0
        if kills == 10:
            break
    assert kills == 10, "the runs were too short to be killed"
    final = run_cli("embed", src, str(out), *ARGS, "--json")
    assert final.returncode == 0, final.stderr
    assert_same_store(tmp_path / "ref.h5", out)
    record(kills_survived=kills, stores_compared=stores + 1)


def _limit_file_size() -> None:
    signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # over the limit, write() fails with EFBIG
    resource.setrlimit(resource.RLIMIT_FSIZE, (20_000, 20_000))


def test_a_full_disk_is_a_clear_error_and_the_journal_resumes(
    write_audio: WriteAudio, tmp_path: Path
) -> None:
    for i in range(12):
        write_audio(f"{i:02d}.wav", seconds=4, freq=200 + 50 * i)
    src, out = str(tmp_path / "audio"), tmp_path / "out.h5"
    args = ["--model", "mfcc", "--level", "both", "--workers", "1", "-q"]
    env = {**os.environ, "PYTHONPATH": str(ROOT), "MCLX_JOURNAL_EVERY_S": "0.05"}
    full = subprocess.run(
        [sys.executable, "-m", "mclx", "embed", src, str(out), *args],
        env=env, capture_output=True, text=True, preexec_fn=_limit_file_size, timeout=300,
    )  # fmt: skip
    assert full.returncode == 1
    assert "File too large" in full.stderr and "resume" in full.stderr
    assert "Traceback" not in full.stderr
    assert not out.exists()
    journal = out.with_name(out.name + ".journal")
    assert journal.is_dir()
    resumed = run_cli("embed", src, str(out), *args, "--json")
    assert resumed.returncode == 0, resumed.stderr
    assert json.loads(resumed.stdout)["ok"] == 12
    ref = run_cli("embed", src, str(tmp_path / "ref.h5"), *args)
    assert ref.returncode == 0
    assert_same_store(tmp_path / "ref.h5", out)
    record(disk_full_runs=1, stores_compared=1)
