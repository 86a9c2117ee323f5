"""What sounds like this: cosine nearest neighbours of queries among a store's rows.

A query is a path already in the store (its stored row: the file's global embedding, or the
mean of its segments), or an audio file embedded with the store's own model and settings
(sha256 checked). ``level`` "global" returns files, "segments" returns moments (a file and
``start_s``-``end_s``). Failed rows are never returned; the query's own file is left out
unless ``include_self``.

Exact search streams the store in chunks of ``CHUNK`` rows (memory follows the chunk, not the
store) and keeps the running top k. ``mclx index`` builds an approximate FAISS index next to
the store (see :mod:`mclx.search.index`); a search uses it when it is current and says on stderr
when it is stale.

Per-search work does not grow with the store beyond reading its path and status columns: a
query path is normalised (never the stored paths) and compared with the paths as stored; the
store's fingerprint is a root attribute written when it was committed; the index is memory-mapped.
"""

from __future__ import annotations

import json
import os
from collections.abc import Sequence
from dataclasses import dataclass
from json.encoder import encode_basestring_ascii
from typing import TYPE_CHECKING, Any

import numpy as np

from mclx.errors import UsageError, WeightsError
from mclx.search import index as searchindex
from mclx.search.index import index_path, require_faiss
from mclx.search.rows import Rows

if TYPE_CHECKING:
    from mclx.embed.plan import EmbedPlan

__all__ = ["Hit", "Rows", "build_index", "index_path", "require_faiss", "search"]

QUERY_BLOCK = 256  # queries scored against a chunk at a time (bounds the (Q, CHUNK) scores)


@dataclass(frozen=True)
class Hit:
    query: str
    rank: int
    path: str
    score: float
    start_s: float | None = None
    end_s: float | None = None

    def json_line(self) -> str:
        """``json.dumps(self.as_json())`` and a newline, made faster (a search prints many)."""
        quoted = encode_basestring_ascii  # a string as json.dumps writes it
        text = f'{{"query": {quoted(self.query)}, "rank": {self.rank}, "path": {quoted(self.path)}, '
        text += f'"score": {json.dumps(self.score)}'
        if self.start_s is not None:
            text += f', "start_s": {json.dumps(self.start_s)}, "end_s": {json.dumps(self.end_s)}'
        return text + "}\n"

    def as_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {"query": self.query, "rank": self.rank, "path": self.path, "score": self.score}
        if self.start_s is not None:
            out["start_s"], out["end_s"] = self.start_s, self.end_s
        return out


# -- queries -------------------------------------------------------------------------------------


def query_plan(rows: Rows, path: str, device: str) -> EmbedPlan:
    """The plan that embeds audio queries as the store's rows were: its model (sha256 checked),
    window and hop, the global level."""
    from mclx.embed.plan import EmbedSettings, make_plan

    a = rows.attrs
    settings = EmbedSettings(model=str(a["model"]), level="global", window_s=float(a["window_s"]),
                             hop_s=float(a["hop_s"]), device=device, quiet=True, workers=1)  # fmt: skip
    try:
        plan = make_plan(settings)
    except UsageError as exc:
        if not (isinstance(exc, WeightsError) or str(exc).startswith("--model")):
            raise  # --device or --precision: about this machine, not the store's model
        raise UsageError(f"{path}: cannot embed it with the store's model {a['model']} ({exc})") from None
    if plan.attrs["model_sha256"] != a.get("model_sha256"):
        raise UsageError(
            f"{path}: the store was made by another model than {a['model']} here "
            f"(sha256 {str(a.get('model_sha256'))[:12]}... vs {plan.attrs['model_sha256'][:12]}...)"
        )
    return plan


def _embed_query(plan: EmbedPlan, path: str) -> np.ndarray:
    """(D,) ``path``'s global embedding, as the store's rows were made."""
    from mclx.embed.file import embed_file

    rec = embed_file(plan, path)
    if rec.status != "ok" or rec.global_ is None:
        raise UsageError(f"{path}: cannot be read as audio ({rec.error})")
    return rec.global_


def resolve_queries(rows: Rows, queries: Sequence[str], device: str = "auto") -> tuple[np.ndarray, list[int]]:
    """(Q, D) unit query vectors and each query's file row in the store (-1: not in it)."""
    own = rows.find_all(queries)
    vectors = np.empty((len(queries), int(rows.attrs["dim"])), dtype=np.float32)
    known = [j for j, i in enumerate(own) if i >= 0]
    if known:
        vectors[known] = rows.stored([own[j] for j in known])
    plan: EmbedPlan | None = None  # the model is loaded once, for the first audio query
    for j, q in enumerate(queries):
        if own[j] < 0:
            if not os.path.isfile(q):
                raise UsageError(f"{q}: neither a path in {rows.store} nor an audio file")
            plan = plan or query_plan(rows, q, device)
            vectors[j] = _embed_query(plan, q)
        if not np.isfinite(vectors[j]).all():
            raise UsageError(f"{q}: its row in the store failed to embed")
    return rows.unit(vectors), own


# -- search --------------------------------------------------------------------------------------


def exact_topk(rows: Rows, q: np.ndarray, k: int, exclude: list[int]) -> tuple[np.ndarray, np.ndarray]:
    """(Q, k') scores and row positions, best first, by brute force over chunks of the store.

    The store is read once; each chunk is scored against ``QUERY_BLOCK`` queries at a time. With
    fewer queries than dimensions the (Q, n) dot products are divided by the rows' lengths, else
    the (n, D) rows are scaled first (whichever divides fewer numbers)."""
    n_q = len(q)
    best_s = np.full((n_q, 0), -np.inf, dtype=np.float32)
    best_i = np.zeros((n_q, 0), dtype=np.int64)
    excl = np.asarray(exclude)[:, None]
    scale_scores = n_q < q.shape[1]
    for lo, block, norm in rows.centred_chunks():
        if not scale_scores:
            block /= norm[:, None]
        keep = min(k, len(block))
        width = min(k, best_s.shape[1] + keep)
        new_s = np.empty((n_q, width), dtype=np.float32)
        new_i = np.empty((n_q, width), dtype=np.int64)
        files = rows.file[lo : lo + len(block)][None, :]
        for a in range(0, n_q, QUERY_BLOCK):
            b = min(n_q, a + QUERY_BLOCK)
            s = q[a:b] @ block.T  # (Qb, n)
            if scale_scores:
                s /= norm
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
    with Rows(store, level, centred) as rows:
        return searchindex.build(rows, kind)


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
    with Rows(store, level, centred) as rows:
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
