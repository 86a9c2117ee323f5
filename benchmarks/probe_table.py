"""The README's probe table: MFCC baseline against a random-initialised melcnn on the dev tasks.

    MCLX_DATA=~/mclx-data python -m benchmarks.probe_table --out runs/probe [--seeds 5]

Runs `mclx probe` (the library call) for the tasks `notes` (nsynth layout), `genre` (gtzan)
and `gamesrc` (csv) with `--baseline mfcc --model random-melcnn --head both`, keeps each
results JSON in --out, and prints a markdown table of the test metrics (mean and 95% CI).
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

from mclx.probe import run_probe

TASKS = ("notes", "genre", "gamesrc")
METRICS = ("accuracy", "macro_f1", "map_at_10")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", default="runs/probe")
    ap.add_argument("--seeds", type=int, default=5)
    ap.add_argument("--tasks", default=",".join(TASKS))
    args = ap.parse_args()
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    lines = [
        "| task | features | head | " + " | ".join(METRICS) + " |",
        "|---|---|---|" + "---|" * len(METRICS),
    ]
    for task in args.tasks.split(","):
        t0 = time.monotonic()
        report = run_probe(task, None, None, "random-melcnn", None, "mfcc", "both", args.seeds,
                           str(out / f"{task}.json"), str(out / f"{task}.png"), quiet=True)  # fmt: skip
        rows: dict[tuple[str, str], dict[str, str]] = {}
        for r in report["results"]:
            head = "any" if r["head"] == "cosine" else r["head"]
            for h in ("linear", "mlp") if head == "any" else (head,):
                cell = f"{r['mean']:.3f} [{r['ci95'][0]:.3f}, {r['ci95'][1]:.3f}]"
                rows.setdefault((r["features"], h), {})[r["metric"]] = cell
        s = report["splits"]
        for (features, head), cells in rows.items():
            name = f"{task} ({report['layout']}, {s['train']}/{s['valid']}/{s['test']})"
            lines.append(
                f"| {name} | {features} | {head} | " + " | ".join(cells.get(m, "") for m in METRICS) + " |"
            )
        print(f"{task}: {time.monotonic() - t0:.0f} s", flush=True)
    table = "\n".join(lines)
    (out / "table.md").write_text(table + "\n")
    print(table)
    print(json.dumps({"seeds": args.seeds, "tasks": args.tasks.split(",")}))


if __name__ == "__main__":
    main()
