"""Tiny synthetic probe tasks: layouts on disk, and feature stores written directly."""

from __future__ import annotations

import csv
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from mclx.store import FileRecord, write_store


def touch_clips(root: Path, names: Sequence[str]) -> list[str]:
    """Empty files standing for audio: reading a task only checks that they exist."""
    paths = []
    for name in names:
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(b"")
        paths.append(str(path))
    return paths


def write_csv_task(root: Path, labels: Sequence[str], splits: Sequence[str] | None = None) -> list[str]:
    """``root/labels.csv`` over clips ``root/clips/cNNN.wav``; returns the clip paths in order."""
    names = [f"clips/c{i:03d}.wav" for i in range(len(labels))]
    paths = touch_clips(root, names)
    with open(root / "labels.csv", "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["path", "label", "split"])
        for i, (name, label) in enumerate(zip(names, labels, strict=True)):
            w.writerow([name, label, splits[i] if splits else ""])
    return paths


def write_features(path: Path, clips: Sequence[str], x: np.ndarray, failed: Sequence[int] = ()) -> str:
    """An embedding store with (N, D) ``x`` as the clips' global embeddings."""
    attrs = {"format": "mclx-embeddings", "format_version": 1, "mclx_version": "test", "model": "synthetic",
             "model_sha256": "0" * 64, "model_config": "{}", "sample_rate": 16000, "window_s": 1.0,
             "hop_s": 1.0, "dim": x.shape[1], "level": "global", "pooling": "mean", "precision": "fp32",
             "created_utc": "", "argv": "[]"}  # fmt: skip
    records = []
    for i, clip in enumerate(clips):
        bad = i in failed
        records.append(FileRecord(clip, "failed" if bad else "ok", "cannot decode" if bad else "", 1.0, 0, 0,
                                  global_=None if bad else x[i].astype(np.float32)))  # fmt: skip
    write_store(path, attrs, records)
    return str(path)


def blobs(
    n_per_class: int, n_classes: int, dim: int, spread: float, seed: int
) -> tuple[np.ndarray, np.ndarray]:
    """(n, dim) Gaussian clusters around random centres and their (n,) classes."""
    rng = np.random.default_rng(seed)
    centres = rng.standard_normal((n_classes, dim)) * 3
    y = np.repeat(np.arange(n_classes), n_per_class)
    return centres[y] + spread * rng.standard_normal((len(y), dim)), y
