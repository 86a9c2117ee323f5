"""The label file of the mclx-base recipe: the *train* splits of the dev tasks, label spaces kept apart.

    python examples/mclx-base/build_labels.py            # writes $MCLX_DATA/mclx-base/labels.csv

Each row is ``path,label,split`` with the label prefixed by its task (``notes:brass``,
``genre:bach``, ``gamesrc:wesnoth``), so a clip of one task is never a label-positive of a
clip of another. Only clips of split ``train`` are written: the valid splits choose the
recipe and the step to keep, the test splits are scored once at the end.
"""

from __future__ import annotations

import argparse
import csv
import os
from collections import Counter
from pathlib import Path

from mclx.probe.tasks import load_task

TASKS = ("notes", "genre", "gamesrc")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data", default=os.environ.get("MCLX_DATA", ""), help="default: $MCLX_DATA")
    ap.add_argument("--out", default="", help="default: DATA/mclx-base/labels.csv")
    args = ap.parse_args()
    if not args.data:
        raise SystemExit("set MCLX_DATA or pass --data (the corpus of ../shared/data)")
    out = Path(args.out or Path(args.data) / "mclx-base" / "labels.csv")
    out.parent.mkdir(parents=True, exist_ok=True)
    rows, counts = [], Counter()
    for name in TASKS:
        task = load_task(name, str(Path(args.data) / name), None)
        for path, label, split in zip(task.paths, task.labels, task.splits, strict=True):
            if split == "train":
                rows.append((os.path.abspath(path), f"{name}:{label}", "train"))
                counts[name] += 1
    with open(out, "w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(["path", "label", "split"])
        writer.writerows(sorted(rows))
    print(f"{out}: {len(rows)} training clips ({', '.join(f'{k} {v}' for k, v in counts.items())})")


if __name__ == "__main__":
    main()
