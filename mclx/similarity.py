"""What sounds like this: cosine nearest neighbours of queries among a store's rows.

A query is a path already in the store (its stored row: the file's global embedding, or the
mean of its segments), or an audio file embedded with the store's own model and settings
(sha256 checked). ``level`` "global" returns files, "segments" returns moments (a file and
``start_s``-``end_s``). Failed rows are never returned; the query's own file is left out
unless ``include_self``.

Exact search streams the store in chunks of ``CHUNK`` rows (memory follows the chunk, not the
store) and keeps the running top k. ``mclx index`` builds an approximate FAISS index next to
the store (see :mod:`mclx.searchindex`); a search uses it when it is current and says on stderr
when it is stale.

Per-search work does not grow with the store beyond reading its path and status columns: a
query path is normalised (never the stored paths) and compared with the paths as stored; the
store's fingerprint is a root attribute written when it was committed; the index is memory-mapped.
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from mclx import searchindex
from mclx.errors import StoreError, UsageError
from mclx.searchindex import index_path, require_faiss
from mclx.store import MatrixRows, read_attrs, store_mean

__all__ = ["Hit", "Rows", "build_index", "index_path", "require_faiss", "search"]

MIN_CENTRE_ROWS = 100  # fewer embedded rows at a level: the search compares raw embeddings
CHUNK = 65_536  # rows read at a time by exact search
QUERY_BLOCK = 256  # queries scored against a chunk at a time (bounds the (Q, CHUNK) scores)
LOOKUPS = 64  # path look-ups by a scan of the stored paths before a dict of them pays
LEVELS = ("global", "segments")


@dataclass(frozen=True)
class Hit:
    query: str
    rank: int
    path: str
    score: float
    start_s: float | None = None
    end_s: float | None = None

    def as_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {"query": self.query, "rank": self.rank, "path": self.path, "score": self.score}
        if self.start_s is not None:
            out["start_s"], out["end_s"] = self.start_s, self.end_s
        return out


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


# -- queries -------------------------------------------------------------------------------------


def _embed_query(rows: Rows, path: str, device: str) -> np.ndarray:
    """(D,) ``path`` embedded with the store's model, window and hop (its global embedding)."""
    from mclx.models.registry import load_model
    from mclx.pipeline import EmbedSettings, embed
    from mclx.store import read_store

    a = rows.attrs
    try:
        model = load_model(str(a["model"]))
    except UsageError as exc:
        raise UsageError(f"{path}: cannot embed it with the store's model {a['model']} ({exc})") from None
    if model.sha256 != a.get("model_sha256"):
        raise UsageError(
            f"{path}: the store was made by another model than {a['model']} here "
            f"(sha256 {str(a.get('model_sha256'))[:12]}... vs {model.sha256[:12]}...)"
        )
    with tempfile.TemporaryDirectory(prefix="mclx-query-") as tmp:
        out = os.path.join(tmp, "query.h5")
        settings = EmbedSettings(model=str(a["model"]), level="global", window_s=float(a["window_s"]),
                                 hop_s=float(a["hop_s"]), device=device, quiet=True, workers=1)  # fmt: skip
        embed([path], out, settings)
        rec = read_store(out).records[0]
    if rec.status != "ok" or rec.global_ is None:
        raise UsageError(f"{path}: cannot be read as audio ({rec.error})")
    return rec.global_


def resolve_queries(rows: Rows, queries: Sequence[str], device: str = "auto") -> tuple[np.ndarray, list[int]]:
    """(Q, D) unit query vectors and each query's file row in the store (-1: not in it)."""
    own = [rows.find(q) for q in queries]
    vectors = np.empty((len(queries), int(rows.attrs["dim"])), dtype=np.float32)
    known = [j for j, i in enumerate(own) if i >= 0]
    if known:
        vectors[known] = rows.stored([own[j] for j in known])
    for j, q in enumerate(queries):
        if own[j] < 0:
            if not os.path.isfile(q):
                raise UsageError(f"{q}: neither a path in {rows.store} nor an audio file")
            vectors[j] = _embed_query(rows, q, device)
        if not np.isfinite(vectors[j]).all():
            raise UsageError(f"{q}: its row in the store failed to embed")
    return rows.unit(vectors), own


# -- search --------------------------------------------------------------------------------------


def exact_topk(rows: Rows, q: np.ndarray, k: int, exclude: list[int]) -> tuple[np.ndarray, np.ndarray]:
    """(Q, k') scores and row positions, best first, by brute force over chunks of the store.

    The store is read once; each chunk is scored against ``QUERY_BLOCK`` queries at a time."""
    n_q = len(q)
    best_s = np.full((n_q, 0), -np.inf, dtype=np.float32)
    best_i = np.zeros((n_q, 0), dtype=np.int64)
    excl = np.asarray(exclude)[:, None]
    for lo, block in rows.chunks():
        keep = min(k, len(block))
        width = min(k, best_s.shape[1] + keep)
        new_s = np.empty((n_q, width), dtype=np.float32)
        new_i = np.empty((n_q, width), dtype=np.int64)
        files = rows.file[lo : lo + len(block)][None, :]
        for a in range(0, n_q, QUERY_BLOCK):
            b = min(n_q, a + QUERY_BLOCK)
            s = q[a:b] @ block.T  # (Qb, n)
            s[files == excl[a:b]] = -np.inf
            part = np.argpartition(-s, keep - 1, axis=1)[:, :keep]
            cand_s = np.concatenate([best_s[a:b], np.take_along_axis(s, part, axis=1)], axis=1)
            cand_i = np.concatenate([best_i[a:b], part + lo], axis=1)
            order = np.argsort(-cand_s, axis=1, kind="stable")[:, :k]
            new_s[a:b], new_i[a:b] = (
                np.take_along_axis(cand_s, order, axis=1),
                np.take_along_axis(cand_i, order, axis=1),
            )
        best_s, best_i = new_s, new_i
    return best_s, best_i


def build_index(
    store: str, level: str = "global", kind: str | None = None, centred: bool = True
) -> dict[str, Any]:
    """Writes ``STORE.<level>.faiss`` and its ``.json``; returns the latter (see ``searchindex.build``)."""
    return searchindex.build(Rows(store, level, centred), kind)


def search(
    store: str,
    queries: Sequence[str],
    k: int = 10,
    level: str = "global",
    exact: bool = False,
    include_self: bool = False,
    device: str = "auto",
    centred: bool = True,
) -> list[Hit]:
    """The k best hits of every query, in query then rank order. Scores are cosines of the
    embeddings minus the store's mean at that level (``centred``), else of the raw embeddings."""
    if k < 1:
        raise UsageError(f"-k {k}: must be at least 1")
    if not queries:
        raise UsageError("no query given")
    rows = Rows(store, level, centred)
    q, own = resolve_queries(rows, queries, device)
    exclude = [-2] * len(own) if include_self else own
    found = None if exact else searchindex.topk(rows, q, k, exclude)
    scores, ids = found if found is not None else exact_topk(rows, q, k, exclude)
    hits = []
    for j, name in enumerate(queries):
        rank = 0
        for s, i in zip(scores[j], ids[j], strict=True):
            if not np.isfinite(s):
                continue
            rank += 1
            path = rows.path(int(rows.file[i]))
            if level == "segments":
                hits.append(Hit(name, rank, path, float(s), float(rows.starts[i]), float(rows.ends[i])))
            else:
                hits.append(Hit(name, rank, path, float(s)))
    return hits
