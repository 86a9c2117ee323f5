"""``docs/studies/<study>/figure.png`` from ``docs/studies/<study>/`` alone: one panel per test
column of the study's table (each task's linear accuracy and MAP@10), every feature set a point
with its 95% interval, the runs coloured by strategy (a second training seed shares its first's
colour, drawn hollow) and the baselines in grey, with MFCC's mean as a dashed line.

Needs matplotlib (the ``plot`` extra); the tables do not. The PNG carries no date or software
tag, so the same evidence and matplotlib version give the same bytes.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

FIGURE = "figure.png"
_COLUMNS = (("linear", "accuracy", "linear acc."), ("cosine", "map_at_10", "MAP@10"))


def _load(path: Path) -> Any:
    return json.loads(path.read_text())


def _points(report: dict[str, Any], head: str, metric: str) -> dict[str, tuple[float, float, float]]:
    """feature set -> (mean, low, high) of one (head, metric) of a probe report."""
    out = {}
    for r in report["results"]:
        if r["head"] == head and r["metric"] == metric and r["mean"] is not None:
            lo, hi = r["ci95"]
            mean = float(r["mean"])
            out[r["features"].removesuffix(".h5")] = (
                mean,
                mean if lo is None else float(lo),
                mean if hi is None else float(hi),
            )
    return out


def panels(folder: Path) -> list[tuple[str, dict[str, tuple[float, float, float]]]]:
    """(title, points) per panel, in the order of the study's table; tasks not probed yet are left
    out."""
    study = _load(folder / "study.json")
    out = []
    for task in study["tasks"]:
        path = folder / "probe" / f"{task}.json"
        if not path.exists():
            continue
        report = _load(path)
        for head, metric, title in _COLUMNS:
            points = _points(report, head, metric)
            if points:
                out.append((f"{task} {title}", points))
    return out


def draw(folder: Path) -> Path | None:
    """Draws ``<folder>/figure.png``; returns its path, or None when nothing is probed yet."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    study = _load(folder / "study.json")
    cols = panels(folder)
    if not cols:
        return None
    labels = {}
    for run in study["runs"]:
        path = folder / "runs" / run / "summary.json"
        if path.exists():
            labels[run] = _load(path)["label"]
    baselines = list(study["baselines"])
    names = [*labels, *baselines]
    strategies = list(dict.fromkeys(labels.values()))
    colour = {s: f"C{i % 10}" for i, s in enumerate(strategies)}
    first_run: dict[str, str] = {}  # strategy -> its first run (the others are later seeds)
    for run, label in labels.items():
        first_run.setdefault(label, run)
    first_seed = set(first_run.values())
    n = len(cols)
    fig, axes = plt.subplots(
        1, n, figsize=(2.4 * n + 2.2, 0.32 * len(names) + 1.4), sharey=True, squeeze=False
    )
    ys = {name: len(names) - 1 - i for i, name in enumerate(names)}
    for ax, (title, points) in zip(axes[0], cols, strict=True):
        for name in names:
            if name not in points:
                continue
            mean, lo, hi = points[name]
            c = colour[labels[name]] if name in labels else "0.45"
            hollow = name in labels and name not in first_seed
            ax.errorbar([mean], [ys[name]], xerr=[[mean - lo], [hi - mean]], fmt="o", color=c,
                        mfc="white" if hollow else c, ms=5, capsize=2, lw=1.2)  # fmt: skip
        if "mfcc" in points:
            ax.axvline(points["mfcc"][0], color="0.45", ls="--", lw=0.8)
        ax.set_title(title, fontsize=9)
        ax.tick_params(labelsize=8)
        ax.grid(axis="x", alpha=0.3)
    axes[0][0].set_yticks([ys[nm] for nm in names], names, fontsize=8)
    axes[0][0].set_ylim(-0.7, len(names) - 0.3)
    fig.suptitle(f"{study['title']} (test splits, 95% intervals; dashed: MFCC)", fontsize=10)
    fig.tight_layout()
    out = folder / FIGURE
    fig.savefig(out, dpi=110, metadata={"Software": None})
    plt.close(fig)
    return out


def write(docs: Path) -> list[Path]:
    """Draws every study's figure under ``docs``; an empty list (and no error) without matplotlib."""
    try:
        import matplotlib  # noqa: F401
    except ImportError:
        return []
    drawn = (draw(p.parent) for p in sorted(docs.glob("*/study.json")))
    return [p for p in drawn if p is not None]
