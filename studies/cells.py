"""A study's cells from its evidence alone: each cell's trainings, their per-clip test scores,
the cell's mean over trainings with its two-level interval, and paired cell differences.

The probe reports (``probe/<task>.json``, `mclx probe --per-clip`) hold, for every run and
baseline, each test clip's score; a run's summary names its cell. A baseline (MFCC, the random
network) is one "training". Clips whose score is undefined (a retrieval query with no relevant
item) are left out for every feature set alike.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np

from studies.intervals import Interval, cell_interval, paired_difference

Column = tuple[str, str, str]  # (task, head, metric)
HEAD_METRICS = (("linear", "accuracy"), ("cosine", "map_at_10"))


def load(path: Path) -> Any:
    return json.loads(path.read_text())


def name(features: str) -> str:
    return features.removesuffix(".h5").removesuffix(".safetensors")


def _scored(
    entry: dict[str, Any], key: str, run: str, corruption: str | None, head: str, metric: str
) -> bool:
    return (name(entry[key]) == run and entry.get("corruption") == corruption
            and (entry["head"], entry["metric"]) == (head, metric))  # fmt: skip


def result(
    report: dict[str, Any], run: str, head: str, metric: str, corruption: str | None = None
) -> dict[str, Any] | None:
    """A probe report's result of ``run``: on clean clips, or under ``corruption`` in a robustness
    report (`mclx probe --corrupt`), whose clean and corrupted rows share a feature set."""
    return next((r for r in report["results"] if _scored(r, "features", run, corruption, head, metric)), None)


def drop(report: dict[str, Any], run: str, corruption: str, head: str, metric: str) -> dict[str, Any] | None:
    """The same report's paired difference of ``run`` under ``corruption`` from ``run`` on clean
    clips (``diff``, ``ci95``; the interval over the clips)."""
    found = (c for c in report["comparisons"] if _scored(c, "a", run, corruption, head, metric))
    return next((c for c in found if name(c["b"]) == run), None)


class Evidence:
    """One study's folder (``docs/studies/<study>``), read once."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self.study = load(folder / "study.json")
        self.summaries: dict[str, dict[str, Any]] = {}
        for run in self.study["runs"]:
            path = folder / "runs" / run / "summary.json"
            if path.exists():
                self.summaries[run] = load(path)
        self.reports = {p.stem: load(p) for p in sorted((folder / "probe").glob("*.json"))}

    def columns(self) -> list[Column]:
        """(task, head, metric) of the main table: each probed task's linear accuracy and MAP@10."""
        return [(t, h, m) for t in self.study["tasks"] if t in self.reports for h, m in HEAD_METRICS]

    def probed(self) -> set[str]:
        return {name(f["name"]) for t in self.study["tasks"] if t in self.reports
                for f in self.reports[t]["features"]}  # fmt: skip

    def cells(self) -> dict[str, list[str]]:
        """{cell: its finished and probed runs}, in the study's order; then each baseline alone."""
        probed = self.probed()
        out: dict[str, list[str]] = {}
        for run in self.study["runs"]:
            s = self.summaries.get(run)
            if s is not None and run in probed:
                out.setdefault(s["cell"], []).append(run)
        for b in self.study["baselines"]:
            out[b] = [b]
        return out

    def labels(self) -> dict[str, str]:
        """{cell: its label} (a baseline is its own label)."""
        out = {s["cell"]: s["label"] for s in self.summaries.values()}
        return {**out, **{b: b for b in self.study["baselines"]}}

    def scores(self, column: Column, features: list[str]) -> np.ndarray | None:
        """(R, N) per-clip scores of ``features`` (runs or a baseline) on a column; None when a
        report lacks them."""
        task, head, metric = column
        if task not in self.reports:
            return None
        rows = {name(r["features"]): r for r in self.reports[task]["results"]
                if r["head"] == head and r["metric"] == metric and "corruption" not in r}  # fmt: skip
        if not all(f in rows and "per_clip" in rows[f] for f in features):
            return None
        return np.array([[np.nan if v is None else v for v in rows[f]["per_clip"]] for f in features])

    def defined(self, column: Column) -> np.ndarray:
        """(N,) bool: the clips whose score is defined for every feature set of the column."""
        task, head, metric = column
        per_clip = [r["per_clip"] for r in self.reports[task]["results"]
                    if r["head"] == head and r["metric"] == metric and "per_clip" in r]  # fmt: skip
        if not per_clip:
            return np.zeros(0, dtype=bool)
        return np.all([[v is not None for v in row] for row in per_clip], axis=0)

    def interval(self, column: Column, runs: list[str]) -> Interval | None:
        scores = self.scores(column, runs)
        if scores is None:
            return None
        return cell_interval(scores[:, self.defined(column)])

    def difference(self, column: Column, a: list[str], b: list[str]) -> Interval | None:
        sa, sb = self.scores(column, a), self.scores(column, b)
        if sa is None or sb is None:
            return None
        keep = self.defined(column)
        return paired_difference(sa[:, keep], sb[:, keep])

    def pairs(self) -> list[tuple[str, str]]:
        """Cell comparisons a - b: every cell against the study's first cell (its reference) and
        against MFCC, then those the study names (``compare``)."""
        cells = [c for c in self.cells() if c not in self.study["baselines"]]
        if not cells:
            return []
        first = self.study.get("reference") or cells[0]
        out = [(c, first) for c in cells if c != first and first in cells]
        out += [(c, b) for c in cells for b in self.study["baselines"] if b == "mfcc"]
        out += [(a, b) for a, b in self.study.get("compare", []) if a in cells and b in cells]
        return list(dict.fromkeys(out))
