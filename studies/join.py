"""Joins a study's evidence written by another runner (another machine, or a runner given some of
the study's runs) into this folder, without embedding or probing anything again.

A probe report scores each feature set on its own: the same store, task and settings give the same
rows whatever other stores the report holds. So a report over the runs missing here grows this
folder's report by their rows, and the feature sets both reports hold (the baselines, at least one)
must agree to the last digit, which checks that both runners probed the same clips the same way.
Nothing is joined unless every check passes.

``python -m studies join STUDY --from DIR [--docs DIR]``: ``DIR/<study>/`` is the other runner's
``--docs`` folder; its runs (``runs/<run>/``), probe reports (``probe/<task>.json``) and
validation accuracies (``valid.json``) join ``docs/studies/<study>/``.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

from mclx.probe.report import write_json
from studies.cells import load, name

# What two probe reports of one task must share to be joined (``data`` and ``device`` may differ).
SAME = ("task", "layout", "kind", "splits", "seeds", "evaluation", "folds", "heads", "retrieval",
        "confidence", "classes", "mclx_version")  # fmt: skip


class JoinError(Exception):
    """Two folders' evidence disagrees: nothing was joined."""


def join_report(into: dict[str, Any], other: dict[str, Any]) -> tuple[dict[str, Any], list[str]]:
    """``into`` grown by the feature sets only ``other`` holds (their features, hyperparameters,
    results and comparisons) and the names of those feature sets. Raises :class:`JoinError` when
    the reports' settings differ, they share no feature set, or a shared one scores differently."""
    task = into.get("task")
    for key in SAME:
        if into.get(key) != other.get(key):
            raise JoinError(f"probe {task}: '{key}' differs ({into.get(key)!r} vs {other.get(key)!r})")
    have = {f["name"] for f in into["features"]}
    new = [f["name"] for f in other["features"] if f["name"] not in have]
    shared = have & {f["name"] for f in other["features"]}
    if not shared:
        raise JoinError(f"probe {task}: the reports share no feature set, so nothing checks the join")

    def rows(report: dict[str, Any], key: str, names: set[str]) -> list[dict[str, Any]]:
        return [r for r in report[key] if r["features"] in names]  # results and hyperparameters

    for key in ("results", "hyperparameters"):
        ours, theirs = rows(into, key, shared), rows(other, key, shared)
        if sorted(map(_text, ours)) != sorted(map(_text, theirs)):
            raise JoinError(f"probe {task}: the {key} of {', '.join(sorted(map(name, shared)))} differ")
    compared = {_cmp(c): c for c in into["comparisons"]}
    for c in other["comparisons"]:
        if compared.get(_cmp(c), c) != c:
            raise JoinError(f"probe {task}: the comparison {c['a']} - {c['b']} ({c['metric']}) differs")
    unseen = [c for c in other["comparisons"] if _cmp(c) not in compared]
    fresh = set(new)
    joined = dict(into)
    joined["features"] = [*into["features"], *(f for f in other["features"] if f["name"] in fresh)]
    for key in ("results", "hyperparameters"):
        joined[key] = [*into[key], *rows(other, key, fresh)]
    joined["comparisons"] = [*into["comparisons"], *unseen]
    parts = [p for p in other["aggregation"].split("; ") if p.split(":", 1)[0] in fresh]
    joined["aggregation"] = "; ".join([into["aggregation"], *parts]) if parts else into["aggregation"]
    for key in ("warnings", "failed"):
        joined[key] = [*into[key], *(w for w in other[key] if w not in into[key])]
    return joined, new


def _text(row: dict[str, Any]) -> str:
    return json.dumps(row, sort_keys=True)


def _cmp(c: dict[str, Any]) -> tuple[str, str, str, str, str]:
    return (c["a"], c["b"], c["head"], c["metric"], c.get("corruption") or "")


def join_study(into: Path, other: Path) -> list[str]:
    """Joins ``other`` (a study's evidence folder) into ``into``; returns what joined, one line each.
    Runs and validation entries are joined only for runs that ``into``'s study.json names."""
    study = load(into / "study.json")
    runs = set(study["runs"])
    plan: list[tuple[Path, Any]] = []  # (probe report, new content): written once every check passed
    copies: list[tuple[Path, Path]] = []
    said: list[str] = []
    for src in sorted((other / "runs").glob("*")) if (other / "runs").exists() else []:
        dst = into / "runs" / src.name
        if src.name not in runs:
            raise JoinError(f"run {src.name}: not a run of {study['title']!r}")
        if (dst / "summary.json").exists():
            if load(dst / "summary.json") != load(src / "summary.json"):
                raise JoinError(f"run {src.name}: both folders hold it, with different summaries")
            continue
        copies.append((src, dst))
        said.append(f"run {src.name}")
    for path in sorted((other / "probe").glob("*.json")) if (other / "probe").exists() else []:
        target = into / "probe" / path.name
        if not target.exists():
            raise JoinError(f"probe {path.name}: this folder has no such report to grow")
        joined, new = join_report(load(target), load(path))
        unknown = [n for n in new if name(n) not in runs]
        if unknown:
            raise JoinError(f"probe {path.name}: {', '.join(unknown)} is not a run of this study")
        if new:
            plan.append((target, joined))
            said.append(f"probe {path.stem}: {', '.join(map(name, new))}")
    valid: dict[str, Any] | None = None
    if (other / "valid.json").exists():
        ours, theirs = load(into / "valid.json"), load(other / "valid.json")
        for key in ours.keys() & theirs.keys():
            if ours[key] != theirs[key]:
                raise JoinError(f"valid.json: {key} differs ({ours[key]} vs {theirs[key]})")
        added = {k: v for k, v in theirs.items() if k in runs and k not in ours}
        if added:
            valid = {**ours, **added}
            said.append(f"valid: {', '.join(sorted(added))}")
        left = sorted(theirs.keys() - ours.keys() - runs)
        if left:
            said.append(f"valid: left out {', '.join(left)} (neither a run of this study nor here)")
    for src, dst in copies:
        shutil.copytree(src, dst)
    for target, report in plan:
        write_json(report, str(target))
    if valid is not None:  # as the runner writes it (evidence.refresh)
        (into / "valid.json").write_text(json.dumps(valid, indent=1) + "\n")
    return said
