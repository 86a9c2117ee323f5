"""musicnn measured beside mclx-base on the dev tasks (notes, genre, gamesrc), with `mclx probe`.

    MCLX_DATA=~/mclx-data nice -n 10 python -m benchmarks.musicnn [--venv ~/musicnn-venv]
        [--out ~/mclx-runs/musicnn] [--tasks notes,genre,gamesrc] [--models MSD_musicnn,MTT_musicnn]
        [--head linear] [--seeds 5] [--threads 1] [--limit N] [--verify N] [--versus MODEL]

``--versus`` names the mclx model compared with musicnn (default ``mclx-base``; ``mclx-base-1``
reproduces the table of version 1).

musicnn (TensorFlow, numpy<2) lives in its own virtual environment, never in mclx's; this script
makes it when ``--venv`` has no ``bin/python``, with these commands (musicnn pins numpy<1.17,
hence ``--no-deps``):

    python3.11 -m venv ~/musicnn-venv
    ~/musicnn-venv/bin/pip install tensorflow-cpu==2.15.1 'numpy<2' librosa soundfile
    ~/musicnn-venv/bin/pip install --no-deps musicnn==0.1.0

Then, for every clip of each task (all the splits the probe uses):

1. `benchmarks/musicnn_embed.py` runs in that environment (one TensorFlow thread by default) and
   caches each clip's layers under ``OUT/cache/<model>/``: the taggram and every feature layer
   musicnn's extractor returns (timbral, temporal, cnn1-3, mean_pool, max_pool, penultimate),
   each pooled over the clip's 3-s patches by mean and by max. Clips already cached are skipped
   (resumable); a clip that fails is recorded with its error.
2. Here, one mclx embedding store per task, model, layer and pooling,
   ``OUT/stores/<task>/<model>.<layer>.<pool>.h5`` (global level, one row per clip, the task's
   paths), which `mclx probe --embeddings` reads.
3. `mclx probe --task T --embeddings STORE... --model VERSUS --baseline mfcc --head linear`
   on each task (the probe's 5 seeds), each store compared, paired, with the ``--versus`` model
   (default mclx-base); results in ``OUT/<task>.json`` (that model's and MFCC's embeddings are
   cached beside them, and embedded again when the model's sha256 changes).
4. A table on stdout and in ``OUT/table.md``: per task, each musicnn layer's test score (the
   task's first metric: accuracy for single-label tasks) with its 95% interval, the best layer,
   and the ``--versus`` model beside it with the paired difference.

``--limit N`` embeds only the first N clips of each task (a smoke run): the stores are written
but not probed, since the probe needs every clip. Exit 1 when some clip failed, 2 on bad input.

``--teacher-labels OUT.csv`` does something else with the same environment and cache: musicnn as
a teacher, a SemiSupCon ``similarity`` labels CSV (``loss.target = "similarity"``) for every track
of the pretraining pool (`benchmarks/musicnn_teacher.py` says how).
"""

from __future__ import annotations

import argparse
import json
import os
import shlex
import subprocess
import sys
import time
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from benchmarks.musicnn_teacher import DEFAULT_POOL
from mclx.errors import MclxError, UsageError

if TYPE_CHECKING:
    from mclx.store import FileRecord

TASKS = ("notes", "genre", "gamesrc")
MODELS = ("MSD_musicnn", "MTT_musicnn")
CHILD = Path(__file__).with_name("musicnn_embed.py")
SAMPLE_RATE = 16000  # musicnn's input rate
PATCH_S = 3.0  # musicnn's patch length (no overlap)


@dataclass(frozen=True)
class LayerStore:
    """One musicnn feature set of one task: a layer of a model, pooled one way, in one store."""

    model: str  # "MSD_musicnn"
    layer: str  # "penultimate"
    pool: str  # "mean" | "max"
    path: Path

    @property
    def label(self) -> str:
        return f"{self.model}.{self.layer}.{self.pool}"


def venv_commands(venv: Path, python: str) -> list[list[str]]:
    """The commands that make musicnn's environment (see the module docstring)."""
    pip = [str(venv / "bin" / "pip"), "install"]
    return [
        [python, "-m", "venv", str(venv)],
        [*pip, "tensorflow-cpu==2.15.1", "numpy<2", "librosa", "soundfile"],
        [*pip, "--no-deps", "musicnn==0.1.0"],
    ]


def ensure_venv(venv: Path, python: str) -> Path:
    """musicnn's interpreter, ``venv/bin/python``; the environment is made first if it is missing."""
    interpreter = venv / "bin" / "python"
    if interpreter.exists():
        return interpreter
    for command in venv_commands(venv, python):
        print("+ " + shlex.join(command), file=sys.stderr, flush=True)
        if subprocess.run(command).returncode:
            raise UsageError(f"--venv {venv}: `{shlex.join(command)}` failed (see above)")
    return interpreter


def task_clips(task: str) -> list[str]:
    """(N,) every clip the probe uses for ``task``, in the probe's order, all splits."""
    from mclx.probe.tasks import load_task

    return load_task(task, None, None).paths


def embed_clips(
    interpreter: Path,
    paths: list[str],
    cache: Path,
    models: list[str],
    threads: int,
    verify: int,
    embedder: str,
) -> dict[str, Any]:
    """Run `musicnn_embed.py` in musicnn's environment on ``paths``; its summary per model."""
    command = [str(interpreter), str(CHILD), "--cache", str(cache), "--models", ",".join(models),
               "--threads", str(threads), "--verify", str(verify)]  # fmt: skip
    if embedder:
        command += ["--embedder", embedder]
    one = str(threads)
    env = {**os.environ, "OMP_NUM_THREADS": one, "TF_NUM_INTRAOP_THREADS": one, "TF_NUM_INTEROP_THREADS": one,
           "TF_CPP_MIN_LOG_LEVEL": "2", "PYTHONWARNINGS": "ignore"}  # fmt: skip
    print(f"+ {shlex.join(command)} < {len(paths)} clip paths", file=sys.stderr, flush=True)
    proc = subprocess.run(command, input="".join(p + "\n" for p in paths), stdout=subprocess.PIPE, text=True,
                          env=env)  # fmt: skip
    if proc.returncode:
        hint = f"if the install into {interpreter.parent.parent} did not finish, remove it and run again"
        raise MclxError(f"{CHILD.name} exited {proc.returncode} (its messages are above; {hint})")
    summary: dict[str, Any] = json.loads(proc.stdout.strip().splitlines()[-1])
    return summary


Clip = tuple["FileRecord", dict[str, np.ndarray]]  # a store row without embedding; "<layer>.<pool>" -> (C,)


def cached_clip(cache: Path, model: str, path: str) -> Clip:
    """One clip's cache entry: its store row (status, error, file keys) and its pooled features
    {"<layer>.<pool>": (C,) float32}, empty when it failed or was never embedded."""
    from benchmarks.musicnn_embed import cache_key
    from mclx.store import FileRecord

    file = cache / model / f"{cache_key(path)}.npz"
    if not file.is_file():
        return FileRecord(path, "failed", "not embedded (no cache entry)", 0.0, 0, 0), {}
    with np.load(file) as z:
        status, error = str(z["status"]), str(z["error"])
        keys = int(z["size_bytes"]), int(z["mtime_ns"])
        features = {k: z[k] for k in z.files if "." in k} if status == "ok" else {}
    seconds = duration_s(path) if status == "ok" else 0.0
    return FileRecord(path, status, error, seconds, *keys), features


def duration_s(path: str) -> float:
    """The clip's duration as libsndfile reads it (NaN where it cannot: musicnn decodes with librosa)."""
    import soundfile

    try:
        return float(soundfile.info(path).duration)
    except (RuntimeError, OSError):
        return float("nan")


def store_attrs(model: str, feature: str, dim: int, weights_sha256: str) -> dict[str, Any]:
    """The store's root attributes (contract, format version 1) for one musicnn feature."""
    from mclx import __version__

    layer, _, pool = feature.partition(".")
    config = {"package": "musicnn", "version": "0.1.0", "model": model, "layer": layer, "pool": pool,
              "patch_s": PATCH_S, "weights_sha256": weights_sha256}  # fmt: skip
    return {
        "format": "mclx-embeddings", "format_version": 1, "mclx_version": __version__,
        "model": f"musicnn-{model}-{layer}-{pool}", "model_sha256": weights_sha256,
        "model_config": json.dumps(config, sort_keys=True), "sample_rate": SAMPLE_RATE,
        "window_s": PATCH_S, "hop_s": PATCH_S, "dim": dim, "level": "global",
        "pooling": f"{pool} over 3-s patches", "precision": "fp32",
        "created_utc": datetime.now(UTC).isoformat(timespec="seconds"), "argv": json.dumps(sys.argv),
    }  # fmt: skip


def write_layer_stores(clips: list[Clip], model: str, folder: Path, weights_sha256: str) -> list[LayerStore]:
    """One global-level store per "<layer>.<pool>" of ``clips`` (from :func:`cached_clip`),
    ``folder/<model>.<layer>.<pool>.h5``, rows in the clips' order; failed clips get a NaN row
    and their error."""
    from mclx.store import write_store

    done = [features for _, features in clips if features]
    if not done:
        raise MclxError(f"{model}: no clip was embedded, so there is no store to write")
    folder.mkdir(parents=True, exist_ok=True)
    stores = []
    for feature, first in done[0].items():
        records = [replace(record, global_=features.get(feature)) for record, features in clips]
        path = folder / f"{model}.{feature}.h5"
        write_store(path, store_attrs(model, feature, len(first), weights_sha256), records)
        layer, _, pool = feature.partition(".")
        stores.append(LayerStore(model, layer, pool, path))
    return stores


def probe_task(
    task: str, stores: list[LayerStore], out: Path, head: str, seeds: int, versus: str
) -> dict[str, Any]:
    """`mclx probe` on ``task``: every store, mclx model ``versus`` and the MFCC baseline, each store
    compared (paired) with ``versus``; the results dict (also in ``out/<task>.json``)."""
    from mclx.probe import ProbeSettings, run_probe

    names = tuple(str(s.path) for s in stores)
    settings = ProbeSettings(task, models=(versus,), embeddings=names, baseline="mfcc", head=head,
                             seeds=seeds, out=str(out / f"{task}.json"), quiet=True,
                             compare=tuple((n, versus) for n in names))  # fmt: skip
    flags = " ".join(f"--embeddings {shlex.quote(n)} --compare {shlex.quote(n)},{versus}" for n in names)
    command = (
        f"mclx probe --task {task} {flags} --model {versus} --baseline mfcc --head {head} --seeds {seeds}"
    )
    print(f"+ {command} --out {settings.out}", file=sys.stderr, flush=True)
    return run_probe(settings)


def metric_of(report: dict[str, Any]) -> str:
    """The task's first metric (what the probe reports first for its kind)."""
    from mclx.probe.run import HEAD_METRICS

    return HEAD_METRICS[report["kind"]][0]


def validation_scores(task: str, stores: list[LayerStore]) -> dict[str, float]:
    """Each store's linear-probe accuracy on ``task``'s valid split (trained on train): the
    studies' rule for choosing features, so the best musicnn layer is chosen without the test split."""
    from mclx.probe.tasks import resolve_data
    from studies.evidence import validation_accuracy

    directory = Path(resolve_data(task, None))
    return {str(s.path): validation_accuracy(str(s.path), directory) for s in stores}


def task_table(
    report: dict[str, Any], stores: list[LayerStore], head: str, valid: dict[str, float], versus: str
) -> tuple[list[str], list[str]]:
    """Markdown rows for one task: (one per musicnn feature, the one best on the valid split
    (``valid``: accuracy per store path) in bold; the summary row, beside mclx model ``versus``)."""
    from mclx.probe.report import cell

    metric = metric_of(report)
    rows = {r["features"]: r for r in report["results"] if r["head"] == head and r["metric"] == metric}
    diffs = {c["a"]: c for c in report["comparisons"]
             if c["b"] == versus and c["head"] == head and c["metric"] == metric}  # fmt: skip
    scored = [s for s in stores if rows.get(str(s.path), {}).get("mean") is not None and str(s.path) in valid]
    best = max(scored, key=lambda s: valid[str(s.path)]) if scored else None
    lines = []
    for s in stores:
        r, d = rows.get(str(s.path)), diffs.get(str(s.path))
        text = cell(r) if r else ""
        text = f"**{text}**" if s is best else text
        v = f"{valid[str(s.path)]:.3f}" if str(s.path) in valid else ""
        lines.append(f"| {report['task']} | {s.model} | {s.layer} | {s.pool} | {v} | {text} | {_diff(d)} |")
    base, mfcc = rows.get(versus), rows.get("mfcc")
    mine = [best.label, cell(rows[str(best.path)])] if best else ["–", "–"]
    best_diff = _diff(diffs.get(str(best.path))) if best else "–"
    cells = [
        report["task"],
        metric,
        *mine,
        cell(base) if base else "–",
        best_diff,
        cell(mfcc) if mfcc else "–",
    ]
    return lines, ["| " + " | ".join(cells) + " |"]


def _diff(c: dict[str, Any] | None) -> str:
    """A paired difference as the probe tables show it: '* ' when its interval excludes 0."""
    if not c:
        return ""
    lo, hi = c["ci95"]
    star = " *" if lo > 0 or hi < 0 else ""
    return f"{c['diff']:+.3f} [{lo:+.3f}, {hi:+.3f}]{star}"


def markdown(
    reports: list[dict[str, Any]],
    stores: dict[str, list[LayerStore]],
    head: str,
    valid: dict[str, dict[str, float]],
    versus: str = "mclx-base",
) -> str:
    """The whole table: the summary per task, then every musicnn feature (``valid``: per task,
    each store's validation accuracy), each beside mclx model ``versus``."""
    detail, summary = [], []
    for report in reports:
        lines, best = task_table(report, stores[report["task"]], head, valid[report["task"]], versus)
        detail += lines
        summary += best
    return "\n".join([
        f"Test scores, {head} head, mean over the probe's seeds [95% interval over test clips and seeds]; "
        "differences are paired (same clips and seeds), '*' where the interval excludes 0. The best "
        "musicnn feature is the one with the best linear accuracy on the task's valid split (trained "
        "on train): the test split chooses nothing.",
        "",
        f"| task | metric | best musicnn feature (on valid) | its test score | {versus} "
        f"| best − {versus} | mfcc |",
        "|---|---|---|---:|---:|---:|---:|",
        *summary,
        "",
        f"| task | model | layer | pool | valid accuracy | test score | − {versus} (paired) |",
        "|---|---|---|---|---:|---:|---:|",
        *detail,
    ])  # fmt: skip


def timing(summary: dict[str, Any]) -> str:
    """One line per model: clips embedded, seconds per clip (wall and CPU), after the first clip."""
    lines = []
    for model, s in summary.items():
        n = s["embedded"] + s["failed"] - 1  # the first clip is timed apart (start-up)
        per = f"{s['wall_s'] / n:.3f} s wall, {s['cpu_s'] / n:.3f} s CPU per clip" if n > 0 else "no timing"
        lines.append(f"{model}: {s['embedded']} embedded, {s['cached']} cached, {s['failed']} failed; "
                     f"first clip {s['first_clip_s']:.1f} s; then {per}")  # fmt: skip
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--venv", default="~/musicnn-venv", help="musicnn's environment (made when missing)")
    parser.add_argument("--venv-python", default="python3.11", help="the Python that makes --venv")
    parser.add_argument("--out", default="~/mclx-runs/musicnn")
    parser.add_argument("--tasks", default=",".join(TASKS))
    parser.add_argument("--models", default=",".join(MODELS))
    parser.add_argument("--head", default="linear", choices=("linear", "mlp"))
    parser.add_argument("--seeds", type=int, default=5)
    parser.add_argument("--versus", default="mclx-base", help="the mclx model compared (paired) with musicnn")
    parser.add_argument("--threads", type=int, default=1, help="TensorFlow and OpenMP threads")
    parser.add_argument("--limit", type=int, default=0, help="only the first N clips of each task; no probe")
    parser.add_argument("--verify", type=int, default=0, help="check N clips against musicnn's extractor")
    parser.add_argument("--embedder", default="", help=argparse.SUPPRESS)  # tests: a stand-in for musicnn
    teacher = parser.add_argument_group("musicnn as a teacher (benchmarks/musicnn_teacher.py)")
    teacher.add_argument(
        "--teacher-labels",
        default="",
        metavar="OUT.csv",
        help="write a similarity labels CSV for the pool's tracks instead of the benchmark",
    )
    teacher.add_argument("--layer", default="MTT_musicnn.penultimate.mean", help="MODEL.LAYER.POOL")
    teacher.add_argument(
        "--pool",
        default=DEFAULT_POOL,
        help="the pretraining pool as data.audio names it (directory, file, CSV manifest)",
    )
    teacher.add_argument(
        "--standardise",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="standardise each dimension over the pool's tracks (default: on)",
    )
    teacher.add_argument("--split", default="train", help="the split column of every row")
    args = parser.parse_args()
    try:
        sys.exit(run(args))
    except MclxError as exc:
        print(f"error: {exc}", file=sys.stderr)
        sys.exit(exc.exit_code)


def run(args: argparse.Namespace) -> int:
    """The four steps of the module docstring (or the teacher labels); the exit status."""
    if args.teacher_labels:
        from benchmarks.musicnn_teacher import run as write_teacher_labels

        return write_teacher_labels(args)
    out = Path(os.path.expanduser(args.out))
    tasks, models = args.tasks.split(","), args.models.split(",")
    clips = {task: task_clips(task) for task in tasks}
    if args.limit:
        clips = {task: paths[: args.limit] for task, paths in clips.items()}
    interpreter = ensure_venv(Path(os.path.expanduser(args.venv)), args.venv_python)
    every = list(dict.fromkeys(p for paths in clips.values() for p in paths))
    t = time.perf_counter()
    summary = embed_clips(interpreter, every, out / "cache", models, args.threads, args.verify, args.embedder)
    print(f"embedding: {time.perf_counter() - t:.1f} s\n{timing(summary)}", file=sys.stderr, flush=True)
    stores: dict[str, list[LayerStore]] = {}
    failed = False
    for task, paths in clips.items():
        stores[task] = []
        for model in models:
            clips_of_model = [cached_clip(out / "cache", model, path) for path in paths]
            failed |= any(record.status != "ok" for record, _ in clips_of_model)
            sha = summary[model]["weights_sha256"]
            stores[task] += write_layer_stores(clips_of_model, model, out / "stores" / task, sha)
        print(f"{task}: {len(stores[task])} stores in {out / 'stores' / task}", file=sys.stderr, flush=True)
    if args.limit:
        print(f"--limit {args.limit}: the stores hold only part of each task, so nothing is probed",
              file=sys.stderr)  # fmt: skip
        return 1 if failed else 0
    reports = [probe_task(task, stores[task], out, args.head, args.seeds, args.versus) for task in tasks]
    valid = {task: validation_scores(task, stores[task]) for task in tasks}
    (out / "valid.json").write_text(json.dumps(valid, indent=1) + "\n")
    table = markdown(reports, stores, args.head, valid, args.versus)
    (out / "table.md").write_text(table + "\n")
    print(table)
    return 1 if failed or any(r["failed"] for r in reports) else 0


if __name__ == "__main__":
    main()
