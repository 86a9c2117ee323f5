"""Training under faults: kills during checkpoint writes, damaged checkpoints, bad config values."""

from __future__ import annotations

import dataclasses
import os
import random
import signal
import subprocess
import sys
import time
import typing
from pathlib import Path

import pytest
import torch

from mclx.config import Config
from mclx.errors import ConfigError, WeightsError
from mclx.models.registry import load_model
from mclx.train import run_training

from ..audio_fixtures import WriteAudio
from ..helpers import run_cli, write_config
from .report import record

ROOT = Path(__file__).parents[2]


def test_kill_9_during_checkpoints_leaves_a_resumable_run(tmp_path: Path, write_audio: WriteAudio) -> None:
    config = write_config(tmp_path, write_audio)
    out = tmp_path / "run"
    every_step = ["--set", "train.steps=400", "--set", "train.checkpoint_every=1"]
    args = [sys.executable, "-m", "mclx", "train", str(config), "--out", str(out), "-q", *every_step]
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    rng = random.Random(1)
    steps = [0]
    for attempt in range(3):
        proc = subprocess.Popen(args + (["--resume"] if attempt else []), env=env)
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and not (out / "state.pt").exists():
            time.sleep(0.02)
        time.sleep(rng.uniform(0.3, 1.2))  # a checkpoint is written at every step: kills land in them
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        state = torch.load(out / "state.pt", weights_only=True)  # always the last whole checkpoint
        assert state["step"] >= steps[-1]
        steps.append(int(state["step"]))
    assert steps[-1] > 0
    finish = run_cli("train", str(config), "--out", str(out), "--resume", "-q", "--json", "--set",
                     f"train.steps={steps[-1] + 2}")  # fmt: skip
    assert finish.returncode == 0, finish.stderr
    record(training_kills_survived=3)


def test_a_truncated_or_edited_checkpoint_is_refused_by_name(tmp_path: Path, write_audio: WriteAudio) -> None:
    config = str(write_config(tmp_path, write_audio))
    out = tmp_path / "run"
    run_training(config, str(out), False, [], quiet=True, stop_after=4)
    state = out / "state.pt"
    data = state.read_bytes()
    state.write_bytes(data[: len(data) // 2])
    with pytest.raises(WeightsError, match=r"state\.pt"):
        run_training(config, str(out), True, [], quiet=True)
    cli = run_cli("train", config, "--out", str(out), "--resume")
    assert cli.returncode == 2 and "state.pt" in cli.stderr and "Traceback" not in cli.stderr
    (out / "encoder.safetensors").write_bytes(b"\x00" * 64)
    with pytest.raises(WeightsError, match=r"encoder\.safetensors"):
        load_model(str(out / "encoder.safetensors"))


def wrong_value(annotation: typing.Any) -> typing.Any:
    """A TOML value of the wrong type for a field."""
    if annotation is str:
        return 3
    if annotation in (int, float):
        return "three"
    if annotation is bool:
        return "yes"
    return "not a list"


def test_every_config_key_with_a_wrong_type_is_named(tmp_path: Path, write_audio: WriteAudio) -> None:
    config = str(write_config(tmp_path, write_audio))
    checked = 0
    for section in dataclasses.fields(Config):
        cls = typing.get_type_hints(Config)[section.name]
        for name, annotation in typing.get_type_hints(cls).items():
            value = wrong_value(annotation)
            text = f'"{value}"' if isinstance(value, str) else str(value)
            with pytest.raises(ConfigError, match=f"{section.name}.{name}"):
                run_training(
                    config, str(tmp_path / "x"), False, [f"{section.name}.{name}={text}"], quiet=True
                )
            checked += 1
    assert checked >= 30
    cli = run_cli("train", config, "--set", "train.lr='fast'", "--out", str(tmp_path / "y"))
    assert cli.returncode == 2 and "train.lr" in cli.stderr
    missing = run_cli("train", str(tmp_path / "nope.toml"))
    assert missing.returncode == 2 and "nope.toml" in missing.stderr
    record(config_keys_checked=checked)
