"""``docs/studies/<study>/figure.png`` from ``docs/studies/<study>/`` alone: one panel per test
column of the study's table (each task's linear accuracy and MAP@10), every cell a point at its
mean over its trainings with its two-level 95% interval (trainings, then clips; as the table),
a cell with one training drawn hollow, and the baselines in grey with MFCC's mean as a dashed line.
Needs matplotlib (the ``plot`` extra); the tables do not. The PNG carries no date or software
tag, so the same evidence and matplotlib version give the same bytes.
"""

from __future__ import annotations

import json
from pathlib import Path

FIGURE = "figure.png"


def panels(folder: Path) -> list[tuple[str, dict[str, tuple[float, float, float, int]]]]:
    """(title, {cell: (mean, low, high, trainings)}) per panel, in the order of the study's table;
    tasks not probed yet are left out."""
    from studies.cells import Evidence

    ev = Evidence(folder)
    cells = ev.cells()
    out = []
    for column in ev.columns():
        points = {}
        for c, members in cells.items():
            iv = ev.interval(column, members)
            if iv is not None:
                points[c] = (iv.mean, iv.lo, iv.hi, iv.trainings)
        if points:
            task, head, _ = column
            out.append((f"{task} {'linear acc.' if head == 'linear' else 'MAP@10'}", points))
    return out


def draw(folder: Path) -> Path | None:
    """Draws ``<folder>/figure.png``; returns its path, or None when nothing is probed yet."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    study = json.loads((folder / "study.json").read_text())
    cols = panels(folder)
    if not cols:
        return None
    baselines = list(study["baselines"])
    names = list(dict.fromkeys(c for _, points in cols for c in points))
    cells = [c for c in names if c not in baselines]
    colour = {c: f"C{i % 10}" for i, c in enumerate(cells)}
    n = len(cols)
    fig, axes = plt.subplots(
        1, n, figsize=(2.4 * n + 2.2, 0.32 * len(names) + 1.4), sharey=True, squeeze=False
    )
    ys = {name: len(names) - 1 - i for i, name in enumerate(names)}
    for ax, (title, points) in zip(axes[0], cols, strict=True):
        for name in names:
            if name not in points:
                continue
            mean, lo, hi, trainings = points[name]
            c = colour.get(name, "0.45")
            hollow = name in colour and trainings == 1
            ax.errorbar([mean], [ys[name]], xerr=[[mean - lo], [hi - mean]], fmt="o", color=c,
                        mfc="white" if hollow else c, ms=5, capsize=2, lw=1.2)  # fmt: skip
        if "mfcc" in points:
            ax.axvline(points["mfcc"][0], color="0.45", ls="--", lw=0.8)
        ax.set_title(title, fontsize=9)
        ax.tick_params(labelsize=8)
        ax.grid(axis="x", alpha=0.3)
    axes[0][0].set_yticks([ys[nm] for nm in names], names, fontsize=8)
    axes[0][0].set_ylim(-0.7, len(names) - 0.3)
    fig.suptitle(f"{study['title']} (test splits, cells' means over trainings, 95% two-level intervals; "
                 "hollow: one training; dashed: MFCC)", fontsize=9)  # fmt: skip
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
