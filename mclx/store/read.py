"""Reading the HDF5 embedding store (format version 1, see the contract): attributes, rows,
keys, counts, means and fingerprints, and rows of its matrices at any positions."""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from mclx.errors import StoreError
from mclx.store.records import SETTINGS_KEYS, FileRecord, RowRef, attr_value

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
        self._fd = -1  # the file opened for positional reads (read_into), with the map
        if not self.shape[0] or ds.id.get_create_plist().get_nfilters():
            return
        offsets = np.full(-(-self.shape[0] // self.block), -1, dtype=np.int64)
        if ds.chunks is None:
            offsets[0] = -1 if ds.id.get_offset() is None else ds.id.get_offset()
        else:
            ds.id.chunk_iter(lambda c: offsets.__setitem__(c.chunk_offset[0] // self.block, c.byte_offset))
        if (offsets >= 0).all():
            self._offsets, self._map = offsets, np.memmap(path, dtype=np.uint8, mode="r")
            self._fd = os.open(path, os.O_RDONLY)

    def _chunk(self, c: int) -> np.ndarray:
        """(block, D) rows of chunk ``c`` through h5py (filtered data)."""
        return np.asarray(self._ds[c * self.block : (c + 1) * self.block])

    def take(self, ids: np.ndarray) -> np.ndarray:
        """(n, D) float32: rows ``ids`` ((n,) int, any order, repeats allowed)."""
        ids = np.asarray(ids, dtype=np.int64)
        out = np.empty((len(ids), self.shape[1]), dtype=np.float32)
        if not len(ids):
            return out
        if ids.min() < 0 or ids.max() >= self.shape[0]:
            raise IndexError(f"rows {ids.min()}..{ids.max()} of {self._ds.name}: it has {self.shape[0]}")
        if self._map is not None and self._offsets is not None and self._ds.dtype == np.float32:
            # every row is row_bytes at a known byte offset: one gather over a view of the map
            # whose i-th "row" is the row_bytes starting at byte i (no copy until the gather)
            row_bytes = 4 * self.shape[1]
            chunk = ids // self.block
            at = self._offsets[chunk] + (ids - chunk * self.block) * row_bytes
            rows = np.lib.stride_tricks.as_strided(
                self._map, shape=(len(self._map) - row_bytes + 1, row_bytes), strides=(1, 1), writeable=False
            )
            out.view(np.uint8).reshape(len(ids), row_bytes)[:] = rows[at]
            return out
        chunk = ids // self.block
        order = np.argsort(chunk, kind="stable")
        first = np.flatnonzero(np.diff(chunk[order], prepend=-1))
        for a, b in zip(first, [*first[1:], len(ids)], strict=True):
            sel = order[a:b]
            c = int(chunk[sel[0]])
            out[sel] = self._chunk(c)[ids[sel] - c * self.block]
        return out

    def read_into(self, lo: int, out: np.ndarray) -> np.ndarray:
        """``out`` ((n, D) float32, C-contiguous) filled with rows ``lo`` to ``lo + n``; returned.

        For a sequential pass over the dataset: each chunk's part is copied straight from the file
        into ``out`` (``os.preadv``), so a buffer reused between calls is the only memory it takes
        (no fresh arrays, no mapped pages kept); filtered data goes through h5py."""
        n, dim = out.shape
        if lo < 0 or lo + n > self.shape[0] or dim != self.shape[1] or not out.flags.c_contiguous:
            raise ValueError(f"read_into: rows {lo}..{lo + n} x {dim} do not fit {self.shape}")
        if self._fd < 0 or self._offsets is None or out.dtype != self._ds.dtype:
            self._ds.read_direct(out, np.s_[lo : lo + n])
            return out
        view = memoryview(out.reshape(-1).view(np.uint8).data)
        row_bytes = dim * out.itemsize
        at = lo
        while at < lo + n:
            c = at // self.block
            upto = min(lo + n, (c + 1) * self.block)
            start = int(self._offsets[c]) + (at - c * self.block) * row_bytes
            want = (upto - at) * row_bytes
            dst = (at - lo) * row_bytes
            got = 0
            while got < want:  # a short read goes on from where it stopped
                more = os.preadv(self._fd, [view[dst + got : dst + want]], start + got)
                if more <= 0:
                    raise StoreError(f"{self._h5.filename}: ends inside {self._ds.name}")
                got += more
            at = upto
        return out

    def close(self) -> None:
        self._map = None
        if self._fd >= 0:
            os.close(self._fd)
            self._fd = -1
        self._h5.close()

    def __enter__(self) -> MatrixRows:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def read_rows(h: Any, lo: int, hi: int) -> list[FileRecord]:
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
        records = read_rows(h, 0, len(h["files/path"]))
    return StoreData(attrs, records)
