"""The embed journal: finished files appended as small atomic chunk files next to the output.

``OUTPUT.h5.journal/`` holds ``settings.json``, a ``lock`` file (one writer at a time) and
``chunk-NNNNNNNN.npz`` files. Each chunk is written to a temporary name, fsynced and
renamed, so a kill -9 at any instant leaves only whole chunks; the next run checks them (CRC-32
of every member), reads back their keys and carries on. A damaged chunk is renamed
``damaged-chunk-NNNNNNNN.npz`` and its files are embedded again. When the store is complete the
journal is removed.
"""

from __future__ import annotations

import io
import json
import os
import shutil
import zipfile
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from mclx.errors import StoreError, UsageError
from mclx.fileio import atomic_write_bytes
from mclx.locks import try_lock, unlock
from mclx.store.records import FileRecord, RowRef, settings_mismatch

OVERWRITE_KEY = "journal_replaces_store"


class Journal:
    def __init__(self, output: str | os.PathLike[str]) -> None:
        self.output = Path(output)
        self.dir = self.output.with_name(self.output.name + ".journal")
        self._lock_fd: int | None = None
        self._next = 0
        self.damaged: list[str] = []  # one line per chunk set aside by open()

    def pending_overwrite(self, attrs: dict[str, Any]) -> bool:
        """Whether an unfinished ``--overwrite`` run with these settings left this journal: the
        next run (with or without the flag) carries on replacing the old store."""
        try:
            previous = json.loads((self.dir / "settings.json").read_text())
        except (OSError, ValueError):
            return False
        return bool(previous.get(OVERWRITE_KEY)) and not settings_mismatch(previous, attrs)

    def open(self, attrs: dict[str, Any], fresh: bool, overwrite: bool = False) -> list[FileRecord]:
        """Take the lock and return the records already journaled (none when ``fresh``), as stubs
        without embeddings whose ``ref`` points at their chunk.

        ``overwrite``: this run replaces the old store (recorded, see :meth:`pending_overwrite`)."""
        self.dir.mkdir(exist_ok=True)
        fd = try_lock(self.dir / "lock")
        if fd is None:
            raise UsageError(
                f"{self.output}: another mclx embed is writing this output (lock {self.dir / 'lock'})"
            )
        self._lock_fd = fd
        settings_file = self.dir / "settings.json"
        chunks = sorted(self.dir.glob("chunk-*.npz"))
        if fresh:
            for chunk in chunks:
                chunk.unlink()
            chunks = []
        elif settings_file.exists():
            previous = json.loads(settings_file.read_text())
            bad = settings_mismatch(previous, attrs)
            if bad:
                raise StoreError(
                    f"{self.output}: an unfinished run used other settings ({', '.join(bad)}); "
                    "use --overwrite to start again"
                )
        atomic_write_bytes(
            settings_file, json.dumps({**attrs, OVERWRITE_KEY: overwrite}, sort_keys=True).encode()
        )
        records: list[FileRecord] = []
        for chunk in chunks:
            self._next = max(self._next, int(chunk.stem.split("-")[1]) + 1)
            try:
                _verify(chunk)
                records.extend(_read_keys(chunk))
            except StoreError as exc:
                # A damaged chunk (disk error, a stray write) costs only its own files, which
                # are embedded again: set it aside instead of failing a run of many hours.
                kept = chunk.with_name(f"damaged-{chunk.name}")
                chunk.rename(kept)
                self.damaged.append(f"{exc.args[0]}; its files are embedded again (kept as {kept})")
        for stale in self.dir.glob(".chunk-*"):
            stale.unlink()
        return records

    def append(self, records: Sequence[FileRecord], dim: int) -> Path | None:
        """Write ``records`` as the next chunk; returns its path (None when there was nothing)."""
        if not records:
            return None
        chunk = self.dir / f"chunk-{self._next:08d}.npz"
        atomic_write_bytes(chunk, _chunk_bytes(records, dim))
        self._next += 1
        return chunk

    def remove(self) -> None:
        """Delete the journal (the store now holds everything) and release the lock."""
        shutil.rmtree(self.dir, ignore_errors=True)
        self.close()

    def close(self) -> None:
        if self._lock_fd is not None:
            unlock(self._lock_fd)
            self._lock_fd = None


def _chunk_bytes(records: Sequence[FileRecord], dim: int) -> bytes:
    meta = [
        {
            "path": r.path,
            "status": r.status,
            "error": r.error,
            "duration_s": r.duration_s,
            "size_bytes": r.size_bytes,
            "mtime_ns": r.mtime_ns,
            "segment_count": r.segment_count,
            "has_segments": r.segments is not None,
        }
        for r in records
    ]
    glob = np.full((len(records), dim), np.nan, dtype=np.float32)
    for i, r in enumerate(records):
        if r.global_ is not None:
            glob[i] = r.global_
    segs = [r.segments for r in records if r.segments is not None]
    buf = io.BytesIO()
    np.savez(
        buf,
        meta=np.frombuffer(json.dumps(meta).encode(), dtype=np.uint8),
        global_=glob,
        segments=np.concatenate(segs) if segs else np.zeros((0, dim), np.float32),
        starts=np.concatenate([r.starts for r in records if r.segments is not None] or [np.zeros(0)]),
        ends=np.concatenate([r.ends for r in records if r.segments is not None] or [np.zeros(0)]),
    )
    return buf.getvalue()


def _verify(path: Path) -> None:
    """Read the whole chunk once, checking every member's CRC-32 (what np.load checks only when
    the store is built, at the end of the run)."""
    try:
        with zipfile.ZipFile(path) as z:
            bad = z.testzip()
    except Exception as exc:
        raise _damaged(path, exc) from None
    if bad is not None:
        raise _damaged(path, f"member {bad} fails its CRC check")


def _read_keys(path: Path) -> list[FileRecord]:
    """A chunk's rows without their embeddings (only the small ``meta`` array is read)."""
    try:
        with np.load(path, allow_pickle=False) as z:
            meta = json.loads(z["meta"].tobytes().decode())
    except Exception as exc:
        raise _damaged(path, exc) from None
    return [_stub(m, RowRef(path, i)) for i, m in enumerate(meta)]


def _stub(m: dict[str, Any], ref: RowRef | None = None) -> FileRecord:
    return FileRecord(
        m["path"],
        m["status"],
        m["error"],
        m["duration_s"],
        m["size_bytes"],
        m["mtime_ns"],
        m["segment_count"],
        ref=ref,
    )


def _damaged(path: Path, why: object) -> StoreError:
    return StoreError(f"{path}: damaged journal chunk ({why})")


def _unreadable(path: Path, exc: Exception) -> StoreError:
    return StoreError(
        f"{path}: unreadable journal chunk ({exc}); run the same command again: damaged chunks are "
        "set aside and their files embedded again"
    )


def read_chunk(path: Path) -> list[FileRecord]:
    """A chunk's rows with their embeddings."""
    try:
        with np.load(path, allow_pickle=False) as z:
            meta = json.loads(z["meta"].tobytes().decode())
            glob, segs, starts, ends = z["global_"], z["segments"], z["starts"], z["ends"]
    except Exception as exc:
        raise _unreadable(path, exc) from None
    records, offset = [], 0
    for i, m in enumerate(meta):
        rec = _stub(m)
        if rec.status == "ok":
            rec.global_ = glob[i]
        if m["has_segments"]:
            n = rec.segment_count
            rec.segments = segs[offset : offset + n]
            rec.starts, rec.ends = starts[offset : offset + n], ends[offset : offset + n]
            offset += n
        records.append(rec)
    return records
