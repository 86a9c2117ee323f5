"""Is `mclx search` useful? Precision@10 of its neighbours on the `gamesrc` task, beside `mclx probe`.

    python -m benchmarks.search_gamesrc --stores RUNS/stores/gamesrc/mclx-base.h5 RUNS/stores/gamesrc/mfcc.h5

Each store must hold every clip of the task (all splits), embedded by one model. Every test clip
is a query (a path already in the store: its stored row); its neighbours are the train and valid
clips (the probe's retrieval database), a hit is a clip of the same game. Per store:

- ``centred`` and ``raw``: `mclx.search` (exact; the cosine of the embeddings minus the store's
  mean, the default, or of the embeddings as stored, ``--raw``), test clips dropped from its hit
  lists: what a user of `mclx search` gets;
- ``reference``: the centred search by a numpy reference (`mclx.probe.metrics.retrieval_per_query`
  on the centred rows): must equal ``centred`` (a check on real data, not only synthetic stores);
- ``probe``: what `mclx probe` reports (precision@10 of its cosine retrieval, which standardises
  the features with the train split's statistics first);
- the spread of the scores a person reads: the 5th, 50th and 95th percentiles of the scores of
  unrelated pairs (a test clip and a database clip of another game) and of related ones (the
  same game), raw and centred.

Then the paired differences centred minus raw, and first store minus each other one (centred),
on search precision@10: 95% percentile bootstrap over the test clips, 2,000 resamples.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
from pathlib import Path

import numpy as np

from mclx import search
from mclx.probe import metrics
from mclx.probe.run import ProbeSettings, run_probe
from mclx.probe.tasks import load_task, resolve_data
from mclx.store import read_store

K = metrics.K_RETRIEVAL


def search_precision(
    store: str, queries: list[str], labels: dict[str, int], database: set[str], centred: bool
) -> np.ndarray:
    """(Q,) precision@K of `mclx search`'s hits, keeping only hits in ``database``."""
    extra = len(queries)  # enough to fill K after dropping the other test clips
    hits = search(store, queries, k=K + extra, exact=True, centred=centred)
    found: dict[str, list[str]] = {q: [] for q in queries}
    for h in hits:
        real = os.path.realpath(h.path)
        if real in database and len(found[h.query]) < K:
            found[h.query].append(real)
    q_label = {q: labels[os.path.realpath(q)] for q in queries}
    return np.array([np.mean([labels[p] == q_label[q] for p in found[q]]) for q in queries])


def rows_of(store: str, test: list[str], db: list[str], centred: bool) -> tuple[np.ndarray, np.ndarray]:
    """(Q, D) test rows and (N, D) database rows, minus the mean of the store's finite rows."""
    data = read_store(store)
    index = {os.path.realpath(p): i for i, p in enumerate(data.paths)}
    x = data.global_matrix().astype(np.float64)
    if centred:
        x = x - np.nanmean(x[np.isfinite(x).all(axis=1)], axis=0)
    return x[[index[p] for p in test]], x[[index[p] for p in db]]


def reference_precision(store: str, test: list[str], db: list[str], labels: dict[str, int]) -> np.ndarray:
    xq, xd = rows_of(store, test, db, centred=True)
    relevant = np.array([[labels[a] == labels[b] for b in db] for a in test])
    return metrics.retrieval_per_query(xq.astype(np.float32), xd.astype(np.float32), relevant)[1]


def spread(store: str, test: list[str], db: list[str], labels: dict[str, int], centred: bool) -> str:
    """Percentiles 5/50/95 of the cosine of unrelated (other game) and related (same game) pairs."""
    xq, xd = rows_of(store, test, db, centred)
    s = (xq / np.linalg.norm(xq, axis=1, keepdims=True)) @ (xd / np.linalg.norm(xd, axis=1, keepdims=True)).T
    same = np.array([[labels[a] == labels[b] for b in db] for a in test])
    parts = []
    for name, mask in (("unrelated", ~same), ("related", same)):
        lo, mid, hi = np.percentile(s[mask], [5, 50, 95])
        parts.append(f"{name} {lo:+.3f} / {mid:+.3f} / {hi:+.3f}")
    return "; ".join(parts)


def paired(d: np.ndarray, rng: np.random.Generator) -> str:
    boot = [d[rng.integers(0, len(d), len(d))].mean() for _ in range(2000)]
    lo, hi = np.percentile(boot, [2.5, 97.5])
    return f"{d.mean():+.4f} [{lo:+.4f}, {hi:+.4f}]"


def probe_precision(stores: list[str], data: str) -> dict[str, float]:
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "probe.json"
        s = ProbeSettings(
            "gamesrc", data, embeddings=tuple(stores), head="linear", seeds=1, out=str(out), quiet=True
        )
        report = run_probe(s)
    return {
        r["features"]: r["mean"]
        for r in report["results"]
        if r["head"] == "cosine" and r["metric"] == "precision_at_10"
    }


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--stores", nargs="+", required=True, help="stores of every gamesrc clip")
    ap.add_argument("--data", default=None, help="the gamesrc task (default: $MCLX_DATA/gamesrc)")
    args = ap.parse_args(argv)
    data = resolve_data("gamesrc", args.data)
    task = load_task("gamesrc", data, None)
    paths = [os.path.realpath(p) for p in task.paths]
    y = task.targets()
    labels = dict(zip(paths, (int(v) for v in y), strict=True))
    split = np.asarray(task.splits)
    test = [p for p, s in zip(paths, split, strict=True) if s == "test"]
    db = [p for p, s in zip(paths, split, strict=True) if s in ("train", "valid")]
    probed = probe_precision(args.stores, data)
    per_store: dict[str, np.ndarray] = {}
    rng = np.random.default_rng(0)
    print(f"gamesrc: {len(test)} test queries, {len(db)} train+valid clips, {len(task.classes)} games")
    print(f"{'store':<40} {'centred P@10':>12} {'raw P@10':>9} {'reference':>10} {'probe':>8}")
    for store in args.stores:
        p = search_precision(store, test, labels, set(db), centred=True)
        raw = search_precision(store, test, labels, set(db), centred=False)
        ref = reference_precision(store, test, db, labels)
        per_store[store] = p
        reported = probed.get(Path(store).name, probed.get(store, float("nan")))
        print(f"{store:<40} {p.mean():>12.4f} {raw.mean():>9.4f} {ref.mean():>10.4f} {reported:>8.4f}")
        print(f"  centred - raw: {paired(p - raw, rng)}")
        for centred in (False, True):
            print(f"  scores {'centred' if centred else 'raw':<8} {spread(store, test, db, labels, centred)}")
        if not np.allclose(p, ref):
            differ = int((~np.isclose(p, ref)).sum())
            print(f"  search and the reference differ on {differ} queries", file=sys.stderr)
    first = args.stores[0]
    for other in args.stores[1:]:
        d = per_store[first] - per_store[other]
        print(f"{Path(first).name} - {Path(other).name} (centred): {paired(d, rng)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
