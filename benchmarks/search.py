"""Exact search against the FAISS index on synthetic stores, side by side in one run.

    python -m benchmarks.search --sizes 10000,100000,1000000 --dim 512 --queries 200

For each size: a store of clustered unit vectors (written once under --dir), then in a fresh
process each: the index build (`mclx index`) time and peak RSS, exact queries/s and peak RSS,
indexed queries/s, and recall@10 of the index against exact search. One JSON line per size on
stdout, a table on stderr.
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import time
from pathlib import Path

import numpy as np


def write_synthetic_store(path: Path, n: int, dim: int, seed: int = 0) -> None:
    """A global-level store of ``n`` clustered rows, written a block at a time."""
    from mclx.store import FileRecord, StoreWriter

    rng = np.random.default_rng(seed)
    centres = rng.standard_normal((max(16, n // 200), dim)).astype(np.float32)
    attrs = {"format": "mclx-embeddings", "format_version": 1, "mclx_version": "bench", "model": "synthetic",
             "model_sha256": "0" * 64, "model_config": "{}", "sample_rate": 16000, "window_s": 1.0,
             "hop_s": 1.0, "dim": dim, "level": "global", "pooling": "mean", "precision": "fp32",
             "created_utc": "", "argv": "[]"}  # fmt: skip
    with StoreWriter(path, attrs) as w:
        for lo in range(0, n, 8192):
            hi = min(n, lo + 8192)
            x = centres[rng.integers(0, len(centres), hi - lo)] + 0.6 * rng.standard_normal((hi - lo, dim))
            rows = [FileRecord(f"/synthetic/{i:08d}.flac", "ok", "", 10.0, 1, 1) for i in range(lo, hi)]
            for r, v in zip(rows, x.astype(np.float32), strict=True):
                r.global_ = v
            w.append(rows)
        w.commit()


def _child(args: argparse.Namespace) -> None:
    """One measurement in this process: prints {"seconds", "peak_mib", "hits"}."""
    from mclx.similarity import build_index, search

    paths = [f"/synthetic/{i:08d}.flac" for i in range(0, args.rows, max(1, args.rows // args.queries))][
        : args.queries
    ]
    t = time.perf_counter()
    hits = None
    if args.what == "index":
        build_index(args.store)
    else:
        hits = search(args.store, paths, k=10, exact=args.what == "exact")
    seconds = time.perf_counter() - t
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    out = {"seconds": seconds, "peak_mib": peak}
    if hits is not None:
        out["hits"] = [[h.query, h.path] for h in hits]
    print(json.dumps(out))


def measure(store: Path, rows: int, queries: int, what: str) -> dict:
    argv = [sys.executable, "-m", "benchmarks.search", "--child", what, "--store", str(store),
            "--rows", str(rows), "--queries", str(queries)]  # fmt: skip
    done = subprocess.run(argv, capture_output=True, text=True, check=True)
    return json.loads(done.stdout.splitlines()[-1])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--sizes", default="10000,100000,1000000")
    ap.add_argument("--dim", type=int, default=512)
    ap.add_argument("--queries", type=int, default=200)
    ap.add_argument("--dir", default="runs/bench-search")
    ap.add_argument("--child", default="", help=argparse.SUPPRESS)
    ap.add_argument("--store", default="", help=argparse.SUPPRESS)
    ap.add_argument("--rows", type=int, default=0, help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.child:
        args.what = args.child
        _child(args)
        return
    Path(args.dir).mkdir(parents=True, exist_ok=True)
    for n in (int(s) for s in args.sizes.split(",")):
        store = Path(args.dir) / f"synthetic-{n}x{args.dim}.h5"
        if not store.exists():
            write_synthetic_store(store, n, args.dim)
        built = measure(store, n, args.queries, "index")
        exact = measure(store, n, args.queries, "exact")
        approx = measure(store, n, args.queries, "index-search")
        truth: dict[str, set[str]] = {}
        for q, p in exact["hits"]:
            truth.setdefault(q, set()).add(p)
        recall = float(np.mean([p in truth[q] for q, p in approx["hits"]]))
        row = {
            "rows": n, "dim": args.dim, "queries": args.queries,
            "index_build_s": round(built["seconds"], 2), "index_build_peak_mib": round(built["peak_mib"]),
            "exact_qps": round(args.queries / exact["seconds"], 1),
            "exact_peak_mib": round(exact["peak_mib"]),
            "index_qps": round(args.queries / approx["seconds"], 1),
            "index_peak_mib": round(approx["peak_mib"]),
            "index_vs_exact_speed": round(exact["seconds"] / approx["seconds"], 1),
            "recall_at_10": round(recall, 4),
        }  # fmt: skip
        print(json.dumps(row), flush=True)
        print(
            f"{n:>9} rows: index build {row['index_build_s']} s; exact {row['exact_qps']} q/s "
            f"({row['exact_peak_mib']} MiB), index {row['index_qps']} q/s ({row['index_peak_mib']} MiB), "
            f"{row['index_vs_exact_speed']}x, recall@10 {row['recall_at_10']}",
            file=sys.stderr,
        )


if __name__ == "__main__":
    main()
