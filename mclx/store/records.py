"""The rows of a store and its journal: one input file's record, where its embeddings wait, and
which settings must agree for two stores (or a store and its journal) to be combined."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

# Attributes that must agree for a store to be resumed or merged.
SETTINGS_KEYS = (
    "model_sha256",
    "model_config",
    "sample_rate",
    "window_s",
    "hop_s",
    "dim",
    "level",
    "pooling",
    "precision",
)


@dataclass(frozen=True, slots=True)
class RowRef:
    """Where a row's embeddings wait for the final store: row ``row`` of a store or journal chunk."""

    source: Path  # an .h5 store or a journal chunk-*.npz
    row: int


_EMPTY = np.zeros(0)
_EMPTY.flags.writeable = False


@dataclass(slots=True)  # no per-row __dict__: a run keeps one record per input file
class FileRecord:
    """One input file's row. ``segments`` is (k, D) float32 (None when failed or not kept)."""

    path: str
    status: str  # "ok" | "failed"
    error: str
    duration_s: float
    size_bytes: int
    mtime_ns: int
    segment_count: int = 0
    global_: np.ndarray | None = None  # (D,) float32
    segments: np.ndarray | None = None  # (k, D) float32
    starts: np.ndarray = field(default_factory=lambda: _EMPTY)  # (k,) float64 seconds (shared when empty)
    ends: np.ndarray = field(default_factory=lambda: _EMPTY)  # (k,) float64 seconds
    ref: RowRef | None = None  # set on a stub whose embeddings wait in a journal chunk or a store

    def drop_embeddings(self, ref: RowRef) -> None:
        """Keep only the keys: the embeddings now live at ``ref``."""
        self.ref, self.global_, self.segments = ref, None, None
        self.starts = self.ends = _EMPTY

    @property
    def key(self) -> tuple[str, int, int]:
        return (self.path, self.size_bytes, self.mtime_ns)


def settings_mismatch(a: dict[str, Any], b: dict[str, Any]) -> list[str]:
    """Names of the settings that differ between two attribute sets."""
    return [k for k in SETTINGS_KEYS if attr_value(a.get(k)) != attr_value(b.get(k))]


def attr_value(value: Any) -> Any:
    """An HDF5 attribute as a plain Python value (numpy scalars and bytes unwrapped)."""
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, bytes):
        return value.decode()
    return value
