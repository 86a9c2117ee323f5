"""The HDF5 embedding store (format version 1, see the contract): write, read, merge.

A store is always built under a temporary name and renamed into place, so a reader never
sees a half-written file; it is built by appending bounded slices of rows, read back from
the journal and from earlier stores, so memory does not grow with the number of files.
Incremental progress lives in the journal.
"""

from __future__ import annotations

import contextlib
import hashlib
import heapq
import itertools
import json
import os
from collections import OrderedDict
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from mclx.errors import StoreError
from mclx.journal import read_chunk
from mclx.records import SETTINGS_KEYS, FileRecord, RowRef, attr_value, settings_mismatch

FORMAT = "mclx-embeddings"
FORMAT_VERSION = 1
FINGERPRINT = "fingerprint"  # root attribute written at commit (stores made before it lack it)
# Datasets written at commit: the mean of the finite rows at each level, (D,) float32, which
# `mclx search` subtracts before its cosine (stores made before them compute it once per search).
MEANS = {"global": "stats/global_mean", "segments": "stats/segments_mean"}


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


class Fingerprint:
    """sha256 of what an index of a store depends on: the settings its rows were made with and
    every file's path, status, size, mtime and segment count, in row order.

    Each column is hashed on its own, so the writer computes it as it appends rows and a reader
    of an older store (no ``fingerprint`` attribute) computes the same digest from the file."""

    def __init__(self, attrs: dict[str, Any]) -> None:
        settings = json.dumps([attr_value(attrs.get(k)) for k in SETTINGS_KEYS])
        self._head = settings.encode()
        self._columns = [hashlib.sha256() for _ in range(5)]

    def update(
        self,
        paths: Sequence[bytes],
        status: Sequence[bytes],
        size_bytes: Sequence[int] | np.ndarray,
        mtime_ns: Sequence[int] | np.ndarray,
        segment_count: Sequence[int] | np.ndarray,
    ) -> None:
        """Add rows: (n,) each, UTF-8 bytes for the text columns."""
        for digest, text in zip(self._columns[:2], (paths, status), strict=True):
            digest.update(b"".join(t + b"\0" for t in text))
        for digest, ints in zip(self._columns[2:], (size_bytes, mtime_ns, segment_count), strict=True):
            digest.update(np.asarray(ints, dtype="<i8").tobytes())

    def hexdigest(self) -> str:
        out = hashlib.sha256(self._head)
        for digest in self._columns:
            out.update(digest.digest())
        return out.hexdigest()


def store_fingerprint(path: str | os.PathLike[str], block: int = 65_536) -> str:
    """The store's :class:`Fingerprint`: its root attribute, else (a store written before the
    attribute existed) computed from ``/files``, a block of rows at a time."""
    import h5py

    attrs = read_attrs(path)
    if isinstance(attrs.get(FINGERPRINT), str):
        return str(attrs[FINGERPRINT])
    fp = Fingerprint(attrs)
    with h5py.File(path, "r") as h:
        f = h["files"]
        for lo in range(0, len(f["path"]), block):
            cols = [
                f[name][lo : lo + block]
                for name in ("path", "status", "size_bytes", "mtime_ns", "segment_count")
            ]
            fp.update(*([_raw(t) for t in cols[:2]] + cols[2:]))
    return fp.hexdigest()


def store_mean(
    path: str | os.PathLike[str], level: str, block: int = 65_536
) -> tuple[np.ndarray | None, int]:
    """((D,) float32 mean of the finite rows at ``level`` ("global" or "segments"), their number):
    the dataset written at commit, else (an older store) computed a block of rows at a time. The
    mean is None when the level has no finite row."""
    import h5py

    name = MEANS[level]
    with h5py.File(path, "r") as h:
        if name in h:
            return np.asarray(h[name][:], dtype=np.float32), int(h[name].attrs["rows"])
        ds = h["global" if level == "global" else "segments/embedding"]
        total, count = np.zeros(ds.shape[1]), 0
        for lo in range(0, len(ds), block):
            rows = ds[lo : lo + block]
            finite = rows[np.isfinite(rows).all(axis=1)]
            total += finite.sum(axis=0, dtype=np.float64)
            count += len(finite)
    return ((total / count).astype(np.float32) if count else None), count


def _raw(texts: np.ndarray) -> list[bytes]:
    return [t if isinstance(t, bytes) else str(t).encode("utf-8", "surrogateescape") for t in texts]


class MatrixRows:
    """Rows of a 2-D float dataset of a store at any positions, read straight from the file.

    HDF5 spends tens of microseconds on each scattered selection; an unfiltered chunked (or
    contiguous) dataset is plain row-major bytes at known offsets, so rows are read through a
    read-only memory map, one chunk view at a time (filtered data goes through h5py, a chunk
    per read). Memory follows the rows asked for, not the dataset."""

    def __init__(self, path: str | os.PathLike[str], name: str) -> None:
        import h5py

        self._h5 = h5py.File(path, "r")
        ds = self._ds = self._h5[name]
        self.shape: tuple[int, int] = (int(ds.shape[0]), int(ds.shape[1]))
        self.block = int(ds.chunks[0]) if ds.chunks else max(1, self.shape[0])
        self._offsets: np.ndarray | None = None
        self._map: np.memmap[Any, np.dtype[np.uint8]] | None = None
        if not self.shape[0] or ds.id.get_create_plist().get_nfilters():
            return
        offsets = np.full(-(-self.shape[0] // self.block), -1, dtype=np.int64)
        if ds.chunks is None:
            offsets[0] = -1 if ds.id.get_offset() is None else ds.id.get_offset()
        else:
            ds.id.chunk_iter(lambda c: offsets.__setitem__(c.chunk_offset[0] // self.block, c.byte_offset))
        if (offsets >= 0).all():
            self._offsets, self._map = offsets, np.memmap(path, dtype=np.uint8, mode="r")

    def _chunk(self, c: int) -> np.ndarray:
        """(block, D) rows of chunk ``c`` (the last one may hold unwritten rows past the end)."""
        if self._map is None or self._offsets is None:
            return np.asarray(self._ds[c * self.block : (c + 1) * self.block])
        rows = min(self.block, self.shape[0] - c * self.block) if self._ds.chunks is None else self.block
        return np.ndarray((rows, self.shape[1]), self._ds.dtype, self._map, int(self._offsets[c]))

    def take(self, ids: np.ndarray) -> np.ndarray:
        """(n, D) float32: rows ``ids`` ((n,) int, any order, repeats allowed)."""
        ids = np.asarray(ids, dtype=np.int64)
        out = np.empty((len(ids), self.shape[1]), dtype=np.float32)
        if not len(ids):
            return out
        chunk = ids // self.block
        order = np.argsort(chunk, kind="stable")
        first = np.flatnonzero(np.diff(chunk[order], prepend=-1))
        for a, b in zip(first, [*first[1:], len(ids)], strict=True):
            sel = order[a:b]
            c = int(chunk[sel[0]])
            out[sel] = self._chunk(c)[ids[sel] - c * self.block]
        return out

    def close(self) -> None:
        self._map = None
        self._h5.close()

    def __enter__(self) -> MatrixRows:
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
        return _rows(h, start, start + max(size, 1))

    def close(self) -> None:
        for h in self._stores.values():
            h.close()
        self._stores.clear()
        self._blocks.clear()
        self._chunks.clear()


def _rows(h: Any, lo: int, hi: int) -> list[FileRecord]:
    """Rows ``lo:hi`` of an open store, with their embeddings."""
    f = h["files"]
    paths, status, error = (_strings(f[name], lo, hi) for name in ("path", "status", "error"))
    duration, size, mtime = f["duration_s"][lo:hi], f["size_bytes"][lo:hi], f["mtime_ns"][lo:hi]
    seg_start, seg_count = f["segment_start"][lo:hi], f["segment_count"][lo:hi]
    glob = h["global"][lo:hi] if "global" in h else None
    seg_emb = seg_s = seg_e = None
    base = 0
    if "segments" in h and len(paths):
        base, top = int(seg_start[0]), int(seg_start[-1] + seg_count[-1])
        s = h["segments"]
        seg_emb, seg_s, seg_e = s["embedding"][base:top], s["start_s"][base:top], s["end_s"][base:top]
    records = []
    for i, p in enumerate(paths):
        a, n = int(seg_start[i]) - base, int(seg_count[i])
        rec = FileRecord(p, status[i], error[i], float(duration[i]), int(size[i]), int(mtime[i]), n)
        if status[i] == "ok":
            if glob is not None:
                rec.global_ = glob[i]
            if seg_emb is not None and seg_s is not None and seg_e is not None:
                rec.segments, rec.starts, rec.ends = seg_emb[a : a + n], seg_s[a : a + n], seg_e[a : a + n]
        records.append(rec)
    return records


def read_keys(path: str | os.PathLike[str]) -> list[FileRecord]:
    """The rows of a store without embeddings: stubs whose ``ref`` points back at the store."""
    import h5py

    with h5py.File(path, "r") as h:
        f = h["files"]
        paths, status, error = _strings(f["path"]), _strings(f["status"]), _strings(f["error"])
        duration, size, mtime = f["duration_s"][()], f["size_bytes"][()], f["mtime_ns"][()]
        count = f["segment_count"][()]
    source = Path(path)
    return [
        FileRecord(
            p,
            status[i],
            error[i],
            float(duration[i]),
            int(size[i]),
            int(mtime[i]),
            int(count[i]),
            ref=RowRef(source, i),
        )
        for i, p in enumerate(paths)
    ]


def summarize(path: str | os.PathLike[str]) -> dict[str, Any]:
    """Attributes and counts of a store, read from ``/files`` only (no embeddings)."""
    import h5py

    attrs = read_attrs(path)
    with h5py.File(path, "r") as h:
        f = h["files"]
        status = np.array(_strings(f["status"]), dtype=object)
        ok = status == "ok"
        count, duration = f["segment_count"][()], f["duration_s"][()]
        failed = np.flatnonzero(~ok)
        if len(failed):
            paths, errors = _strings(f["path"]), _strings(f["error"])
            failures = [{"path": paths[i], "error": errors[i]} for i in failed]
        else:
            failures = []
    return {
        "attrs": attrs,
        "files": len(status),
        "ok": int(ok.sum()),
        "failed": len(failed),
        "segments": int(count[ok].sum()),
        "audio_s": float(duration[ok].sum()),
        "failures": failures,
    }


def _cat(arrays: list[np.ndarray]) -> np.ndarray:
    return np.concatenate(arrays).astype(np.float64) if arrays else np.zeros(0, np.float64)


def _encoded(texts: list[str]) -> list[bytes]:
    """UTF-8 bytes; a file name that is not valid UTF-8 keeps its raw bytes (surrogateescape)."""
    return [t.encode("utf-8", "surrogateescape") for t in texts]


def _strings(ds: Any, lo: int = 0, hi: int | None = None) -> list[str]:
    return [s.decode("utf-8", "surrogateescape") if isinstance(s, bytes) else str(s) for s in ds[lo:hi]]


def read_attrs(path: str | os.PathLike[str]) -> dict[str, Any]:
    import h5py

    try:
        with h5py.File(path, "r") as h:
            attrs = {k: attr_value(v) for k, v in h.attrs.items()}
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
        records = _rows(h, 0, len(h["files/path"]))
    return StoreData(attrs, records)


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
