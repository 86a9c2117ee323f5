"""One probe run: task -> features -> heads over seeds -> metrics with confidence intervals."""

from __future__ import annotations

import json
import os
import sys
import warnings
from pathlib import Path
from typing import Any

import numpy as np
import torch

from mclx.errors import UsageError
from mclx.probe import heads, metrics
from mclx.probe.report import plot_results, print_table
from mclx.probe.tasks import Task, load_task

AGGREGATION = "clip embedding = mean of the window embeddings (the store's /global)"
FOLDS = 5


def run_probe(
    task: str,
    data: str | None,
    layout: str | None,
    model: str | None,
    embeddings: str | None,
    baseline: str | None,
    head: str,
    seeds: int,
    out: str | None,
    plot: str | None,
    label_field: str | None = None,
    device: str = "auto",
    quiet: bool = False,
) -> dict[str, Any]:
    """Returns the results dict of the contract (written to ``out`` if given); table on stderr."""
    if head not in ("linear", "mlp", "both"):
        raise UsageError(f"--head {head}: choose linear, mlp or both")
    if seeds < 1:
        raise UsageError("--seeds must be at least 1")
    if baseline not in (None, "mfcc"):
        raise UsageError(f"--baseline {baseline}: the only baseline is mfcc")
    if not (model or embeddings or baseline):
        raise UsageError("give --model, --embeddings or --baseline mfcc (or several)")
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        t = load_task(task, data, layout, label_field)
    notes = [str(w.message) for w in caught]
    dev = torch.device(
        "cuda" if device == "auto" and torch.cuda.is_available() else "cpu" if device == "auto" else device
    )

    sets: list[tuple[str, np.ndarray]] = []
    if embeddings:
        sets.append((embeddings, _from_store(embeddings, t)))
    for name in [n for n in (model, baseline) if n]:
        sets.append((name, _embedded(name, t, out, quiet)))
    usable = np.all([np.isfinite(x).all(axis=1) for _, x in sets], axis=0)
    if not usable.all():
        notes.append(f"{int((~usable).sum())} clips could not be embedded and are left out of every result")
    splits = _splits(t, usable, seeds)
    heads_run = ["linear", "mlp"] if head == "both" else [head]
    y_all = t.targets()
    results = []
    confusions: dict[str, list[list[int]]] = {}
    for features, x_all in sets:
        per: dict[tuple[str, str], list[float]] = {}
        confusion = None
        for seed, (tr, va, te) in enumerate(splits):
            xtr, xva, xte = heads.standardise(x_all[tr], x_all[va], x_all[te])
            for h in heads_run:
                scores = _fit_and_score(h, t, xtr, xva, xte, y_all[tr], y_all[va], y_all[te], seed, dev)
                for metric, value in scores.items():
                    if metric != "confusion":
                        per.setdefault((h, metric), []).append(value)
                if t.kind == "single" and h == heads_run[0] and seed == 0:
                    confusion = scores["confusion"]
            if t.kind != "regression":
                rel = _relevance(t, y_all[te], y_all[np.concatenate([tr, va])])
                m_ap, p10 = metrics.retrieval_at_k(xte, np.concatenate([xtr, xva]), rel)
                per.setdefault(("cosine", "map_at_10"), []).append(m_ap)
                per.setdefault(("cosine", "precision_at_10"), []).append(p10)
        for (h, metric), values in per.items():
            mean, lo, hi = metrics.ci95(values)
            results.append({"features": features, "head": h, "metric": metric, "mean": mean,
                            "ci95": [lo, hi], "per_seed": values})  # fmt: skip
        if confusion is not None:
            confusions[features] = confusion
    tr, va, te = splits[0]
    report: dict[str, Any] = {
        "task": t.name,
        "layout": t.layout,
        "data": t.data,
        "kind": t.kind,
        "splits": {"train": len(tr), "valid": len(va), "test": len(te)},
        "evaluation": "given splits, seeds vary the heads' initialisation"
        if all(t.splits)
        else f"stratified {FOLDS}-fold: seed i tests on fold i mod {FOLDS}, validates on the next",
        "aggregation": AGGREGATION,
        "retrieval": "test clips query train+valid clips by cosine similarity; relevant = same label "
        "(single-label) or a shared tag (multi-label); head 'cosine' means no training",
        "classes": t.classes,
        "warnings": notes,
        "results": results,
    }
    if out:
        Path(out).write_text(json.dumps(report, indent=1))
    if not quiet:
        print_table(report)
        for note in notes:
            print(f"warning: {note}", file=sys.stderr)
    if plot:
        plot_results(report, confusions, plot)
    return report


def _from_store(path: str, t: Task) -> np.ndarray:
    from mclx.store import read_store

    store = read_store(path)
    index = {os.path.realpath(p): i for i, p in enumerate(store.paths)}
    g = store.global_matrix()
    missing = [p for p in t.paths if os.path.realpath(p) not in index]
    if missing:
        raise UsageError(
            f"--embeddings {path}: {len(missing)} clips of the task are not in it, e.g. {missing[0]}"
        )
    return g[[index[os.path.realpath(p)] for p in t.paths]]


def _embedded(model: str, t: Task, out: str | None, quiet: bool) -> np.ndarray:
    """Embed the task through the embed pipeline, cached in a store next to the results."""
    from mclx.pipeline import EmbedSettings, embed

    stem = Path(out).with_suffix("") if out else Path(f"probe-{t.name}")
    safe = "".join(c if c.isalnum() or c in "-_." else "_" for c in Path(model).stem if model) or "model"
    store = f"{stem}.{safe}.h5"
    embed(t.paths, store, EmbedSettings(model=model, quiet=quiet))
    return _from_store(store, t)


def _splits(t: Task, usable: np.ndarray, seeds: int) -> list[tuple[np.ndarray, np.ndarray, np.ndarray]]:
    idx = np.arange(len(t.paths))
    if all(t.splits):
        s = np.array(t.splits)
        parts = tuple(idx[(s == name) & usable] for name in ("train", "valid", "test"))
        for name, part in zip(("train", "valid", "test"), parts, strict=True):
            if len(part) == 0:
                raise UsageError(f"{t.data}: the {name} split is empty")
        return [parts] * seeds
    if any(t.splits):
        raise UsageError(f"{t.data}: some clips have a split and others not")
    keys = t.labels if t.kind == "single" else ["all"] * len(t.labels)
    folds = np.zeros(len(idx), dtype=np.int64)
    for label in sorted(set(keys)):
        members = idx[np.array(keys) == label]
        if t.kind == "single" and len(members) < FOLDS:
            raise UsageError(f"{t.data}: class {label!r} has {len(members)} clips, too few for {FOLDS}-fold")
        members = np.random.default_rng(0).permutation(members)
        folds[members] = np.arange(len(members)) % FOLDS
    out = []
    for seed in range(seeds):
        test_f, valid_f = seed % FOLDS, (seed + 1) % FOLDS
        out.append((idx[(folds != test_f) & (folds != valid_f) & usable], idx[(folds == valid_f) & usable],
                    idx[(folds == test_f) & usable]))  # fmt: skip
    return out


def _fit_and_score(
    h: str, t: Task, xtr: np.ndarray, xva: np.ndarray, xte: np.ndarray,
    ytr: np.ndarray, yva: np.ndarray, yte: np.ndarray, seed: int, dev: torch.device,
) -> dict[str, Any]:  # fmt: skip
    def tensors(x: np.ndarray, y: np.ndarray) -> heads.Split:
        yt = torch.as_tensor(y, device=dev)
        return heads.Split(torch.as_tensor(x, dtype=torch.float32, device=dev),
                           yt.float() if t.kind != "single" else yt.long())  # fmt: skip

    out_dim = len(t.classes) if t.kind != "regression" else 1
    model = heads.fit(h, t.kind, tensors(xtr, ytr), tensors(xva, yva), out_dim, seed)
    p = heads.predict(model, torch.as_tensor(xte, dtype=torch.float32, device=dev), t.kind)
    if t.kind == "single":
        pred = p.argmax(axis=1)
        conf = np.zeros((len(t.classes), len(t.classes)), dtype=np.int64)
        np.add.at(conf, (yte, pred), 1)
        f1 = metrics.macro_f1(yte, pred, len(t.classes))
        return {"accuracy": metrics.accuracy(yte, pred), "macro_f1": f1, "confusion": conf.tolist()}
    if t.kind == "multi":
        return {"roc_auc": metrics.macro(metrics.roc_auc, yte, p),
                "pr_auc": metrics.macro(metrics.average_precision, yte, p)}  # fmt: skip
    return {"r2": metrics.r2(yte, p)}


def _relevance(t: Task, yq: np.ndarray, ydb: np.ndarray) -> np.ndarray:
    if t.kind == "single":
        return yq[:, None] == ydb[None, :]
    return (yq @ ydb.T) > 0
