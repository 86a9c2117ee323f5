"""The approximate-search index of a store (``mclx index``): a FAISS file next to the store.

Two kinds, chosen by size. Up to ``HNSW_MAX`` rows, HNSW over the unit rows themselves: its
scores are exact inner products. Above, IVF with 8-bit scalar-quantised codes (IVF-SQ8, a
quarter of the float rows): the index only proposes ``RERANK`` x k candidates per query, and
those are scored again with their exact rows read from the store, so every returned score
equals exact search's and recall is that of the candidate list. SQ8 rather than PQ: on a
clustered 20k x 512 store, re-ranking 100 candidates recovered recall@10 of 1.0 from SQ8 codes
but 0.95 from 64-byte PQ codes (PQ's error is too coarse for the candidate list; it would be
the next step where a quarter of the rows is still too much); on the benchmark's 1M x 512 rows,
4-bit fast-scan PQ codes (32 bytes) reached only 0.71 from 100 candidates, while SQ8 codes gave
1.0 from 20, 40 or 100: ``RERANK`` = 4 (40 candidates for 10 hits) halves the rows re-read.

The index is opened memory-mapped (its pages are read as the search touches them), and it is
tagged with the store's fingerprint: a stale or foreign index is not used (exact search, with
a note on stderr).
"""

from __future__ import annotations

import hashlib
import json
import os
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from mclx.errors import UsageError
from mclx.store.read import store_fingerprint

if TYPE_CHECKING:
    from mclx.search.rows import Rows

HNSW_MAX = 200_000  # rows; above, IVF-SQ8 with re-ranking
NPROBE = 16  # IVF lists scanned per query, at least; and at least 1/NPROBE_SHARE of the lists
NPROBE_SHARE = 256
RERANK = 4  # candidates re-scored from the store, per hit asked for
QUERY_BATCH = 256  # queries whose candidates are re-scored together (bounds their rows in memory)
SEARCH_BATCH = 16_384  # queries per FAISS call (one call spreads them over its threads: 10,000
# queries at 1M rows took 1.3 s in one call, 1.85 s in calls of 256)
KINDS = ("hnsw", "ivf-sq8")


def index_path(store: str, level: str) -> Path:
    return Path(f"{store}.{level}.faiss")


def require_faiss() -> Any:
    try:
        import faiss
    except ImportError:
        raise UsageError("the approximate index needs FAISS: pip install 'mclx[search]'") from None
    return faiss


def fingerprint(rows: Rows) -> str:
    """What an index of a store's rows depends on: the store's fingerprint, the level and whether
    the rows are centred (an index of raw rows does not serve a centred search)."""
    centring = "raw" if rows.centre is None else "centred"
    return hashlib.sha256(f"{store_fingerprint(rows.store)}|{rows.level}|{centring}".encode()).hexdigest()


def build(rows: Rows, kind: str | None = None) -> dict[str, Any]:
    """Writes ``STORE.<level>.faiss`` and its ``.json`` (kind, rows, fingerprint); returns the latter.

    ``kind``: "hnsw" | "ivf-sq8"; by default HNSW up to ``HNSW_MAX`` rows, IVF-SQ8 above."""
    faiss = require_faiss()
    n, dim = len(rows.rows), int(rows.attrs["dim"])
    kind = kind or ("hnsw" if n <= HNSW_MAX else "ivf-sq8")
    if kind == "hnsw":
        index = faiss.IndexHNSWFlat(dim, 32, faiss.METRIC_INNER_PRODUCT)
        index.hnsw.efConstruction = 80
        about = "HNSW (M=32, efConstruction=80, efSearch=128), inner product of unit vectors"
    elif kind == "ivf-sq8":
        nlist = max(1, int(4 * np.sqrt(n)))
        quantizer = faiss.IndexFlatIP(dim)
        index = faiss.IndexIVFScalarQuantizer(
            quantizer, dim, nlist, faiss.ScalarQuantizer.QT_8bit, faiss.METRIC_INNER_PRODUCT
        )
        # 40 rows per list (FAISS asks for 39), spread over the whole store, not its first files.
        sample = np.random.default_rng(0).choice(n, size=min(n, 40 * nlist), replace=False)
        index.train(_streamed(rows, np.sort(sample)))
        about = (f"IVF-SQ8 (nlist={nlist}, nprobe={nprobe(nlist)}), candidates re-ranked with the exact rows "
                 f"({RERANK} x k), inner product of unit vectors")  # fmt: skip
    else:
        raise UsageError(f"index kind {kind}: choose one of {', '.join(KINDS)}")
    for _, block in rows.chunks():
        index.add(block)
    path = index_path(rows.store, rows.level)
    meta = {"kind": about, "index": kind, "rows": n, "dim": dim, "level": rows.level,
            "centred": rows.centre is not None, "fingerprint": fingerprint(rows)}  # fmt: skip
    tmp = path.with_name(path.name + ".tmp")
    faiss.write_index(index, str(tmp))
    os.replace(tmp, path)
    meta_tmp = Path(f"{tmp}.json")
    meta_tmp.write_text(json.dumps(meta, indent=1) + "\n")
    os.replace(meta_tmp, f"{path}.json")
    return meta


def nprobe(nlist: int) -> int:
    """IVF lists scanned per query: ``NPROBE``, or 1/``NPROBE_SHARE`` of the lists where more,
    so the share of the store a query scans shrinks no further as stores grow (the lists grow
    as the square root of the rows). On the benchmark's clustered 1M x 512 rows (4,000 lists),
    8, 16 and 32 lists all gave recall@10 of 1.0 after re-ranking 100 candidates, at 2.8, 5.4 and
    8.1 s per 10,000 queries on one thread: 16 keeps a margin for less separable data."""
    return min(nlist, max(NPROBE, nlist // NPROBE_SHARE))


def _streamed(rows: Rows, positions: np.ndarray) -> np.ndarray:
    """(n, D) unit rows at sorted ``positions`` ((n,) int), gathered in one pass over the store's
    chunks: scattered reads through the memory map would keep most of the store's pages mapped."""
    out = np.empty((len(positions), int(rows.attrs["dim"])), dtype=np.float32)
    for lo, block in rows.chunks():
        a, b = np.searchsorted(positions, [lo, lo + len(block)])
        out[a:b] = block[positions[a:b] - lo]
    return out


def _note(message: str) -> None:
    print(f"mclx search: {message}", file=sys.stderr)


def load(rows: Rows) -> Any | None:
    """The store's current index, memory-mapped; None (with a note on stderr) when it is missing,
    stale or not built from this store."""
    store, n = rows.store, len(rows.rows)
    path = index_path(store, rows.level)
    meta_path = Path(f"{path}.json")
    if not (path.exists() and meta_path.exists()):
        if n > HNSW_MAX:
            _note(f"no index for {store} ({n} rows): exact search; `mclx index {store}` makes it faster")
        return None
    try:
        meta = json.loads(meta_path.read_text())
    except (OSError, ValueError):
        meta = {}
    if not isinstance(meta, dict) or meta.get("fingerprint") != fingerprint(rows):
        _note(
            f"the index of {store} is stale (the store changed, or it was built for a "
            f"{'raw' if rows.centre is not None else 'centred'} search): exact search; run `mclx index "
            f"{store}{'' if rows.centre is not None else ' --raw'}` again"
        )
        return None
    faiss = require_faiss()
    try:
        index = faiss.read_index(str(path), faiss.IO_FLAG_MMAP_IFC)  # pages read as touched
    except (AttributeError, RuntimeError):  # an older FAISS, or a kind it cannot map
        index = faiss.read_index(str(path))
    if index.ntotal != n or index.d != int(rows.attrs["dim"]):
        _note(f"{path} does not match {store} ({index.ntotal} x {index.d}): exact search; "
              f"run `mclx index {store}` again")  # fmt: skip
        return None
    return index


def topk(rows: Rows, q: np.ndarray, k: int, exclude: list[int]) -> tuple[np.ndarray, np.ndarray] | None:
    """(Q, k) scores and row positions, best first (-inf where fewer), from the index; None when
    it cannot be used. ``q``: (Q, D) unit queries; ``exclude``: a file row per query never to return."""
    index = load(rows)
    if index is None:
        return None
    n = len(rows.rows)
    extra = max((rows.rows_of_file(e) for e in exclude if e >= 0), default=0)
    out_s = np.full((len(q), k), -np.inf, dtype=np.float32)
    out_i = np.zeros((len(q), k), dtype=np.int64)
    if hasattr(index, "hnsw"):
        index.hnsw.efSearch = max(128, 2 * k)
        scores, ids = index.search(q, min(n, k + extra))
        for j in range(len(q)):
            good = (ids[j] >= 0) & (rows.file[np.maximum(ids[j], 0)] != exclude[j])
            s, i = scores[j][good][:k], ids[j][good][:k]
            out_s[j, : len(s)], out_i[j, : len(i)] = s, i
        return out_s, out_i
    index.nprobe = nprobe(index.nlist)
    for top in range(0, len(q), SEARCH_BATCH):
        _, found = index.search(q[top : top + SEARCH_BATCH], min(n, RERANK * k + extra))
        for lo in range(top, top + len(found), QUERY_BATCH):
            hi = min(lo + QUERY_BATCH, top + len(found))
            ids = found[lo - top : hi - top]
            out_s[lo:hi], out_i[lo:hi] = _rerank(rows, q[lo:hi], ids, k, exclude[lo:hi])
    return out_s, out_i


def _rerank(
    rows: Rows, q: np.ndarray, ids: np.ndarray, k: int, exclude: list[int]
) -> tuple[np.ndarray, np.ndarray]:
    """(Q, k) exact scores and positions of the best of each query's candidates, best first
    (-inf where fewer). ``q``: (Q, D) unit queries; ``ids``: (Q, W) candidate positions (-1: none).

    Candidates are sorted by position first, so equal scores keep row order, as in exact search."""
    ids = np.sort(ids, axis=1)
    valid = ids >= 0
    safe = np.where(valid, ids, 0)
    valid &= rows.file[safe] != np.asarray(exclude)[:, None]
    unique, inverse = np.unique(safe, return_inverse=True)
    exact = rows.take(unique)  # (u, D) unit rows from the store
    s = np.einsum("qwd,qd->qw", exact[inverse.reshape(ids.shape)], q)  # (Q, W)
    s[~valid] = -np.inf
    if s.shape[1] < k:  # fewer candidates than hits asked for (a tiny store)
        s = np.pad(s, ((0, 0), (0, k - s.shape[1])), constant_values=-np.inf)
        safe = np.pad(safe, ((0, 0), (0, k - safe.shape[1])))
    best = np.argsort(-s, axis=1, kind="stable")[:, :k]
    return np.take_along_axis(s, best, axis=1), np.take_along_axis(safe, best, axis=1)
