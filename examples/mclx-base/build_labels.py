"""The label file of the mclx-base recipe: the *train* splits of the dev tasks, label spaces kept apart.

    python examples/mclx-base/build_labels.py            # writes $MCLX_DATA/mclx-base/labels.csv
    python examples/mclx-base/build_labels.py --pool-games   # + the pool's game of origin:
                                                         # $MCLX_DATA/mclx-base/labels-games.csv

Each row is ``path,label,split`` with the label prefixed by its task (``notes:brass``,
``genre:bach``, ``gamesrc:wesnoth``), so a clip of one task is never a label-positive of a
clip of another. Only clips of split ``train`` are written: the valid splits choose the
recipe and the step to keep, the test splits are scored once at the end.

With ``--pool-games`` every track of the pretraining pool (``music/manifest.csv``) is labelled
with its game of origin (``game:wesnoth``), and the gamesrc train clips, whose label is the same
thing, share that label space: the pool's metadata, not evaluated audio (the pool holds no track
of a gamesrc valid or test clip; ../shared/data/README.md).
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
    ap.add_argument("--out", default="", help="default: DATA/mclx-base/labels.csv (labels-games.csv)")
    ap.add_argument("--pool-games", action="store_true", help="label the pool's tracks with their game")
    args = ap.parse_args()
    if not args.data:
        raise SystemExit("set MCLX_DATA or pass --data (the corpus of ../shared/data)")
    default = "labels-games.csv" if args.pool_games else "labels.csv"
    out = Path(args.out or Path(args.data) / "mclx-base" / default)
    out.parent.mkdir(parents=True, exist_ok=True)
    rows, counts = [], Counter()
    for name in TASKS:
        task = load_task(name, str(Path(args.data) / name), None)
        for path, label, split in zip(task.paths, task.labels, task.splits, strict=True):
            if split == "train":
                space = "game" if args.pool_games and name == "gamesrc" else name
                rows.append((os.path.abspath(path), f"{space}:{label}", "train"))
                counts[name] += 1
    if args.pool_games:
        manifest = Path(args.data) / "music" / "manifest.csv"
        with open(manifest, newline="") as f:
            for row in csv.DictReader(f):
                rows.append((os.path.abspath(manifest.parent / row["path"]), f"game:{row['game']}", "train"))
                counts["pool"] += 1
    with open(out, "w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(["path", "label", "split"])
        writer.writerows(sorted(rows))
    summary = ", ".join(f"{k} {v}" for k, v in counts.items())
    print(f"{out}: {len(rows)} labelled clips and tracks ({summary})")


if __name__ == "__main__":
    main()
