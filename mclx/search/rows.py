"""A store's searchable rows at one level: which file each row belongs to, their unit-length
embeddings (centred on the store's mean), read in chunks or at any positions, and the look-up of
a query path among the stored paths (the query is normalised, never the stored paths)."""

from __future__ import annotations

import os
from collections.abc import Iterator, Sequence

import numpy as np

from mclx.errors import StoreError, UsageError
from mclx.store.read import MEANS, MatrixRows, read_attrs, store_mean

MIN_CENTRE_ROWS = 100  # fewer embedded rows at a level: the search compares raw embeddings
CHUNK = 16_384  # rows read at a time by exact search and the index build (32 MiB at 512 dims)
LOOKUPS = 64  # path look-ups by a scan of the stored paths before a dict of them pays
LEVELS = ("global", "segments")


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
        # (D,) subtracted before the cosine, and how many finite rows it is the mean of
        mean, count = store_mean(store, level) if centred else (None, 0)
        with h5py.File(store, "r") as h:
            self._paths = np.asarray(h["files/path"][:], dtype=object)  # (N,) bytes
            n_files = len(self._paths)
            self.has_global = "global" in h
            self.segment_count = h["files/segment_count"][:]
            if level == "global":
                if not self.has_global:
                    raise StoreError(f"{store}: it has no global embeddings (made with --level segment)")
                finite = int(h[MEANS["global"]].attrs["rows"]) if MEANS["global"] in h else -1
                if finite == n_files:
                    # every global row finite (the count written at commit), so no file failed (a
                    # failed file's row is NaN): the status column, a string per file and the
                    # slowest read here, is not needed
                    self.rows = np.arange(n_files)
                else:
                    self.rows = np.flatnonzero(np.asarray(h["files/status"][:], dtype=object) == b"ok")
                self.file = self.rows  # (n,) row in /global
            else:
                ok = np.asarray(h["files/status"][:], dtype=object) == b"ok"
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
        # a store of a few rows keeps the raw cosine (its own mean would be mostly its rows themselves)
        self.centre = mean if count >= MIN_CENTRE_ROWS else None

    def unit(self, x: np.ndarray) -> np.ndarray:
        """(n, D) embeddings -> the unit vectors the search compares: centred (minus the store's
        mean at this level) unless the search is raw, then scaled to unit length."""
        return self._unit_in_place(np.array(x, dtype=np.float32))  # a copy: the caller's stays

    @property
    def dataset(self) -> str:
        return "global" if self.level == "global" else "segments/embedding"

    def path(self, file: int) -> str:
        raw = self._paths[file]
        return raw.decode("utf-8", "surrogateescape") if isinstance(raw, bytes) else str(raw)

    def rows_of_file(self, file: int) -> int:
        """How many searchable rows file ``file`` has (1 at global level)."""
        return 1 if self.level == "global" else int(self.segment_count[file])

    def find_all(self, queries: Sequence[str]) -> list[int]:
        """:meth:`find` of each query; more than ``LOOKUPS`` of them build the dict at once."""
        if len(queries) > LOOKUPS:
            self._path_dict()
        return [self.find(q) for q in queries]

    def find(self, query: str) -> int:
        """The first file row whose stored path names ``query`` (-1: none).

        The query is tried as given, then normalised, absolute, real (symlinks resolved) and
        relative to the current directory (with and without ``./``); stored paths are compared
        as stored, so a store whose paths went through a symlink is found by those paths."""
        for form in _forms(query):
            raw = form.encode("utf-8", "surrogateescape")
            self._lookups += 1
            if self._by_path is None and self._lookups <= LOOKUPS:
                # a scan costs ~20 ms per million paths, the dict ~1.4 s
                hit = np.flatnonzero(self._paths == raw)
                i = int(hit[0]) if len(hit) else -1
            else:
                i = self._path_dict().get(raw, -1)
            if i >= 0:
                return i
        return -1

    def _path_dict(self) -> dict[bytes, int]:
        """Each stored path's first file row (built once)."""
        if self._by_path is None:
            n = len(self._paths)
            self._by_path = dict(zip(self._paths[::-1].tolist(), range(n - 1, -1, -1), strict=True))
        return self._by_path

    def chunks(self, size: int | None = None) -> Iterator[tuple[int, np.ndarray]]:
        """(offset, (n, D) unit rows) over the searchable rows, in order; a block is valid until
        the next one is asked for (see :meth:`centred_chunks`)."""
        for lo, block, norm in self.centred_chunks(size):
            block /= norm[:, None]
            yield lo, block

    def centred_chunks(self, size: int | None = None) -> Iterator[tuple[int, np.ndarray, np.ndarray]]:
        """(offset, (n, D) rows minus the centre, (n,) their lengths (at least 1e-12)) over the
        searchable rows, in order: a row's unit vector is the one divided by the other, which a
        caller scoring few queries does to the (Q, n) scores rather than the (n, D) rows.

        One buffer of ``size`` rows is read into and centred in place, again and again: a block
        is valid until the next one is asked for (copy it to keep it). A run of rows with no
        failed file among them (the usual store) is read straight from the file into it."""
        size = size or CHUNK
        matrix = self._matrix_rows()
        buf = np.empty((min(size, len(self.rows)), int(self.attrs["dim"])), dtype=np.float32)
        for lo in range(0, len(self.rows), size):
            idx = self.rows[lo : lo + size]
            if int(idx[-1]) - int(idx[0]) + 1 == len(idx):
                block = matrix.read_into(int(idx[0]), buf[: len(idx)])
            else:  # failed rows among them: gathered
                block = buf[: len(idx)]
                block[:] = matrix.take(idx)
            yield lo, block, self._centre_in_place(block)

    def _centre_in_place(self, x: np.ndarray) -> np.ndarray:
        """``x`` ((n, D) float32, owned) minus the centre, in place; (n,) its rows' lengths (at
        least 1e-12)."""
        if self.centre is not None:
            np.subtract(x, self.centre, out=x)
        norm = np.sqrt(np.einsum("ij,ij->i", x, x))
        return np.maximum(norm, 1e-12, out=norm)

    def close(self) -> None:
        """Let go of the store's file (its memory map and descriptor), if rows were read."""
        if self._matrix is not None:
            self._matrix.close()
            self._matrix = None

    def __enter__(self) -> Rows:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _matrix_rows(self) -> MatrixRows:
        if self._matrix is None:
            self._matrix = MatrixRows(self.store, self.dataset)
        return self._matrix

    def take(self, positions: np.ndarray) -> np.ndarray:
        """(n, D) unit rows at ``positions`` ((n,) int, positions among the searchable rows)."""
        return self._unit_in_place(self._matrix_rows().take(self.rows[positions]))

    def _unit_in_place(self, x: np.ndarray) -> np.ndarray:
        """``x`` ((n, D) float32, owned) made what :meth:`unit` returns, without another copy."""
        x /= self._centre_in_place(x)[:, None]
        return x

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


def _forms(query: str) -> Iterator[str]:
    """``query`` and the other spellings of the same file a store may hold, most literal first,
    each made only when the ones before it were not found (most queries are found as given)."""
    seen: set[str] = set()

    def new(form: str) -> bool:
        fresh = form not in seen
        seen.add(form)
        return fresh

    for form in (query, os.path.normpath(query)):
        if new(form):
            yield form
    for full in (os.path.abspath(query), os.path.realpath(query)):
        if new(full):
            yield full
        try:
            rel = os.path.relpath(full)
        except ValueError:  # another drive
            continue
        for form in (rel, os.path.join(os.curdir, rel)):
            if new(form):
                yield form
