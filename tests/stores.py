"""Embedding stores written directly, for the tests of what reads stores (search, export)."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from mclx.store import FileRecord, write_store

ATTRS = {"format": "mclx-embeddings", "format_version": 1, "mclx_version": "test", "model": "mfcc",
         "model_sha256": "0" * 64, "model_config": "{}", "sample_rate": 16000, "window_s": 1.0, "hop_s": 1.0,
         "pooling": "mean", "precision": "fp32", "created_utc": "", "argv": "[]"}  # fmt: skip


def make_store(
    path: Path, x: np.ndarray, failed: tuple[int, ...] = (), segments: int = 0, start: int = 0
) -> list[str]:
    """A store of (N, D) global rows (and ``segments`` rows per file, spread around its row); the
    files are numbered from ``start``."""
    rng = np.random.default_rng(1)
    level = "both" if segments else "global"
    records = []
    for i, row in enumerate(x):
        rec = FileRecord(f"/music/{start + i:05d}.flac", "ok", "", 10.0, 100 + i, 7)
        if i in failed:
            rec.status, rec.error = "failed", "cannot decode"
        else:
            rec.global_ = row.astype(np.float32)
            if segments:
                rec.segments = (row + 0.3 * rng.standard_normal((segments, len(row)))).astype(np.float32)
                rec.starts = np.arange(segments, dtype=np.float64)
                rec.ends = rec.starts + 1
                rec.segment_count = segments
        records.append(rec)
    write_store(path, {**ATTRS, "dim": x.shape[1], "level": level}, records)
    return [r.path for r in records]
