"""A store's searchable rows at one level: which file each row belongs to, their unit-length
embeddings (centred on the store's mean), read in chunks or at any positions, and the look-up of
a query path among the stored paths (the query is normalised, never the stored paths)."""

from __future__ import annotations

import os
from collections.abc import Iterator

import numpy as np

from mclx.errors import StoreError, UsageError
from mclx.store.read import MatrixRows, read_attrs, store_mean

MIN_CENTRE_ROWS = 100  # fewer embedded rows at a level: the search compares raw embeddings
CHUNK = 65_536  # rows read at a time by exact search
LOOKUPS = 64  # path look-ups by a scan of the stored paths before a dict of them pays
LEVELS = ("global", "segments")


def _normalise(x: np.ndarray) -> np.ndarray:
    """(n, D) rows scaled to unit length (zero rows stay zero)."""
    x = np.asarray(x, dtype=np.float32)
    norm = np.linalg.norm(x, axis=1, keepdims=True)
    return x / np.maximum(norm, 1e-12)


class Rows:
    """The searchable rows of a store at one level: which file each row belongs to, and their
    unit-length embeddings read on demand (streamed in chunks, or at any positions).

    Stored paths stay UTF-8 bytes as read; only the paths of hits are decoded."""

    def __init__(self, store: str, level: str, centred: bool = True) -> None:
        import h5py

        if level not in LEVELS:
            raise UsageError(f"--level {level}: choose global or segments")
        self.store, self.level = store, level
        self.attrs = read_attrs(store)
        self._lookups = 0
        self._by_path: dict[bytes, int] | None = None
        with h5py.File(store, "r") as h:
            self._paths = np.asarray(h["files/path"][:], dtype=object)  # (N,) bytes
            ok = np.asarray(h["files/status"][:], dtype=object) == b"ok"
            self.has_global = "global" in h
            self.segment_count = h["files/segment_count"][:]
            if level == "global":
                if not self.has_global:
                    raise StoreError(f"{store}: it has no global embeddings (made with --level segment)")
                self.rows = np.flatnonzero(ok)  # (n,) row in /global
                self.file = self.rows
            else:
                if "segments" not in h:
                    raise StoreError(f"{store}: it has no segment embeddings (embed with --level both)")
                seg_file = h["segments/file"][:]
                self.rows = np.flatnonzero(ok[seg_file]) if len(seg_file) else np.zeros(0, np.int64)
                self.file = seg_file[self.rows]
                self.starts = h["segments/start_s"][:][self.rows]
                self.ends = h["segments/end_s"][:][self.rows]
        if not len(self.rows):
            raise UsageError(f"{store}: no embedded rows to search (empty store or every file failed)")
        self._matrix: MatrixRows | None = None
        # (D,) subtracted before the cosine; a store of a few rows keeps the raw cosine (its own
        # mean would be mostly its rows themselves)
        mean, count = store_mean(store, level) if centred else (None, 0)
        self.centre = mean if count >= MIN_CENTRE_ROWS else None

    def unit(self, x: np.ndarray) -> np.ndarray:
        """(n, D) embeddings -> the unit vectors the search compares: centred (minus the store's
        mean at this level) unless the search is raw, then scaled to unit length."""
        x = np.asarray(x, dtype=np.float32)
        return _normalise(x if self.centre is None else x - self.centre)

    @property
    def dataset(self) -> str:
        return "global" if self.level == "global" else "segments/embedding"

    def path(self, file: int) -> str:
        raw = self._paths[file]
        return raw.decode("utf-8", "surrogateescape") if isinstance(raw, bytes) else str(raw)

    def rows_of_file(self, file: int) -> int:
        """How many searchable rows file ``file`` has (1 at global level)."""
        return 1 if self.level == "global" else int(self.segment_count[file])

    def find(self, query: str) -> int:
        """The first file row whose stored path names ``query`` (-1: none).

        The query is tried as given, then normalised, absolute, real (symlinks resolved) and
        relative to the current directory (with and without ``./``); stored paths are compared
        as stored, so a store whose paths went through a symlink is found by those paths."""
        for form in _forms(query):
            raw = form.encode("utf-8", "surrogateescape")
            self._lookups += 1
            if self._lookups <= LOOKUPS:  # a scan costs ~20 ms per million paths, the dict ~1.4 s
                hit = np.flatnonzero(self._paths == raw)
                i = int(hit[0]) if len(hit) else -1
            else:
                if self._by_path is None:
                    n = len(self._paths)
                    self._by_path = dict(zip(self._paths[::-1].tolist(), range(n - 1, -1, -1), strict=True))
                i = self._by_path.get(raw, -1)
            if i >= 0:
                return i
        return -1

    def chunks(self, size: int | None = None) -> Iterator[tuple[int, np.ndarray]]:
        """(offset, (n, D) unit rows) over the searchable rows, in order."""
        import h5py

        size = size or CHUNK
        with h5py.File(self.store, "r") as h:
            ds = h[self.dataset]
            for lo in range(0, len(self.rows), size):
                idx = self.rows[lo : lo + size]
                block = ds[int(idx[0]) : int(idx[-1]) + 1][idx - idx[0]]
                yield lo, self.unit(block)

    def take(self, positions: np.ndarray) -> np.ndarray:
        """(n, D) unit rows at ``positions`` ((n,) int, positions among the searchable rows)."""
        if self._matrix is None:
            self._matrix = MatrixRows(self.store, self.dataset)
        return self.unit(self._matrix.take(self.rows[positions]))

    def stored(self, files: list[int]) -> np.ndarray:
        """(n, D) the stored embeddings of file rows ``files``: global rows, else segment means."""
        import h5py

        if self.has_global:
            with MatrixRows(self.store, "global") as m:
                return m.take(np.asarray(files, dtype=np.int64))
        out = np.empty((len(files), int(self.attrs["dim"])), dtype=np.float32)
        with h5py.File(self.store, "r") as h:
            for j, i in enumerate(files):
                start, count = int(h["files/segment_start"][i]), int(h["files/segment_count"][i])
                out[j] = np.asarray(h["segments/embedding"][start : start + count].mean(axis=0))
        return out


def _forms(query: str) -> list[str]:
    """``query`` and the other spellings of the same file a store may hold, most literal first."""
    forms = [query, os.path.normpath(query), os.path.abspath(query), os.path.realpath(query)]
    for full in forms[2:4]:
        try:
            rel = os.path.relpath(full)
        except ValueError:  # another drive
            continue
        forms += [rel, os.path.join(os.curdir, rel)]
    return list(dict.fromkeys(forms))
