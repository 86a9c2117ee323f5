"""Helpers that several test modules share: the CLI as a subprocess, store comparison, a tiny
training configuration."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import h5py
import numpy as np

from mclx.embed import EmbedSettings

from .audio_fixtures import WriteAudio

FAST = EmbedSettings(model="mfcc", workers=2, quiet=True, batch_size=8)


def settings(**kw: object) -> EmbedSettings:
    return EmbedSettings(**{**FAST.__dict__, **kw})  # type: ignore[arg-type]


def run_cli(*args: str, stdin: str | None = None) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).parents[1])}
    return subprocess.run(
        [sys.executable, "-m", "mclx", *args],
        input=stdin,
        capture_output=True,
        text=True,
        env=env,
        timeout=300,
    )


def arrays(path: Path) -> dict[str, np.ndarray]:
    """Every dataset of a store, for exact comparison."""
    out = {}
    with h5py.File(path, "r") as h:
        h.visititems(
            lambda name, obj: out.__setitem__(name, obj[()]) if isinstance(obj, h5py.Dataset) else None
        )
    return out


def assert_same_store(a: Path, b: Path) -> None:
    xa, xb = arrays(a), arrays(b)
    assert xa.keys() == xb.keys()
    for key in xa:
        if key == "files/mtime_ns":
            continue
        np.testing.assert_array_equal(xa[key], xb[key], err_msg=key)


TINY = """
[data]
audio = ["audio"]
cache = "cache"
{labels}
[model]
architecture = "{arch}"
embedding_dim = 16
projection_dim = 8
channels = {channels}
[views]
segment_s = {segment}
positive = "{positive}"
input = "{input}"
[loss]
kind = "{loss}"
target = "{target}"
[train]
steps = 12
batch_size = 6
lr = 1e-3
warmup_steps = 3
checkpoint_every = 4
log_every = 2
"""


def write_config(tmp_path: Path, write_audio: WriteAudio, **kw: str) -> Path:
    for i in range(8):
        write_audio(f"{i}.flac", seconds=3 + i % 3, rate=22050, freq=200 + 60 * i, seed=i)
    values = {"arch": "melcnn", "channels": "[4, 8]", "segment": "0.5", "positive": "adjacent",
              "input": "segment", "loss": "ntxent", "target": "multiclass", "labels": ""} | kw  # fmt: skip
    path = tmp_path / "tiny.toml"
    path.write_text(TINY.format(**values))
    return path
