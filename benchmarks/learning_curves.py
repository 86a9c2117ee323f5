"""Learning curves: linear-probe *validation* accuracy of every kept snapshot of training runs.

    python -m benchmarks.learning_curves runs/base-ssl runs/base-semi \
        --plot docs/mclx-base/learning_curves.png --out docs/mclx-base/learning_curves.json

For each run directory, every ``snapshots/step-NNNNNN.safetensors`` (written by
``train.snapshot_every``; step 0 is the random initialisation) embeds the train and valid
clips of each dev task as ``mclx embed`` does (windows of the model's length, hop = window,
the last one end-aligned, the mean over windows), and a logistic regression trained to
convergence on the train clips (the probe's linear head, L2 chosen on valid) is scored on
the valid clips. Test clips are never read. MFCC (``--baseline``) is drawn as a flat line.
Results are kept per snapshot in the JSON, so a rerun only evaluates new snapshots.
"""

from __future__ import annotations

import argparse
import json
import os
import time
from pathlib import Path

import numpy as np
import torch

from mclx.embed.windows import window_starts
from mclx.fileio import sha256_file
from mclx.models.base import Encoder
from mclx.models.checkpoint import load_encoder
from mclx.models.registry import load_model
from mclx.probe import heads
from mclx.probe.tasks import load_task
from mclx.train.data import TrackCache, build_cache

TASKS = ("notes", "genre", "gamesrc")


def clip_embeddings(encoder: Encoder, cache: TrackCache, batch: int = 256) -> np.ndarray:
    """(T, D) global embeddings of every cached clip: the mean of its windows (the store's rule)."""
    window = encoder.spec.window_samples
    rows: list[tuple[int, int, int]] = []  # (clip, start, valid length)
    for t, length in enumerate(cache.lengths.tolist()):
        rows += [(t, w.start, w.end - w.start) for w in window_starts(int(length), window, window)]
    sums = np.zeros((len(cache.lengths), encoder.spec.embedding_dim), dtype=np.float64)
    counts = np.zeros(len(cache.lengths))
    with torch.inference_mode():
        for i in range(0, len(rows), batch):
            part = np.asarray(rows[i : i + batch])
            x = cache.segments(part[:, 0], part[:, 1], window)  # zero past a clip's end
            z = encoder(torch.from_numpy(x)).float().numpy()
            np.add.at(sums, part[:, 0], z)
            np.add.at(counts, part[:, 0], 1)
    return (sums / counts[:, None]).astype(np.float32)


def evaluate(
    encoder: Encoder, data: dict[str, tuple[TrackCache, np.ndarray, np.ndarray, int]]
) -> dict[str, float]:
    """{task: validation accuracy} of one encoder."""
    out = {}
    for name, (cache, y, is_train, n_classes) in data.items():
        x = clip_embeddings(encoder, cache)
        xtr, xva = heads.standardise(x[is_train], x[~is_train])
        fitted = heads.fit("linear", "single", xtr, y[is_train], xva, y[~is_train], n_classes, seed=0)
        pred = heads.predict(fitted, xva, "single").argmax(axis=1)
        out[name] = round(float((pred == y[~is_train]).mean()), 4)
    return out


def load_tasks(
    data_dir: str, rate: int, tasks: list[str]
) -> dict[str, tuple[TrackCache, np.ndarray, np.ndarray, int]]:
    """{task: (cache of its train+valid clips at ``rate``, labels (T,), is-train mask (T,), classes)}."""
    root = Path(os.environ.get("MCLX_CACHE", Path.home() / ".cache" / "mclx")) / "train"
    data = {}
    for name in tasks:
        task = load_task(name, str(Path(data_dir) / name), None)
        keep = [i for i, s in enumerate(task.splits) if s in ("train", "valid")]
        files = [os.path.abspath(task.paths[i]) for i in keep]
        cache = build_cache(files, rate, root, 1, quiet=True)
        index = {p: i for i, p in enumerate(files)}
        rows = [keep[index[p]] for p in cache.paths]
        y_all = task.targets()
        y = np.asarray([y_all[i] for i in rows], dtype=np.int64)
        is_train = np.asarray([task.splits[i] == "train" for i in rows])
        data[name] = (cache, y, is_train, len(task.classes))
    return data


def continuations(runs: dict[str, dict]) -> dict[str, str]:
    """{run: longer run} for a run whose every snapshot (by sha256) is also in a longer run
    (a run resumed with more steps into another directory): drawn once, as part of the longer."""
    digests = {name: {s["sha256"] for s in snaps.values()} for name, snaps in runs.items()}
    return {
        name: other
        for name, mine in digests.items()
        for other, theirs in digests.items()
        if other != name and mine < theirs
    }


def plot(results: dict, path: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    tasks = sorted({t for run in results["runs"].values() for s in run.values() for t in s["valid_accuracy"]})
    fig, axes = plt.subplots(1, len(tasks), figsize=(4.5 * len(tasks), 3.6), squeeze=False)
    inside = continuations(results["runs"])
    for ax, task in zip(axes[0], tasks, strict=True):
        for run, snaps in results["runs"].items():
            if run in inside:
                continue
            pts = sorted((s["step"], s["valid_accuracy"][task]) for s in snaps.values())
            label = run
            for prefix in sorted(r for r, longer in inside.items() if longer == run):
                last = max(s["step"] for s in results["runs"][prefix].values())
                label += f" (= {prefix} to step {last})"
            ax.plot([p[0] for p in pts], [p[1] for p in pts], marker="o", ms=3, label=label)
        for name, accs in results.get("baselines", {}).items():
            ax.axhline(accs[task], ls="--", color="grey", lw=1)
            ax.annotate(name, (0, accs[task]), xytext=(2, 2), textcoords="offset points", fontsize=8)
        ax.set_title(f"{task}: linear probe, valid split")
        ax.set_xlabel("training step")
        ax.set_ylabel("accuracy")
        ax.grid(alpha=0.3)
    axes[0][0].legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=110)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("runs", nargs="+", help="training output directories (with snapshots/)")
    ap.add_argument("--data", default=os.environ.get("MCLX_DATA", ""))
    ap.add_argument("--tasks", default=",".join(TASKS))
    ap.add_argument("--baseline", default="mfcc", help="a model name drawn as a flat line ('' for none)")
    ap.add_argument("--out", default="learning_curves.json")
    ap.add_argument("--plot", default="")
    ap.add_argument("--threads", type=int, default=0, help="torch threads (0: torch's default)")
    args = ap.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    results = (
        json.loads(Path(args.out).read_text()) if Path(args.out).exists() else {"runs": {}, "baselines": {}}
    )
    tasks = args.tasks.split(",")
    loaded: dict[int, dict] = {}

    def tasks_at(rate: int) -> dict:
        if rate not in loaded:
            loaded[rate] = load_tasks(args.data, rate, tasks)
        return loaded[rate]

    if args.baseline and args.baseline not in results["baselines"]:
        enc = load_model(args.baseline).encoder
        results["baselines"][args.baseline] = evaluate(enc, tasks_at(enc.spec.sample_rate))
    for run in args.runs:
        snaps = results["runs"].setdefault(Path(run).name, {})
        for path in sorted((Path(run) / "snapshots").glob("step-*.safetensors")):
            digest = sha256_file(path)
            if path.name in snaps and snaps[path.name]["sha256"] == digest:
                continue
            t0 = time.monotonic()
            encoder, _ = load_encoder(path)
            accs = evaluate(encoder, tasks_at(encoder.spec.sample_rate))
            snaps[path.name] = {
                "step": int(path.stem.split("-")[1]),
                "sha256": digest,
                "valid_accuracy": accs,
            }
            print(f"{run} {path.name}: {accs} ({time.monotonic() - t0:.0f} s)", flush=True)
            Path(args.out).write_text(json.dumps(results, indent=1, sort_keys=True) + "\n")
    Path(args.out).write_text(json.dumps(results, indent=1, sort_keys=True) + "\n")
    if args.plot:
        plot(results, args.plot)


if __name__ == "__main__":
    main()
