"""Writing the HDF5 embedding store (format version 1, see the contract): build, merge.

A store is always built under a temporary name and renamed into place, so a reader never
sees a half-written file; it is built by appending bounded slices of rows, read back from
the journal and from earlier stores, so memory does not grow with the number of files.
Incremental progress lives in the journal.
"""

from __future__ import annotations

import contextlib
import heapq
import itertools
import json
import os
from collections import OrderedDict
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import numpy as np

from mclx.errors import StoreError
from mclx.store.journal import read_chunk
from mclx.store.read import FINGERPRINT, MEANS, Fingerprint, read_attrs, read_keys, read_rows
from mclx.store.records import FileRecord, settings_mismatch


def write_store(path: str | os.PathLike[str], attrs: dict[str, Any], records: Iterable[FileRecord]) -> int:
    """Write a complete store atomically; returns its number of rows.

    ``records`` may be stubs whose ``ref`` points at their embeddings in a journal chunk or an
    earlier store: they are read back a slice at a time, so memory follows a batch of rows,
    not the length of ``records``. The store is built under a temporary name next to ``path``
    (resizable, chunked datasets), fsynced and renamed, so ``path`` is never half-written.
    """
    reader = RowReader()
    try:
        with StoreWriter(path, attrs) as writer:
            batch: list[FileRecord] = []
            rows = 0
            for rec in records:
                full = reader.load(rec)
                batch.append(full)
                rows += full.segment_count if full.segments is not None else 0
                if len(batch) >= BATCH_FILES or rows >= BATCH_SEGMENTS:
                    writer.append(batch)
                    batch, rows = [], 0
            writer.append(batch)
            writer.commit()
            return writer.files
    finally:
        reader.close()


BATCH_FILES = 512  # rows of /files appended at a time
BATCH_SEGMENTS = 16_384  # rows of /segments appended at a time (roughly)
CHUNK_BYTES = 1 << 18  # HDF5 chunk size aimed at for 2-D datasets


class StoreWriter:
    """Appends rows to a temporary store with resizable datasets; :meth:`commit` renames it into place.

    Leaving the ``with`` block without a commit removes the temporary file."""

    def __init__(self, path: str | os.PathLike[str], attrs: dict[str, Any]) -> None:
        import h5py

        self.path = Path(path)
        self.tmp = self.path.with_name(f".{self.path.name}.tmp-{os.getpid()}")
        self.level = str(attrs["level"])
        self.dim = int(attrs["dim"])
        self.files = 0
        self.segments = 0
        self.fingerprint = Fingerprint(attrs)
        self.sums = {level: np.zeros(self.dim) for level in MEANS}  # float64 running sums
        self.counts = dict.fromkeys(MEANS, 0)
        # HDF5 writes through a Python file object: a failing write (disk full, file-size
        # limit) then raises an OSError here instead of crashing inside the C library.
        self._raw = _TempFile(self.tmp)
        with _os_errors():
            self._h5 = h5py.File(self._raw, "w")
            for key, value in attrs.items():
                if key != FINGERPRINT:  # commit computes it (a merge's first shard carries its own)
                    self._h5.attrs[key] = value
            text = h5py.string_dtype("utf-8")
            for name in ("path", "status", "error"):
                self._column(f"files/{name}", text)
            self._column("files/duration_s", np.float64)
            for name in ("size_bytes", "mtime_ns", "segment_start", "segment_count"):
                self._column(f"files/{name}", np.int64)
            if self.level in ("global", "both"):
                self._matrix("global")
            if self.level in ("segment", "both"):
                self._matrix("segments/embedding")
                self._column("segments/file", np.int64)
                self._column("segments/start_s", np.float64)
                self._column("segments/end_s", np.float64)

    def _column(self, name: str, dtype: Any) -> None:
        self._h5.create_dataset(name, shape=(0,), maxshape=(None,), dtype=dtype, chunks=(8192,))

    def _matrix(self, name: str) -> None:
        rows = max(1, CHUNK_BYTES // (4 * self.dim))
        self._h5.create_dataset(
            name, shape=(0, self.dim), maxshape=(None, self.dim), dtype=np.float32, chunks=(rows, self.dim)
        )

    def _extend(self, name: str, values: Any) -> None:
        ds = self._h5[name]
        n = len(ds)
        ds.resize(n + len(values), axis=0)
        ds[n:] = values

    def append(self, records: Sequence[FileRecord]) -> None:
        """Append rows (with their embeddings) after the ones already written."""
        if not records:
            return
        counts = np.array([r.segment_count for r in records], dtype=np.int64)
        first = self.segments + np.concatenate([[0], np.cumsum(counts)[:-1]]).astype(np.int64)
        text = {name: _encoded([getattr(r, name) for r in records]) for name in ("path", "status", "error")}
        self.fingerprint.update(
            text["path"],
            text["status"],
            [r.size_bytes for r in records],
            [r.mtime_ns for r in records],
            counts,
        )
        with _os_errors():
            for name, values in text.items():
                self._extend(f"files/{name}", np.array(values, object))
            self._extend("files/duration_s", np.array([r.duration_s for r in records], np.float64))
            self._extend("files/size_bytes", np.array([r.size_bytes for r in records], np.int64))
            self._extend("files/mtime_ns", np.array([r.mtime_ns for r in records], np.int64))
            self._extend("files/segment_start", first)
            self._extend("files/segment_count", counts)
            if self.level in ("global", "both"):
                glob = np.full((len(records), self.dim), np.nan, dtype=np.float32)
                for i, r in enumerate(records):
                    if r.global_ is not None:
                        glob[i] = r.global_
                self._extend("global", glob)
                self._add_to_mean("global", glob)
            if self.level in ("segment", "both"):
                emb = [r.segments for r in records if r.segments is not None and len(r.segments)]
                seg = np.concatenate(emb).astype(np.float32) if emb else np.zeros((0, self.dim), np.float32)
                self._extend("segments/embedding", seg)
                self._add_to_mean("segments", seg)
                rows = np.arange(self.files, self.files + len(records), dtype=np.int64)
                self._extend("segments/file", np.repeat(rows, counts))
                self._extend("segments/start_s", _cat([r.starts for r in records]))
                self._extend("segments/end_s", _cat([r.ends for r in records]))
        self._raw.check()
        self.files += len(records)
        self.segments += int(counts.sum())

    def _add_to_mean(self, level: str, rows: np.ndarray) -> None:
        """Count (n, D) rows into the level's mean (rows with a non-finite value are left out)."""
        finite = rows[np.isfinite(rows).all(axis=1)]
        self.sums[level] += finite.sum(axis=0, dtype=np.float64)
        self.counts[level] += len(finite)

    def commit(self) -> None:
        """Close, fsync and rename the temporary file into place."""
        from mclx.fileio import fsync_dir

        with _os_errors():
            self._h5.attrs[FINGERPRINT] = self.fingerprint.hexdigest()
            for level, name in MEANS.items():
                if self.counts[level]:
                    mean = (self.sums[level] / self.counts[level]).astype(np.float32)
                    self._h5.create_dataset(name, data=mean).attrs["rows"] = self.counts[level]
            self._h5.close()
        self._raw.flush()
        self._raw.check()
        os.fsync(self._raw.fileno())
        self._raw.file.close()
        os.replace(self.tmp, self.path)
        fsync_dir(self.path.parent)

    def close(self) -> None:
        """Drop an uncommitted temporary file (a no-op after :meth:`commit`)."""
        if not self._raw.closed:
            # The temporary file is thrown away: HDF5's last writes are dropped, so its close
            # succeeds even after a failed write (see _TempFile).
            self._raw.error = self._raw.error or OSError("discarded")  # drop the writes to come
            self._h5.close()
            with contextlib.suppress(OSError):
                self._raw.file.close()
        self.tmp.unlink(missing_ok=True)

    def __enter__(self) -> StoreWriter:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class _TempFile:
    """The temporary store's file, as HDF5's file-object driver sees it.

    HDF5 does not survive a failed write (disk full, file-size limit): its error paths leave
    the file half-closed and the interpreter crashes at exit. So a write never fails here: the
    first OSError is kept, later writes are dropped (the file is thrown away), and the writer
    raises the error itself (:meth:`check`)."""

    def __init__(self, path: Path) -> None:
        self.file = open(path, "w+b")  # noqa: SIM115 - closed by StoreWriter
        self.error: OSError | None = None

    def _guard(self, op: Callable[[], Any], pretend: Any) -> Any:
        if self.error is None:
            try:
                return op()
            except OSError as exc:
                self.error = exc
        return pretend

    def write(self, data: Any) -> int:
        return int(self._guard(lambda: self.file.write(data), memoryview(data).nbytes))

    def truncate(self, size: int | None = None) -> int:
        return int(self._guard(lambda: self.file.truncate(size), size if size is not None else 0))

    def flush(self) -> None:
        self._guard(self.file.flush, None)

    def check(self) -> None:
        if self.error is not None:
            raise OSError(self.error.errno, self.error.strerror)

    def __getattr__(self, name: str) -> Any:  # read, readinto, seek, tell, fileno, close, closed
        return getattr(self.file, name)


@contextmanager
def _os_errors() -> Iterator[None]:
    """HDF5 reports a failed write of its Python file object as a SystemError/RuntimeError whose
    cause is the OSError: raise that OSError instead."""
    try:
        yield
    except (SystemError, RuntimeError) as exc:
        cause = exc.__cause__ or exc.__context__
        if isinstance(cause, OSError):
            raise OSError(cause.errno, cause.strerror) from None
        raise


class RowReader:
    """Full rows behind :class:`RowRef` stubs, read in bounded pieces: a few journal chunks and
    one block of rows per earlier store at a time. Rows are mostly asked for in order, so each
    piece is read about once."""

    def __init__(self, block: int = 256, chunks: int = 4) -> None:
        self.block, self.max_chunks = block, chunks
        self._chunks: OrderedDict[Path, list[FileRecord]] = OrderedDict()
        self._stores: dict[Path, Any] = {}
        self._blocks: dict[Path, tuple[int, list[FileRecord]]] = {}

    def load(self, rec: FileRecord) -> FileRecord:
        """``rec`` itself when it holds its embeddings (no ref), else the full row it points at."""
        ref = rec.ref
        if ref is None:
            return rec
        if ref.source.suffix == ".npz":
            return self._chunk(ref.source)[ref.row]
        start, rows = self._blocks.get(ref.source, (0, []))
        if not start <= ref.row < start + len(rows):
            # Read ahead only while rows are asked for in order, doubling up to ``block``: a
            # resume whose inputs come in another order then reads one row at a time.
            size = min(2 * len(rows), self.block) if ref.row == start + len(rows) else 1
            start, rows = ref.row, self._read_block(ref.source, ref.row, size)
            self._blocks[ref.source] = (start, rows)
        return rows[ref.row - start]

    def _chunk(self, path: Path) -> list[FileRecord]:
        if path in self._chunks:
            self._chunks.move_to_end(path)
        else:
            self._chunks[path] = read_chunk(path)
            if len(self._chunks) > self.max_chunks:
                self._chunks.popitem(last=False)
        return self._chunks[path]

    def _read_block(self, path: Path, start: int, size: int) -> list[FileRecord]:
        import h5py

        h = self._stores.get(path)
        if h is None:
            h = self._stores[path] = h5py.File(path, "r")
        return read_rows(h, start, start + max(size, 1))

    def close(self) -> None:
        for h in self._stores.values():
            h.close()
        self._stores.clear()
        self._blocks.clear()
        self._chunks.clear()


def _cat(arrays: list[np.ndarray]) -> np.ndarray:
    return np.concatenate(arrays).astype(np.float64) if arrays else np.zeros(0, np.float64)


def _encoded(texts: list[str]) -> list[bytes]:
    """UTF-8 bytes; a file name that is not valid UTF-8 keeps its raw bytes (surrogateescape)."""
    return [t.encode("utf-8", "surrogateescape") for t in texts]


def merge_stores(output: str, inputs: Iterable[str], order: Sequence[str] | None = None) -> int:
    """Join shard stores made with identical settings into ``output``; returns its number of rows.

    Row order: with ``order`` (the run's whole input list, as torchrun's rank 0 has it), the
    inputs' order, then rows of other paths in shard order. Without it, when every shard lists its
    paths as a directory walk does (a folder's files, sorted, before its subfolders, sorted), the
    shards are interleaved in walk order: for shards of one run over directories the result equals
    the single run's store. Otherwise (explicit file lists) the shards follow each other, each in
    its own order. A path in several shards keeps its first ``ok`` row. Rows are streamed from the
    shards, a slice at a time; only their keys are held.
    """
    inputs = list(inputs)
    if not inputs:
        raise StoreError("merge: no input stores")
    first = read_attrs(inputs[0])
    shards = []
    for path in inputs:
        bad = settings_mismatch(first, read_attrs(path))
        if bad:
            raise StoreError(f"merge: {path} was made with different settings ({', '.join(bad)})")
        shards.append(read_keys(path))
    rows: Iterable[FileRecord]
    if order is not None:
        position = {p: i for i, p in enumerate(order)}
        rows = sorted(itertools.chain(*shards), key=lambda r: position.get(r.path, len(position)))
    elif all(_walk_sorted(shard) for shard in shards):
        rows = heapq.merge(*shards, key=lambda r: walk_order(r.path))
    else:
        rows = itertools.chain(*shards)
    merged: dict[str, FileRecord] = {}
    for rec in rows:
        if rec.path not in merged or merged[rec.path].status != "ok":
            merged[rec.path] = rec
    attrs = dict(first)
    attrs["argv"] = json.dumps(["merge", output, *[str(p) for p in inputs]])
    return write_store(output, attrs, merged.values())


def _walk_sorted(records: Sequence[FileRecord]) -> bool:
    keys = [walk_order(r.path) for r in records]
    return all(a <= b for a, b in itertools.pairwise(keys))


def walk_order(path: str) -> tuple[tuple[int, str], ...]:
    """Sort key that lists paths as ``inputs.walk_audio`` does: in each folder its files (sorted)
    come before its subfolders (sorted)."""
    *folders, name = path.split(os.sep)
    return (*((1, f) for f in folders), (0, name))
