"""What sounds like this: cosine nearest neighbours of queries among a store's rows.

A query is a path already in the store (its stored row: the file's global embedding, or the
mean of its segments), or an audio file embedded with the store's own model and settings
(sha256 checked). ``level`` "global" returns files, "segments" returns moments (a file and
``start_s``-``end_s``). Failed rows are never returned; the query's own file is left out
unless ``include_self``.

Exact search streams the store in chunks of ``CHUNK`` rows (memory follows the chunk, not the
store) and keeps the running top k. ``mclx index`` builds an approximate FAISS index next to
the store (HNSW up to ``HNSW_MAX`` rows, IVF above), tagged with the store's fingerprint; a
search uses it when it is current and says on stderr when it is stale.
"""

from __future__ import annotations

import hashlib
import json
import os
import sys
import tempfile
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from mclx.errors import StoreError, UsageError
from mclx.store import read_attrs

CHUNK = 65_536
HNSW_MAX = 200_000
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


def _strings(ds: Any) -> list[str]:
    return [v.decode() if isinstance(v, bytes) else str(v) for v in ds[:]]


def _normalise(x: np.ndarray) -> np.ndarray:
    """(n, D) rows scaled to unit length (zero rows stay zero)."""
    x = np.asarray(x, dtype=np.float32)
    norm = np.linalg.norm(x, axis=1, keepdims=True)
    return x / np.maximum(norm, 1e-12)


class Rows:
    """The searchable rows of a store at one level: which file each row belongs to, and chunks
    of their unit-length embeddings read on demand."""

    def __init__(self, store: str, level: str) -> None:
        import h5py

        if level not in LEVELS:
            raise UsageError(f"--level {level}: choose global or segments")
        self.store, self.level = store, level
        self.attrs = read_attrs(store)
        with h5py.File(store, "r") as h:
            self.paths = _strings(h["files/path"])
            ok = np.asarray([s == "ok" for s in _strings(h["files/status"])])
            if level == "global":
                if "global" not in h:
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

    @property
    def dataset(self) -> str:
        return "global" if self.level == "global" else "segments/embedding"

    def chunks(self, size: int = CHUNK) -> Iterator[tuple[int, np.ndarray]]:
        """(offset, (n, D) unit rows) over the searchable rows, in order."""
        import h5py

        with h5py.File(self.store, "r") as h:
            ds = h[self.dataset]
            for lo in range(0, len(self.rows), size):
                idx = self.rows[lo : lo + size]
                block = ds[int(idx[0]) : int(idx[-1]) + 1][idx - idx[0]]
                yield lo, _normalise(block)

    def fingerprint(self) -> str:
        """sha256 of what the index depends on: model, level, and every file's key and status."""
        import h5py

        digest = hashlib.sha256(f"{self.attrs.get('model_sha256')}|{self.level}|".encode())
        with h5py.File(self.store, "r") as h:
            for name in ("path", "status"):  # text: hashed as text (object arrays hold pointers)
                digest.update("\0".join(_strings(h[f"files/{name}"])).encode())
            for name in ("size_bytes", "mtime_ns", "segment_count"):
                digest.update(np.asarray(h[f"files/{name}"][:], dtype=np.int64).tobytes())
        digest.update(self.rows.tobytes())
        return digest.hexdigest()


# -- queries -------------------------------------------------------------------------------------


def _stored_query(rows: Rows, index: int) -> np.ndarray:
    """(D,) the stored embedding of file ``index``: its global row, else its segments' mean."""
    import h5py

    with h5py.File(rows.store, "r") as h:
        if "global" in h:
            return np.asarray(h["global"][index], dtype=np.float32)
        start, count = int(h["files/segment_start"][index]), int(h["files/segment_count"][index])
        return np.asarray(h["segments/embedding"][start : start + count].mean(axis=0), dtype=np.float32)


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
    index: dict[str, int] = {}
    for i, p in enumerate(rows.paths):
        index.setdefault(p, i)
        index.setdefault(os.path.realpath(p), i)
    vectors, own = [], []
    for q in queries:
        i = index.get(q, index.get(os.path.realpath(q), -1))
        if i >= 0:
            vectors.append(_stored_query(rows, i))
        elif os.path.isfile(q):
            vectors.append(_embed_query(rows, q, device))
        else:
            raise UsageError(f"{q}: neither a path in {rows.store} nor an audio file")
        if not np.isfinite(vectors[-1]).all():
            raise UsageError(f"{q}: its row in the store failed to embed")
        own.append(i)
    return _normalise(np.stack(vectors)), own


# -- search --------------------------------------------------------------------------------------


def exact_topk(rows: Rows, q: np.ndarray, k: int, exclude: list[int]) -> tuple[np.ndarray, np.ndarray]:
    """(Q, k') scores and row positions, best first, by brute force over chunks of the store."""
    n_q = len(q)
    best_s = np.full((n_q, 0), -np.inf, dtype=np.float32)
    best_i = np.zeros((n_q, 0), dtype=np.int64)
    excl = np.asarray(exclude)[:, None]
    for lo, block in rows.chunks():
        s = q @ block.T  # (Q, n)
        s[rows.file[lo : lo + len(block)][None, :] == excl] = -np.inf
        keep = min(k, s.shape[1])
        part = np.argpartition(-s, keep - 1, axis=1)[:, :keep]
        cand_s = np.concatenate([best_s, np.take_along_axis(s, part, axis=1)], axis=1)
        cand_i = np.concatenate([best_i, part + lo], axis=1)
        order = np.argsort(-cand_s, axis=1, kind="stable")[:, :k]
        best_s, best_i = np.take_along_axis(cand_s, order, axis=1), np.take_along_axis(cand_i, order, axis=1)
    return best_s, best_i


def index_path(store: str, level: str) -> Path:
    return Path(f"{store}.{level}.faiss")


def require_faiss() -> Any:
    try:
        import faiss
    except ImportError:
        raise UsageError("the approximate index needs FAISS: pip install 'mclx[search]'") from None
    return faiss


def build_index(store: str, level: str = "global") -> dict[str, Any]:
    """Writes ``STORE.<level>.faiss`` and its ``.json`` (kind, rows, fingerprint); returns the latter."""
    faiss = require_faiss()
    rows = Rows(store, level)
    n, dim = len(rows.rows), int(rows.attrs["dim"])
    if n <= HNSW_MAX:
        index = faiss.IndexHNSWFlat(dim, 32, faiss.METRIC_INNER_PRODUCT)
        index.hnsw.efConstruction = 80
        kind = "HNSW (M=32, efConstruction=80, efSearch=128), inner product of unit vectors"
    else:
        nlist = int(4 * np.sqrt(n))
        quantizer = faiss.IndexFlatIP(dim)
        index = faiss.IndexIVFFlat(quantizer, dim, nlist, faiss.METRIC_INNER_PRODUCT)
        sample = np.concatenate([b for _, b in rows.chunks()][: max(1, (64 * nlist) // CHUNK + 1)])
        index.train(sample)
        kind = f"IVF-Flat (nlist={nlist}, nprobe=32), inner product of unit vectors"
    for _, block in rows.chunks():
        index.add(block)
    path = index_path(store, level)
    tmp = path.with_name(path.name + ".tmp")
    faiss.write_index(index, str(tmp))
    os.replace(tmp, path)
    meta = {"kind": kind, "rows": n, "level": level, "fingerprint": rows.fingerprint()}
    Path(f"{path}.json").write_text(json.dumps(meta, indent=1) + "\n")
    return meta


def _index_topk(
    rows: Rows, q: np.ndarray, k: int, exclude: list[int]
) -> tuple[np.ndarray, np.ndarray] | None:
    """The index's answer, or None (with a note on stderr) when it is missing or stale."""
    path = index_path(rows.store, rows.level)
    meta_path = Path(f"{path}.json")
    if not (path.exists() and meta_path.exists()):
        if len(rows.rows) > HNSW_MAX:
            print(f"mclx search: no index for {rows.store} ({len(rows.rows)} rows): exact search; "
                  f"`mclx index {rows.store}` makes it faster", file=sys.stderr)  # fmt: skip
        return None
    if json.loads(meta_path.read_text()).get("fingerprint") != rows.fingerprint():
        print(f"mclx search: the index of {rows.store} is stale (the store changed): exact search; "
              f"run `mclx index {rows.store}` again", file=sys.stderr)  # fmt: skip
        return None
    faiss = require_faiss()
    index = faiss.read_index(str(path))
    if hasattr(index, "hnsw"):
        index.hnsw.efSearch = max(128, 2 * k)
    if hasattr(index, "nprobe"):
        index.nprobe = 32
    extra = max((int((rows.file == e).sum()) for e in exclude if e >= 0), default=0)
    scores, ids = index.search(q, min(len(rows.rows), k + extra))
    out_s = np.full((len(q), k), -np.inf, dtype=np.float32)
    out_i = np.zeros((len(q), k), dtype=np.int64)
    for j in range(len(q)):
        good = (ids[j] >= 0) & (rows.file[np.maximum(ids[j], 0)] != exclude[j])
        s, i = scores[j][good][:k], ids[j][good][:k]
        out_s[j, : len(s)], out_i[j, : len(i)] = s, i
    return out_s, out_i


def search(
    store: str,
    queries: Sequence[str],
    k: int = 10,
    level: str = "global",
    exact: bool = False,
    include_self: bool = False,
    device: str = "auto",
) -> list[Hit]:
    """The k best hits of every query, in query then rank order."""
    if k < 1:
        raise UsageError(f"-k {k}: must be at least 1")
    if not queries:
        raise UsageError("no query given")
    rows = Rows(store, level)
    q, own = resolve_queries(rows, queries, device)
    exclude = [-2] * len(own) if include_self else own
    found = None if exact else _index_topk(rows, q, k, exclude)
    scores, ids = found if found is not None else exact_topk(rows, q, k, exclude)
    hits = []
    for j, name in enumerate(queries):
        rank = 0
        for s, i in zip(scores[j], ids[j], strict=True):
            if not np.isfinite(s):
                continue
            rank += 1
            path = rows.paths[int(rows.file[i])]
            if level == "segments":
                hits.append(Hit(name, rank, path, float(s), float(rows.starts[i]), float(rows.ends[i])))
            else:
                hits.append(Hit(name, rank, path, float(s)))
    return hits
