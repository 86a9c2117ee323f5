"""The probe tables of the README and the model card: feature sets against MFCC on the dev tasks.

    MCLX_DATA=~/mclx-data python -m benchmarks.probe_table --out runs/probe [--seeds 5] [--plot]
    python -m benchmarks.probe_table --model mclx-base --model random-mclx-base --seeds 5

Runs the `mclx probe` library call for the tasks `notes` (nsynth layout), `genre` (gtzan) and
`gamesrc` (csv) with `--baseline mfcc --head both` and every `--model` (default: the default
model and its random-initialised twin), keeps each task's results JSON (and the embedding
caches, so a second run does not embed again) in --out, and writes markdown to stdout and to
OUT/table.md: one row per task and feature set (test metrics, mean and bootstrap 95% interval,
best per task in bold), then the paired comparisons (each feature set minus MFCC, and the
--compare pairs) for accuracy and MAP@10, '*' where the interval excludes 0. Timings go to stderr.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path
from typing import Any

from mclx.probe import ProbeSettings, run_probe
from mclx.probe.report import cell

TASKS = ("notes", "genre", "gamesrc")


def markdown(reports: list[dict[str, Any]]) -> str:
    """One row per (task, features); a column per (head, metric) seen in any report."""
    columns: dict[tuple[str, str], None] = {}
    for report in reports:
        for r in report["results"]:
            columns[(r["head"], r["metric"])] = None
    header = ["task", "features"] + [f"{h} {m}" if h != "cosine" else m for h, m in columns]
    header.append("linear accuracy − mfcc (paired)")
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * 2 + "---:|" * (len(columns) + 1)]
    for report in reports:
        by_key = {(r["features"], r["head"], r["metric"]): r for r in report["results"]}
        best: dict[tuple[str, str], float] = {}
        for r in report["results"]:
            if r["mean"] is not None:
                key = (r["head"], r["metric"])
                best[key] = max(best.get(key, r["mean"]), r["mean"])
        s = report["splits"]
        split = f"{s['train']}/{s['valid']}/{s['test']}" if report["folds"] is None else "5-fold"
        for features in dict.fromkeys(r["features"] for r in report["results"]):
            cells = []
            for h, m in columns:
                r = by_key.get((features, h, m))
                text = cell(r) if r else ""
                if r and r["mean"] is not None and r["mean"] == best.get((h, m)):
                    text = f"**{text}**"
                cells.append(text)
            cells.append(_versus_mfcc(report, features))
            task = f"{report['task']} ({report['layout']}, {split})"
            lines.append("| " + " | ".join([task, features, *cells]) + " |")
    return "\n".join(lines)


def _versus_mfcc(report: dict[str, Any], features: str) -> str:
    """'+0.102 [+0.045, +0.161] *' for the paired linear-accuracy difference against mfcc."""
    for c in report["comparisons"]:
        if (c["a"], c["b"], c["head"], c["metric"]) == (features, "mfcc", "linear", "accuracy"):
            lo, hi = c["ci95"]
            if c["diff"] is None or lo is None or hi is None:
                return "n/a"
            mark = " *" if lo > 0 or hi < 0 else ""
            return f"{c['diff']:+.3f} [{lo:+.3f}, {hi:+.3f}]{mark}"
    return ""


def comparisons_markdown(
    reports: list[dict[str, Any]], metrics: tuple[str, ...] = ("accuracy", "map_at_10")
) -> str:
    """One row per task and paired comparison (a minus b) of the given metrics."""
    lines = ["| task | a − b | head | metric | difference [95% CI] | p |", "|---|---|---|---|---:|---:|"]
    for report in reports:
        for c in report["comparisons"]:
            if c["metric"] not in metrics or c["diff"] is None:
                continue
            lo, hi = c["ci95"]
            mark = " *" if lo is not None and hi is not None and (lo > 0 or hi < 0) else ""
            interval = "" if lo is None or hi is None else f" [{lo:+.3f}, {hi:+.3f}]"
            lines.append(f"| {report['task']} | {c['a']} − {c['b']} | {c['head']} | {c['metric']} | "
                         f"{c['diff']:+.3f}{interval}{mark} | {c['p']:.3f} |")  # fmt: skip
    return "\n".join(lines)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", default="runs/probe", help="folder for results, caches and table.md")
    ap.add_argument("--seeds", type=int, default=5)
    ap.add_argument("--tasks", default=",".join(TASKS))
    ap.add_argument("--model", action="append", default=None,
                    help="features compared with the mfcc baseline (repeatable; default: the default "
                    "model and random-<default model>)")  # fmt: skip
    ap.add_argument("--compare", action="append", default=[], help="A,B: also compare A minus B")
    ap.add_argument("--device", default="auto")
    ap.add_argument("--plot", action="store_true", help="also write OUT/<task>.png (needs matplotlib)")
    ap.add_argument("--tables-only", action="store_true", help="rebuild table.md from OUT/<task>.json")
    args = ap.parse_args()
    if args.model is None:
        from mclx.models.registry import default_model_name

        default = default_model_name()
        args.model = [default, f"random-{default}"] if default != "mfcc" else ["random-melcnn"]
        if default != "mfcc" and not args.compare:
            args.compare = [f"{default},random-{default}"]
    compare = [tuple(c.split(",", 1)) for c in args.compare]
    root = os.environ.get("MCLX_DATA")
    if not root:
        sys.exit("set MCLX_DATA to the dev corpus (e.g. ~/mclx-data)")
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    reports, started = [], time.monotonic()
    for task in args.tasks.split(","):
        if args.tables_only:  # the tables again from the results of an earlier run, nothing probed
            reports.append(json.loads((out / f"{task}.json").read_text()))
            continue
        if not (Path(root) / task / ".complete").exists():
            sys.exit(f"{root}/{task}: not complete yet (no .complete marker)")
        t0 = time.monotonic()
        plot = str(out / f"{task}.png") if args.plot else None
        results = str(out / f"{task}.json")
        report = run_probe(ProbeSettings(
            task, models=tuple(args.model), baseline="mfcc", seeds=args.seeds, out=results, plot=plot,
            device=args.device, quiet=True, compare=tuple(compare),
        ))  # fmt: skip
        reports.append(report)
        print(f"{task}: {time.monotonic() - t0:.0f} s", file=sys.stderr, flush=True)
    print(f"total: {time.monotonic() - started:.0f} s", file=sys.stderr)
    table = markdown(reports) + "\n\n" + comparisons_markdown(reports)
    (out / "table.md").write_text(table + "\n")
    print(table)


if __name__ == "__main__":
    main()
