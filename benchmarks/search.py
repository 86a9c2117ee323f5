"""`mclx search` on synthetic stores: every index kind side by side, in one run.

    python -m benchmarks.search --rows 100000,1000000 --dim 512 --queries 10000

For each size, a store of clustered rows (written once under --dir, then reused), and then,
each in a fresh process whose wall time and peak RSS are measured (``os.wait4``):

- exact search: one CLI query (``mclx search STORE PATH --exact``), and the --queries paths on
  stdin (``mclx search STORE - --exact``): the truth for recall;
- for each index kind (HNSW, IVF-SQ8): the build, the index's bytes, one CLI query, the
  --queries paths on stdin, and their recall@10 against exact search.

One JSON line per size and kind on stdout; a table, the growth per row of build time, build
memory and index bytes, and what that growth makes of 10M and 100M rows, on stderr. Growth
is the slope between the smallest and largest size (it needs two sizes); the straight line is
an estimate: IVF-SQ8's lists and training sample grow as the square root of the rows.
Peak RSS counts the pages of memory-mapped files a process touched (the index, the rows it
re-ranked): they are page cache, given back under pressure.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

KINDS = ("hnsw", "ivf-sq8")
EXTRAPOLATE = (10_000_000, 100_000_000)


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


def measured(argv: list[str], stdin: str = "") -> dict[str, Any]:
    """Runs ``argv``: {"seconds": wall, "peak_mib": its peak RSS, "stdout": text}."""
    with tempfile.TemporaryFile("w+") as out, tempfile.TemporaryFile("w+") as err:
        t = time.perf_counter()
        proc = subprocess.Popen(argv, stdin=subprocess.PIPE, stdout=out, stderr=err, text=True)
        assert proc.stdin is not None
        proc.stdin.write(stdin)
        proc.stdin.close()
        _, status, usage = os.wait4(proc.pid, 0)
        seconds = time.perf_counter() - t
        proc.returncode = os.waitstatus_to_exitcode(status)
        out.seek(0)
        err.seek(0)
        if proc.returncode:
            raise SystemExit(f"{' '.join(argv)}: exit {proc.returncode}\n{err.read()}")
        return {"seconds": seconds, "peak_mib": usage.ru_maxrss / 1024, "stdout": out.read()}


def mclx_search(store: Path, query: str, *flags: str, stdin: str = "") -> dict[str, Any]:
    return measured(
        [sys.executable, "-m", "mclx", "search", str(store), query, "-k", "10", "--json", *flags], stdin
    )


def hit_sets(stdout: str) -> dict[str, set[str]]:
    found: dict[str, set[str]] = {}
    for line in stdout.splitlines():
        hit = json.loads(line)
        found.setdefault(hit["query"], set()).add(hit["path"])
    return found


def recall_at_10(approx: dict[str, set[str]], exact: dict[str, set[str]]) -> float:
    return float(np.mean([len(approx.get(q, set()) & truth) / len(truth) for q, truth in exact.items()]))


def exact_searches(store: Path, paths: list[str], stdin: str) -> tuple[dict[str, Any], dict[str, Any]]:
    """One exact CLI query and the stdin queries, exactly: measured, or read back from the file
    a run of this script wrote for the same store and queries (so a second run for other index
    kinds does not pay for exact search again; its rows then repeat the first run's timings)."""
    import hashlib

    key = hashlib.sha256(f"{store.stat().st_size}|{store.stat().st_mtime_ns}|{stdin}".encode()).hexdigest()
    saved = store.with_name(f"{store.name}.exact-{len(paths)}-{key[:12]}.json")
    if saved.exists():
        print(f"exact search of {store.name}: read back from {saved.name}", file=sys.stderr)
        one, many = json.loads(saved.read_text())
        return one, many
    one = mclx_search(store, paths[0], "--exact")
    many = mclx_search(store, "-", "--exact", stdin=stdin)
    saved.write_text(json.dumps([one, many]))
    return one, many


def bench_size(n: int, args: argparse.Namespace) -> list[dict[str, Any]]:
    store = Path(args.dir) / f"synthetic-{n}x{args.dim}.h5"
    if not store.exists():
        write_synthetic_store(store, n, args.dim)
    step = max(1, n // args.queries)
    paths = [f"/synthetic/{i:08d}.flac" for i in range(0, n, step)][: args.queries]
    stdin = "".join(p + "\n" for p in paths)
    exact_one, exact_many = exact_searches(store, paths, stdin)
    truth = hit_sets(exact_many["stdout"])
    rows = []
    for kind in args.kinds.split(","):
        built = measured([sys.executable, "-m", "benchmarks.search", "--build", kind, "--store", str(store)])
        one = mclx_search(store, paths[0])
        many = mclx_search(store, "-", stdin=stdin)
        row = {
            "rows": n, "dim": args.dim, "kind": kind, "queries": len(paths),
            "build_s": round(built["seconds"], 2), "build_peak_mib": round(built["peak_mib"]),
            "index_bytes": Path(f"{store}.global.faiss").stat().st_size,
            "one_query_s": round(one["seconds"], 2), "one_query_peak_mib": round(one["peak_mib"]),
            "queries_s": round(many["seconds"], 2), "queries_peak_mib": round(many["peak_mib"]),
            "recall_at_10": round(recall_at_10(hit_sets(many["stdout"]), truth), 4),
            "exact_one_query_s": round(exact_one["seconds"], 2),
            "exact_one_query_peak_mib": round(exact_one["peak_mib"]),
            "exact_queries_s": round(exact_many["seconds"], 2),
        }  # fmt: skip
        print(json.dumps(row), flush=True)
        rows.append(row)
    return rows


def report(rows: list[dict[str, Any]]) -> None:
    """The table, the growth per row, and the arithmetic for larger stores, on stderr."""

    def say(text: str) -> None:
        print(text, file=sys.stderr)

    say(f"{'rows':>9} {'kind':>8} {'build s':>8} {'build MiB':>9} {'index MiB':>9} {'1 query s':>9} "
        f"{'1 q MiB':>8} {'N queries s':>11} {'recall@10':>9} {'exact 1 q s':>11} "
        f"{'exact N q s':>11}")  # fmt: skip
    for r in rows:
        say(f"{r['rows']:>9} {r['kind']:>8} {r['build_s']:>8} {r['build_peak_mib']:>9} "
            f"{r['index_bytes'] / 2**20:>9.1f} {r['one_query_s']:>9} {r['one_query_peak_mib']:>8} "
            f"{r['queries_s']:>11} {r['recall_at_10']:>9} {r['exact_one_query_s']:>11} "
            f"{r['exact_queries_s']:>11}")  # fmt: skip
    for kind in dict.fromkeys(r["kind"] for r in rows):
        mine = sorted((r for r in rows if r["kind"] == kind), key=lambda r: r["rows"])
        lo, hi = mine[0], mine[-1]
        if lo is hi:
            say(f"\n{kind}: one size, so no growth per row (it needs two --rows sizes)")
            continue
        say(f"\n{kind}: growth per row, the slope between {lo['rows']} and {hi['rows']} rows, and a "
            "straight line through both to larger stores")  # fmt: skip
        measures = (("build_s", "s", 1.0), ("build_peak_mib", "MiB", 1.0),
                    ("index_bytes", "MiB", 2.0**-20), ("one_query_peak_mib", "MiB", 1.0))  # fmt: skip
        for key, unit, scale in measures:
            a, b = lo[key] * scale, hi[key] * scale
            slope = (b - a) / (hi["rows"] - lo["rows"])
            base = a - slope * lo["rows"]
            guesses = ", ".join(
                f"{m // 1_000_000}M rows: {base:.4g} + {slope:.4g} x {m} = {base + slope * m:.4g} {unit}"
                for m in EXTRAPOLATE
            )
            say(f"  {key}: {slope * 1e6:.4g} {unit} per million rows; {guesses}")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--rows", default="100000,1000000", help="store sizes, comma-separated")
    ap.add_argument("--dim", type=int, default=512)
    ap.add_argument("--queries", type=int, default=10_000, help="paths searched on stdin per size")
    ap.add_argument("--kinds", default=",".join(KINDS), help="index kinds, comma-separated")
    ap.add_argument("--dir", default="runs/bench-search")
    ap.add_argument("--build", default="", help=argparse.SUPPRESS)
    ap.add_argument("--store", default="", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.build:  # a child: one index build in this process
        from mclx.search.similarity import build_index

        build_index(args.store, kind=args.build)
        return
    Path(args.dir).mkdir(parents=True, exist_ok=True)
    rows = []
    for n in (int(s) for s in args.rows.split(",")):
        rows += bench_size(n, args)
    report(rows)


if __name__ == "__main__":
    main()
