"""Write MODEL_CARD.md for the bundled default model from the evidence files in ``docs/<version>/``.

    MCLX_DATA=~/mclx-data python -m benchmarks.model_card --docs docs/mclx-base-2 \\
        --config examples/mclx-base/v2-games.toml --previous mclx-base-1

Every number in the card comes from a file this repository's scripts wrote (``DOCS`` below):
- ``DOCS/metrics.jsonl``: the training log of ``mclx train`` (steps, loss, tracks/s);
- ``DOCS/pilot/``: the candidates compared on the valid splits before the long run (README, curves);
- ``DOCS/learning_curves.json`` and ``.png``: ``benchmarks/learning_curves.py``;
- ``DOCS/probe/*.json`` and ``probe/table.md``: ``benchmarks/probe_table.py`` (test splits);
- ``DOCS/musicnn/table.md`` and ``musicnn/*.json``: ``benchmarks/musicnn.py --versus NAME``;
- ``DOCS/embed_bench.json``: ``benchmarks/embed.py --versus PREVIOUS``;
- the training data: the config, the corpus manifests under $MCLX_DATA, the label file
  (the figures are kept in ``DOCS/training_data.json``, since the corpus is not in the repository).

Version 1's card is in git history; its evidence stays in ``docs/mclx-base/``.
"""

from __future__ import annotations

import argparse
import csv
import json
import os
from collections import Counter
from pathlib import Path
from typing import Any

from mclx.config import load_config
from mclx.models.registry import read_manifest

ROOT = Path(__file__).resolve().parent.parent
TASKS = ("notes", "genre", "gamesrc")


def _rows(path: Path) -> list[dict[str, str]]:
    with open(path, newline="") as f:
        return list(csv.DictReader(f))


def _jsonl(path: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def training_data(data: Path, labels: Path) -> dict[str, Any]:
    """The pool and label figures the card quotes: pool tracks, games, hours and licences; labelled
    rows per label space (``notes:``, ``genre:``, ``gamesrc:`` or ``game:``), split into dev-task
    clips and pool tracks."""
    pool = _rows(data / "music" / "manifest.csv")
    pool_paths = {os.path.realpath(data / "music" / r["path"]) for r in pool}
    labelled = _rows(labels)
    spaces = [r["label"].split(":")[0] for r in labelled]
    in_pool = [os.path.realpath(r["path"]) in pool_paths for r in labelled]
    return {
        "pool_tracks": len(pool),
        "pool_games": len({r["game"] for r in pool}),
        "pool_hours": sum(float(r["duration_s"]) for r in pool) / 3600,
        "licences": Counter(r["licence"] for r in pool).most_common(),
        "labelled_clips": dict(Counter(s for s, p in zip(spaces, in_pool, strict=True) if not p)),
        "labelled_pool_tracks": dict(Counter(s for s, p in zip(spaces, in_pool, strict=True) if p)),
        "label_classes": {s: len({r["label"] for r in labelled if r["label"].startswith(s + ":")})
                          for s in sorted(set(spaces))},
    }  # fmt: skip


def compute(metrics: list[dict[str, Any]], batch: int, until: int | None = None) -> dict[str, float]:
    """Step time from the log up to step ``until`` (None: all): each logged interval's tracks over
    its tracks/s (start-up and evaluation excluded; a resumed run's intervals are each measured,
    so none is lost)."""
    wall, last = 0.0, 0
    for row in metrics:
        if row["step"] > last and (until is None or row["step"] <= until):
            wall += (row["step"] - last) * batch / row["examples_per_s"]
            last = row["step"]
    return {"steps": last, "wall_s": wall, "examples": last * batch}


def mean_of(accs: dict[str, float]) -> float:
    """The mean validation accuracy over the three tasks."""
    return sum(accs[t] for t in TASKS) / len(TASKS)


def mean_valid(snapshot: dict[str, Any]) -> float:
    return mean_of(snapshot["valid_accuracy"])


def smoothed(snaps: list[dict[str, Any]]) -> list[float]:
    """Each snapshot's mean validation accuracy averaged with its neighbours (one on each side,
    in step order; one at either end): the rule's score, so that one lucky draw of the small valid
    splits does not pick the step on its own."""
    means = [mean_valid(s) for s in snaps]
    windows = [means[max(0, i - 1) : i + 2] for i in range(len(means))]
    return [sum(w) / len(w) for w in windows]


def curves_section(curves: dict[str, Any], run: str) -> tuple[int, float, list[str]]:
    """(the step of ``run`` with the best smoothed mean validation accuracy (the later on ties),
    that smoothed mean, table rows)."""
    snaps = sorted(curves["runs"][run].values(), key=lambda s: s["step"])
    score = smoothed(snaps)
    i = max(range(len(snaps)), key=lambda i: (score[i], snaps[i]["step"]))
    rows = []
    for name, runs in sorted(curves["runs"].items()):
        ordered = sorted(runs.values(), key=lambda s: s["step"])
        for s, sm in zip(ordered, smoothed(ordered), strict=True):
            accs = " | ".join(f"{s['valid_accuracy'][t]:.3f}" for t in TASKS)
            rows.append(f"| {name} | {s['step']} | {accs} | {mean_valid(s):.3f} | {sm:.3f} |")
    for name, accs in sorted(curves.get("baselines", {}).items()):
        rows.append(f"| {name} | – | " + " | ".join(f"{accs[t]:.3f}" for t in TASKS)
                    + f" | {mean_of(accs):.3f} | |")  # fmt: skip
    return snaps[i]["step"], score[i], rows


VERDICT_METRICS = (("linear", "accuracy", "linear accuracy"), ("cosine", "map_at_10", "MAP@10"))


def verdicts(probe_dir: Path, name: str) -> tuple[list[str], dict[str, dict[str, dict[str, str]]]]:
    """One line per task and compared model (paired differences of ``name`` minus it, linear
    accuracy and MAP@10), and {task: {other: {metric label: "ahead" | "level" | "behind"}}}."""
    lines, outcome = [], {}
    for path in sorted(probe_dir.glob("*.json")):
        report = json.loads(path.read_text())
        task = report["task"]
        outcome[task] = {}
        by_other: dict[str, list[str]] = {}
        for head, metric, label in VERDICT_METRICS:
            for c in report["comparisons"]:
                if c["a"] != name or c["head"] != head or c["metric"] != metric:
                    continue
                lo, hi = c["ci95"]
                word = "ahead" if lo > 0 else "behind" if hi < 0 else "level"
                by_other.setdefault(c["b"], []).append(
                    f"{label} {c['diff']:+.3f} [{lo:+.3f}, {hi:+.3f}] ({word})"
                )
                outcome[task].setdefault(c["b"], {})[label] = word
        for other, parts in by_other.items():
            lines.append(f"- **{task}**, {name} − {other}: " + "; ".join(parts) + ".")
    return lines, outcome


def against(outcome: dict[str, dict[str, dict[str, str]]], other: str) -> str:
    """One sentence: on how many of the tasks compared with ``other`` ``name`` is ahead on a
    metric, and on how many behind on one (naming the tasks and metrics)."""
    tasks = {t: o[other] for t, o in outcome.items() if other in o}
    ahead = [f"{t} ({', '.join(m for m, w in ws.items() if w == 'ahead')})" for t, ws in tasks.items()
             if "ahead" in ws.values()]  # fmt: skip
    behind = [f"{t} ({', '.join(m for m, w in ws.items() if w == 'behind')})" for t, ws in tasks.items()
              if "behind" in ws.values()]  # fmt: skip
    named_ahead, named_behind = "; ".join(ahead) or "none", "; ".join(behind) or "none"
    return (f"ahead by a paired interval on {len(ahead)} of {len(tasks)} tasks ({named_ahead}), "
            f"behind on {len(behind)} ({named_behind})")  # fmt: skip


def musicnn_summary(table: Path) -> str:
    """The summary table of ``benchmarks.musicnn`` (up to its per-layer table)."""
    text = table.read_text()
    head, _, _ = text.partition("\n\n| task | model | layer |")
    return head.strip()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--name", default="mclx-base")
    ap.add_argument("--docs", default="docs/mclx-base-2", help="the evidence folder (under the repository)")
    ap.add_argument("--config", default="examples/mclx-base/v2-games.toml")
    ap.add_argument("--run", default="games", help="the run of learning_curves.json that was kept")
    ap.add_argument("--previous", default="mclx-base-1", help="the version it replaces (bundled)")
    ap.add_argument("--data", default=os.environ.get("MCLX_DATA", ""))
    ap.add_argument("--out", default=str(ROOT / "MODEL_CARD.md"))
    args = ap.parse_args()
    docs = ROOT / args.docs
    models = {m["name"]: m for m in read_manifest()["models"]}
    entry, previous = models[args.name], models[args.previous]
    config_path = ROOT / args.config
    config = load_config(str(config_path))
    if args.data:
        labels = Path(os.path.expandvars(config.data.labels.replace("${MCLX_DATA}", args.data)))
        data = training_data(Path(args.data), labels)
        # The corpus lives outside the repository: keep the figures the card quotes from it.
        (docs / "training_data.json").write_text(json.dumps(data, indent=1, sort_keys=True) + "\n")
    data = json.loads((docs / "training_data.json").read_text())
    curves = json.loads((docs / "learning_curves.json").read_text())
    best, best_mean, curve_rows = curves_section(curves, args.run)
    kept = entry["trained_on"]["step"]
    if kept != best:
        raise SystemExit(f"{args.name} was bundled from step {kept}, but the rule picks step {best}: "
                         "bundle that snapshot (examples/mclx-base/bundle.py)")  # fmt: skip
    metrics = _jsonl(docs / "metrics.jsonl")
    total, done = compute(metrics, config.train.batch_size), compute(metrics, config.train.batch_size, kept)
    lines, outcome = verdicts(docs / "probe", args.name)
    embed = json.loads((docs / "embed_bench.json").read_text())
    same = all(entry[k] == previous[k] for k in ("architecture", "bytes", "sample_rate", "window_s"))
    size = ("the same architecture and size as version 1" if same else
            f"version 1: `{previous['architecture']}`, {previous['bytes']:,} bytes")  # fmt: skip
    games = data["labelled_pool_tracks"].get("game")
    pool_games = ", and the game labels of the pool name the 16 gamesrc classes among others" if games else ""
    game_text = (
        "`game:` is the game of origin, from the gamesrc train clips and from the pool's own manifest "
        "(`examples/mclx-base/build_labels.py --pool-games`). "
        if games
        else ""
    )
    licences = ", ".join(f"{lic} ({n} tracks)" for lic, n in data["licences"])
    clips, tracks, classes = data["labelled_clips"], data["labelled_pool_tracks"], data["label_classes"]
    label_text = "; ".join(
        f"`{s}:` {clips.get(s, 0)} dev-task train clips"
        + (f" and {tracks[s]} pool tracks" if tracks.get(s) else "")
        + f" ({classes[s]} classes)"
        for s in sorted(classes)
    )
    pilot = (docs / "pilot" / "README.md").read_text().split("\n\n", 1)[1].strip()
    card = f"""# Model card: {args.name} (version 2)

Written by `python -m benchmarks.model_card` from the evidence in `{args.docs}/`; every number
below comes from a file one of this repository's scripts wrote. Version 1 stays loadable as
`{args.previous}` (its card is in git history, its evidence in `docs/mclx-base/`).

## What it is
- `{entry["architecture"]}`: log-mel CNN, {entry["sample_rate"]} Hz, {entry["window_s"]:g}-s windows,
  {entry["embedding_dim"]}-dimensional embeddings (the encoder before the projection head);
  {size}.
- File `mclx/{entry["file"]}`, {entry["bytes"]:,} bytes, sha256 `{entry["sha256"]}` (checked at
  every load; `mclx models --verify` checks it and `{args.previous}`'s `{previous["sha256"][:12]}…`).
- The default model of `mclx embed`, `mclx probe` and `mclx.hear.load_model()`; `random-{args.name}`
  is the same architecture with seeded random weights, for comparisons.

## Training data
- The pool `music/` of the development corpus: {data["pool_tracks"]} game soundtracks from
  {data["pool_games"]} games, {data["pool_hours"]:.1f} h. The pool holds no track that gives a clip to
  the valid or test split of `gamesrc` (the corpus builder leaves them out): the model never
  heard the audio it is evaluated on. Version 1's pool held them.
- Labels, train splits and pool metadata only, label spaces kept apart by prefix: {label_text}.
  {game_text}No valid or test clip's label is read.
- Licences of the pool: {licences}. The notes and genre clips are rendered with FluidR3 GM (MIT)
  from the music21 corpus (public-domain scores, BSD-licensed corpus).
- What that means for the weights: the soundtracks are copyleft (GPL, CC-BY-SA) or attribution
  (CC-BY) licensed. Whether trained weights are a derivative work of their training audio is not
  settled; we distribute them in the same spirit, with the pool's `LICENCES/` folder as the
  attribution record, and recommend treating them as carrying the pool's attribution and
  share-alike obligations.

## Choosing the recipe (valid splits only)
{pilot}

## Recipe and budget
`{args.config}`, trained with `mclx train` on this project's 2-core development CPU (one torch
thread, beside other work on the second core), resumed across sessions with `--resume`:

```toml
{config_path.read_text().strip()}
```

- Step kept: {kept}. Rule (fixed at step 800 of the run, before its later snapshots were scored):
  the snapshot whose mean validation accuracy over the three tasks, averaged with the
  neighbouring snapshots' (one each side), is highest (learning curves below): step {best},
  smoothed mean {best_mean:.3f}. Version 1 took the raw maximum; on valid splits this small
  (genre: 50 clips) one snapshot's mean moves by 0.05 from one snapshot to the next.
- To that step: {done["steps"]} steps of {config.train.batch_size} tracks ({done["examples"]:,} examples) in
  {done["wall_s"] / 3600:.2f} hours of step time; the whole run: {total["steps"]} steps in
  {total["wall_s"] / 3600:.2f} hours (each logged interval's tracks over its tracks/s,
  `{args.docs}/metrics.jsonl`; start-up and evaluation not counted).

## Learning curves
Linear-probe validation accuracy of each dev task at every snapshot (step 0 is the random
initialisation; made by `benchmarks/learning_curves.py`), both candidates, MFCC as a reference.

![learning curves]({args.docs}/learning_curves.png)

| run | step | notes | genre | gamesrc | mean | with neighbours |
|---|---:|---:|---:|---:|---:|---:|
{chr(10).join(curve_rows)}

## Test-split results
Scored once, after the step was chosen. `benchmarks/probe_table.py` (5 seeds; mean and bootstrap 95%
interval over the test clips and seeds; paired differences on the same clips and seeds, `*` where
the interval excludes 0):

{(docs / "probe" / "table.md").read_text().strip()}

Paired differences of {args.name} (version 2) against each reference, linear accuracy and MAP@10:

{chr(10).join(lines)}

Against version 1 ({args.previous}): {against(outcome, args.previous)}. Version 1 heard the
gamesrc test audio in pretraining; version 2 did not.

## Against musicnn
`benchmarks/musicnn.py --versus {args.name}` (musicnn 0.1.0's MSD and MTT models in their own
environment; every layer, mean- and max-pooled over 3-s patches; the best layer per task chosen
on the valid split; `{args.docs}/musicnn/`):

{musicnn_summary(docs / "musicnn" / "table.md")}

## Embedding speed on CPU
`benchmarks/embed.py --versus {embed["versus"]}` on {embed["files"]} files ({embed["audio_s"] / 3600:.2f} h):
{embed["model"]} {embed["mclx_xrt"]:.0f}x realtime end to end against {embed["versus_mclx_xrt"]:.0f}x for
{embed["versus"]} (ratio {embed["mclx_ratio"]:.2f}); model alone {embed["model_xrt"]:.0f}x against
{embed["versus_model_xrt"]:.0f}x (ratio {embed["model_ratio"]:.2f}).

## Limitations
- Trained on game music and rendered MIDI only (no vocals, no commercial production, no live
  recordings); expect weaker transfer to popular music, speech or environmental sound.
- The label spaces that shaped it are those of the tasks it is evaluated on (on held-out tracks,
  GM programs and pieces){pool_games}: its test scores measure generalisation to new audio within
  these label spaces, not to new tasks.
- The valid splits are small (genre: 50 clips), so the recipe and the step were chosen with
  little resolution; the test splits were scored once.
- A 0.5 M-parameter model trained for {done["wall_s"] / 3600:.1f} CPU-hours to the step kept: a baseline to
  beat, not a state of the art.
"""
    Path(args.out).write_text(card)
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
