"""The HDF5 embedding store (format version 1, see the contract): write, read, merge.

A store is always written whole under a temporary name and renamed into place, so a
reader never sees a half-written file. Incremental progress lives in the journal.
"""

from __future__ import annotations

import heapq
import json
import os
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from mclx.errors import StoreError

FORMAT = "mclx-embeddings"
FORMAT_VERSION = 1
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


@dataclass
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
    starts: np.ndarray = field(default_factory=lambda: np.zeros(0))  # (k,) float64 seconds
    ends: np.ndarray = field(default_factory=lambda: np.zeros(0))  # (k,) float64 seconds

    @property
    def key(self) -> tuple[str, int, int]:
        return (self.path, self.size_bytes, self.mtime_ns)


@dataclass
class StoreData:
    """A whole store in memory: ``attrs`` plus rows in file order."""

    attrs: dict[str, Any]
    records: list[FileRecord]

    @property
    def paths(self) -> list[str]:
        return [r.path for r in self.records]

    @property
    def level(self) -> str:
        return str(self.attrs["level"])

    def global_matrix(self) -> np.ndarray:
        """(N, D) float32, NaN rows for failed files."""
        dim = int(self.attrs["dim"])
        out = np.full((len(self.records), dim), np.nan, dtype=np.float32)
        for i, r in enumerate(self.records):
            if r.global_ is not None:
                out[i] = r.global_
        return out


def settings_of(attrs: dict[str, Any]) -> dict[str, Any]:
    return {k: attrs.get(k) for k in SETTINGS_KEYS}


def settings_mismatch(a: dict[str, Any], b: dict[str, Any]) -> list[str]:
    """Names of the settings that differ between two attribute sets."""
    return [k for k in SETTINGS_KEYS if _norm(a.get(k)) != _norm(b.get(k))]


def _norm(value: Any) -> Any:
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, bytes):
        return value.decode()
    return value


def write_store(path: str | os.PathLike[str], attrs: dict[str, Any], records: Sequence[FileRecord]) -> None:
    """Write a complete store atomically (temporary file, fsync, rename)."""
    import h5py

    from mclx.fileio import fsync_dir

    path = Path(path)
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    level = attrs["level"]
    dim = int(attrs["dim"])
    text = h5py.string_dtype("utf-8")
    counts = np.array([r.segment_count for r in records], dtype=np.int64)
    starts = np.concatenate([[0], np.cumsum(counts)[:-1]]).astype(np.int64) if len(records) else counts
    try:
        # HDF5 writes through a Python file object: a failing write (disk full, file-size
        # limit) then raises here instead of crashing inside the C library.
        with open(tmp, "w+b") as raw, h5py.File(raw, "w") as h:
            for key, value in attrs.items():
                h.attrs[key] = value
            files = h.create_group("files")
            files.create_dataset("path", data=_encoded([r.path for r in records]), dtype=text)
            files.create_dataset("status", data=_encoded([r.status for r in records]), dtype=text)
            files.create_dataset("error", data=_encoded([r.error for r in records]), dtype=text)
            files.create_dataset(
                "duration_s", data=np.array([r.duration_s for r in records], dtype=np.float64)
            )
            files.create_dataset("size_bytes", data=np.array([r.size_bytes for r in records], dtype=np.int64))
            files.create_dataset("mtime_ns", data=np.array([r.mtime_ns for r in records], dtype=np.int64))
            files.create_dataset("segment_start", data=starts)
            files.create_dataset("segment_count", data=counts)
            if level in ("global", "both"):
                data = StoreData(attrs, list(records)).global_matrix()
                h.create_dataset("global", data=data.reshape(len(records), dim))
            if level in ("segment", "both"):
                seg = h.create_group("segments")
                emb = [r.segments for r in records if r.segments is not None and len(r.segments)]
                seg.create_dataset(
                    "embedding",
                    data=np.concatenate(emb).astype(np.float32) if emb else np.zeros((0, dim), np.float32),
                )
                seg.create_dataset("file", data=np.repeat(np.arange(len(records), dtype=np.int64), counts))
                seg.create_dataset("start_s", data=_cat([r.starts for r in records]))
                seg.create_dataset("end_s", data=_cat([r.ends for r in records]))
        with open(tmp, "rb+") as f:
            os.fsync(f.fileno())
        os.replace(tmp, path)
        fsync_dir(path.parent)
    except (SystemError, RuntimeError) as exc:
        cause = exc.__cause__ or exc.__context__
        if isinstance(cause, OSError):
            raise OSError(cause.errno, cause.strerror) from None
        raise
    finally:
        if tmp.exists():
            tmp.unlink()


def _cat(arrays: list[np.ndarray]) -> np.ndarray:
    return np.concatenate(arrays).astype(np.float64) if arrays else np.zeros(0, np.float64)


def _encoded(texts: list[str]) -> list[bytes]:
    """UTF-8 bytes; a file name that is not valid UTF-8 keeps its raw bytes (surrogateescape)."""
    return [t.encode("utf-8", "surrogateescape") for t in texts]


def _strings(ds: Any) -> list[str]:
    return [s.decode("utf-8", "surrogateescape") if isinstance(s, bytes) else str(s) for s in ds[()]]


def read_attrs(path: str | os.PathLike[str]) -> dict[str, Any]:
    import h5py

    try:
        with h5py.File(path, "r") as h:
            attrs = {k: _norm(v) for k, v in h.attrs.items()}
    except OSError as exc:
        raise StoreError(f"{path}: not a readable HDF5 store ({exc})") from None
    if attrs.get("format") != FORMAT:
        raise StoreError(f"{path}: not an mclx embedding store")
    if int(attrs.get("format_version", -1)) != FORMAT_VERSION:
        raise StoreError(f"{path}: store format version {attrs.get('format_version')} is not supported")
    return attrs


def read_store(path: str | os.PathLike[str]) -> StoreData:
    """Load a whole store; rows keep their order."""
    import h5py

    attrs = read_attrs(path)
    with h5py.File(path, "r") as h:
        f = h["files"]
        paths, status, error = _strings(f["path"]), _strings(f["status"]), _strings(f["error"])
        duration, size, mtime = f["duration_s"][()], f["size_bytes"][()], f["mtime_ns"][()]
        seg_start, seg_count = f["segment_start"][()], f["segment_count"][()]
        glob = h["global"][()] if "global" in h else None
        if "segments" in h:
            s = h["segments"]
            seg_emb, seg_s, seg_e = s["embedding"][()], s["start_s"][()], s["end_s"][()]
        else:
            seg_emb = seg_s = seg_e = None
    records = []
    for i, p in enumerate(paths):
        lo, n = int(seg_start[i]), int(seg_count[i])
        rec = FileRecord(p, status[i], error[i], float(duration[i]), int(size[i]), int(mtime[i]), n)
        if status[i] == "ok":
            if glob is not None:
                rec.global_ = glob[i]
            if seg_emb is not None and seg_s is not None and seg_e is not None:
                rec.segments, rec.starts, rec.ends = (
                    seg_emb[lo : lo + n],
                    seg_s[lo : lo + n],
                    seg_e[lo : lo + n],
                )
        records.append(rec)
    return StoreData(attrs, records)


def merge_stores(output: str, inputs: Iterable[str]) -> StoreData:
    """Join shard stores made with identical settings into ``output``.

    Rows are merged by path, keeping each shard's own order: for shards of one run over
    directories (sorted listing) the result equals the single run's store.
    """
    inputs = list(inputs)
    stores = [read_store(p) for p in inputs]
    if not stores:
        raise StoreError("merge: no input stores")
    first = stores[0].attrs
    for path, store in zip(inputs, stores, strict=True):
        bad = settings_mismatch(first, store.attrs)
        if bad:
            raise StoreError(f"merge: {path} was made with different settings ({', '.join(bad)})")
    merged: dict[str, FileRecord] = {}
    for rec in heapq.merge(*[s.records for s in stores], key=lambda r: r.path):
        if rec.path not in merged or merged[rec.path].status != "ok":
            merged[rec.path] = rec
    attrs = dict(first)
    attrs["argv"] = json.dumps(["merge", output, *[str(p) for p in inputs]])
    data = StoreData(attrs, list(merged.values()))
    write_store(output, attrs, data.records)
    return data
