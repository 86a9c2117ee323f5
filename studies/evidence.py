"""What a study commits: each run's config, metrics, encoder and cost, and the probes of all runs.

``DOCS/<study>/runs/<run>/``: ``config.toml`` (resolved), ``metrics.jsonl``,
``encoder.safetensors`` (kept beside the evidence for a later restore, never committed: git
ignores it, weights belong in the repository only when bundled), ``summary.json`` (steps,
batch, examples seen, CPU and wall minutes of every session of the run, and the pool it was
trained on: the sha256 and track count of ``$MCLX_DATA/music/manifest.csv``).
``DOCS/<study>/probe/<task>.json``: one `mclx probe --per-clip` over every finished run and the
baselines (test split, linear head and cosine retrieval, the same seeds and clips for all, so
every comparison is paired; each test clip's score kept, so that the tables can resample
trainings as well as clips). ``DOCS/<study>/probe/<task>.robust.json``: `mclx probe --corrupt`
of the robust cells' first trainings and MFCC: heads fitted on clean clips, scored on corrupted
copies of the test clips (its caches under ``RUNS/stores/robust/``).
``DOCS/<study>/valid.json``: each feature set's linear-probe accuracy on
the validation splits (how a default would be chosen; the test splits choose nothing).
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import re
import shutil
import time
import tomllib
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

import numpy as np

from studies import derived
from studies.spec import REFERENCE, Run, Study

KEPT = ("config.toml", "metrics.jsonl", "encoder.safetensors")


def keep_run(study: Study, run: Run, layout: Any) -> None:
    src, dst = layout.run_dir(run), layout.docs / "runs" / run.name
    if "restored" in json.loads((src / "done.json").read_text()):
        return  # its evidence is where it came from
    dst.mkdir(parents=True, exist_ok=True)
    for name in KEPT:
        shutil.copyfile(src / name, dst / name)
    config = tomllib.loads((src / "config.toml").read_text())
    done = json.loads((src / "done.json").read_text())
    last = json.loads((src / "metrics.jsonl").read_text().splitlines()[-1])
    summary = {
        "study": study.name,
        "cell": run.cell.name,
        "label": run.cell.label,
        "seed": run.seed,
        "steps": done["steps"],
        "batch_size": config["train"]["batch_size"],
        "examples": done["steps"] * config["train"]["batch_size"],
        "segments_per_example": _segments(config),
        "cpu_minutes": round(done["cpu_s"] / 60, 1),
        "train_wall_minutes": round(done.get("wall_s", _train_seconds(src / "train.log")) / 60, 1),
        "final_loss": last["loss"],
        **pool_identity(layout.data),
    }
    (dst / "summary.json").write_text(json.dumps(summary, indent=1) + "\n")


def restore_run(run: Run, layout: Any) -> bool:
    """A run directory rebuilt from the run's committed evidence, so that a runner on another
    machine (or after the run directories were lost) embeds and probes it again without
    training it again. False when there is no evidence of this run, or no encoder beside it (a
    fresh clone: git does not hold the encoders), so that the run is trained again."""
    src, dst = layout.docs / "runs" / run.name, layout.run_dir(run)
    if not all((src / n).exists() for n in ("summary.json", *KEPT)) or (dst / "done.json").exists():
        return False
    summary = json.loads((src / "summary.json").read_text())
    dst.mkdir(parents=True, exist_ok=True)
    for name in KEPT:
        shutil.copyfile(src / name, dst / name)
    done = {"steps": summary["steps"], "cpu_s": summary["cpu_minutes"] * 60, "restored": str(src)}
    (dst / "done.json").write_text(json.dumps(done) + "\n")
    return True


def _train_seconds(log: Path) -> float:
    """Wall seconds of training, added up over the run's sessions (each ends with a summary line
    'N steps in S s'; a session killed before it leaves none, so this may undercount)."""
    found = re.findall(r"(\d+) steps in ([\d.]+) s", log.read_text()) if log.exists() else []
    return sum(float(seconds) for _, seconds in found)


def pool_identity(data: Path) -> dict[str, Any]:
    """The pretraining pool a run saw: sha256 and track count of ``music/manifest.csv``."""
    manifest = data / "music" / "manifest.csv"
    if not manifest.exists():
        return {"pool_manifest_sha256": "", "pool_tracks": 0}
    raw = manifest.read_bytes()
    rows = [line for line in raw.decode().splitlines()[1:] if line.strip()]
    return {"pool_manifest_sha256": hashlib.sha256(raw).hexdigest(), "pool_tracks": len(rows)}


def _segments(config: dict[str, Any]) -> int:
    """Segments the encoder sees per example (track) and step: the views' sizes added up."""
    views, loss = config["views"], config["loss"]
    if loss.get("kind") == "cpc":
        return int(loss["cpc_context"]) + int(loss["cpc_predictions"])
    if views["positive"] == "track":
        return 1 + int(views["track_segments"])
    k = int(views["track_segments"]) if views["input"] == "track" else 1
    return k * int(views["n_views"])


def finished_runs(study: Study, layout: Any) -> list[Run]:
    return [r for r in study.runs() if (layout.docs / "runs" / r.name / "summary.json").exists()]


@contextlib.contextmanager
def _cwd(path: Path) -> Iterator[None]:
    old = os.getcwd()
    os.chdir(path)
    try:
        yield
    finally:
        os.chdir(old)


def pairs(study: Study, runs: list[Run]) -> list[tuple[str, str]]:
    """Paired comparisons: every run against each baseline, against the study's first cell (the
    reference strategy), and every later seed against the first seed of its cell."""
    names = [r.name for r in runs]
    first = f"{study.cells[0].name}-s{study.cells[0].seeds[0]}"
    out = [(r, b) for r in names for b in study.baselines]
    out += [
        (r, first) for r in names if r != first and first in names and not r.startswith(study.cells[0].name)
    ]
    for r in runs:
        seed0 = f"{r.cell.name}-s{r.cell.seeds[0]}"
        if r.seed != r.cell.seeds[0] and seed0 in names:
            out.append((r.name, seed0))
    return [(f"{a}.h5", f"{b}.h5") for a, b in out]


def refresh(study: Study, layout: Any, tasks: dict[str, Path], seeds: int) -> None:
    """Probes every task over the finished runs and the baselines; writes the JSONs.

    A task is probed only once every store it needs is embedded (each baseline and each finished
    run probed on it): a probe JSON committed earlier is never replaced by one with fewer
    feature sets, as it would be on a fresh machine while the stores are embedded again. A task
    (or a validation accuracy) measured since its stores were last finished is not measured
    again: the probes are deterministic, so it would give the same numbers."""
    from mclx.probe import ProbeSettings, run_probe

    started = time.time()
    runs = finished_runs(study, layout)
    (layout.docs / "probe").mkdir(parents=True, exist_ok=True)
    described = {
        "title": study.title, "tasks": list(study.tasks), "baselines": list(study.baselines),
        "extra_tasks": list(study.extra_tasks), "robustness": list(study.robustness),
        "runs": [r.name for r in study.runs()], "compare": [list(p) for p in study.compare],
    }  # fmt: skip
    (layout.docs / "study.json").write_text(json.dumps(described, indent=1) + "\n")
    for task, directory in tasks.items():
        here = layout.store(task, "x").parent
        present = runs
        names = [*study.baselines, *(r.name for r in present)]
        if not present or not all(_ready(here / f"{f}.h5") for f in names):
            continue
        wanted = pairs(study, present)
        out_json = layout.docs / "probe" / f"{task}.json"
        if _current(out_json, [here / f"{n}.h5" for n in names], wanted, seeds):
            continue
        with _cwd(here):
            out = str(layout.docs.resolve() / "probe" / f"{task}.json")
            h5 = tuple(f"{n}.h5" for n in names)
            run_probe(ProbeSettings(task, str(directory), embeddings=h5, head="linear", seeds=seeds,
                                    out=out, quiet=True, compare=tuple(wanted), per_clip=True))  # fmt: skip
    _robustness(study, layout, tasks, runs, seeds)
    valid_json = layout.docs / "valid.json"
    valid = json.loads(valid_json.read_text()) if valid_json.exists() else {}  # kept until measured again
    measured = valid_json.stat().st_mtime if valid_json.exists() else 0.0
    for f in [*study.baselines, REFERENCE, *(r.name for r in runs)]:
        stores = {t: layout.store(t, f) for t in study.tasks}
        if not all(_ready(s) for s in stores.values()):
            continue
        if f in valid and set(valid[f]) == set(stores) and _newest(stores.values()) < measured:
            continue  # measured since its stores were last embedded (deterministic: same numbers)
        valid[f] = {t: validation_accuracy(str(s), tasks[t]) for t, s in stores.items()}
    valid_json.write_text(json.dumps(valid, indent=1) + "\n")
    os.utime(valid_json, (started, started))  # as of the stores seen: one finished later is measured


def _robustness(study: Study, layout: Any, tasks: dict[str, Path], runs: list[Run], seeds: int) -> None:
    """`mclx probe --corrupt` of every clean task with the robust cells' first trainings and MFCC,
    once all of those runs are finished; not again while its encoders are unchanged."""
    from mclx.probe import ProbeSettings, run_probe

    robust = study.robust_runs()
    if not study.robustness or not robust or not all(r in runs for r in robust):
        return
    work = layout.stores / "robust" / study.name
    models = work / "models"
    models.mkdir(parents=True, exist_ok=True)
    encoders = []
    for r in robust:  # named after the run, so that the report's feature names are the runs'
        link = models / f"{r.name}.safetensors"
        link.unlink(missing_ok=True)
        link.symlink_to(layout.run_dir(r).resolve() / "encoder.safetensors")
        encoders.append(link)
    newest = max(e.stat().st_mtime for e in encoders)
    for task in study.tasks:
        report = layout.docs / "probe" / f"{task}.robust.json"
        if report.exists() and report.stat().st_mtime > newest:
            continue
        with _cwd(models):
            out = work / f"{task}.json"
            settings = ProbeSettings(task, str(tasks[task]), models=tuple(e.name for e in encoders),
                                     baseline="mfcc", head="linear", seeds=seeds, out=str(out), quiet=True,
                                     corrupt=",".join(study.robustness))  # fmt: skip
            run_probe(settings)
        shutil.copyfile(out, report)


def _ready(store: Path) -> bool:
    return store.exists() and store.with_suffix(".done").exists()


def _newest(stores: Iterable[Path]) -> float:
    """When the last of ``stores`` was finished (its ``.done`` marker written)."""
    return max(s.with_suffix(".done").stat().st_mtime for s in stores)


def _current(report: Path, stores: list[Path], wanted: list[tuple[str, str]], seeds: int) -> bool:
    """Whether the probe JSON ``report`` already holds exactly these stores, comparisons and seeds
    and was written after every store was finished: probing again would give the same file."""
    if not report.exists() or report.stat().st_mtime <= _newest(stores):
        return False
    old = json.loads(report.read_text())
    return (
        old.get("seeds") == seeds
        and all("per_clip" in r for r in old["results"] if r["metric"] in ("accuracy", "map_at_10"))
        and sorted(f["name"] for f in old["features"]) == sorted(s.name for s in stores)
        and {(c["a"], c["b"]) for c in old["comparisons"]} == set(wanted)
    )


def validation_accuracy(store: str, directory: Path) -> float:
    """Linear-probe accuracy on the valid split (trained on train, L2 chosen on valid): the
    learning curves' rule, by which mclx-base's step was chosen."""
    from mclx.probe import heads
    from mclx.probe.tasks import load_task
    from mclx.store import read_store

    t = load_task(directory.name, str(directory), None)
    data = read_store(store)
    index = {os.path.realpath(p): i for i, p in enumerate(data.paths)}
    x = data.global_matrix()[[index[os.path.realpath(p)] for p in t.paths]]
    y, split = t.targets(), np.asarray(t.splits)
    tr, va = split == "train", split == "valid"
    xtr, xva = heads.standardise(x[tr], x[va])
    fitted = heads.fit("linear", "single", xtr, y[tr], xva, y[va], len(t.classes), seed=0)
    pred = heads.predict(fitted, xva, "single").argmax(axis=1)
    return round(float((pred == y[va]).mean()), 4)


__all__ = ["derived", "finished_runs", "keep_run", "pairs", "refresh", "restore_run", "validation_accuracy"]
