"""Showing probe results: the rich table on stderr, the JSON file and the optional PNG."""

from __future__ import annotations

import json
import math
from typing import Any

from mclx.errors import UsageError

METRIC_ORDER = ("accuracy", "macro_f1", "roc_auc", "pr_auc", "r2", "map_at_10", "precision_at_10")
PLOT_EXTRA = "pip install 'mclx[plot]'"


def metric_columns(results: list[dict[str, Any]]) -> list[str]:
    present = {r["metric"] for r in results}
    return [m for m in METRIC_ORDER if m in present] + sorted(present - set(METRIC_ORDER))


def cell(r: dict[str, Any]) -> str:
    """'0.912 [0.890, 0.931]' (the bootstrap interval need not be symmetric); 'n/a' for an
    undefined mean; the mean alone when there is no interval."""
    if r["mean"] is None:
        return "n/a"
    lo, hi = r["ci95"]
    if lo is None or hi is None:
        return f"{r['mean']:.3f}"
    return f"{r['mean']:.3f} [{lo:.3f}, {hi:.3f}]"


def best_means(results: list[dict[str, Any]]) -> dict[str, float]:
    """The highest mean of each metric (every probe metric is higher-is-better)."""
    best: dict[str, float] = {}
    for r in results:
        if r["mean"] is not None:
            best[r["metric"]] = max(best.get(r["metric"], -math.inf), r["mean"])
    return best


def print_table(report: dict[str, Any]) -> None:
    """One row per features x head, one column per metric: mean ± 95% CI; best mean in bold.
    With --corrupt, the corrupted rows and their comparisons with the clean ones follow in a
    table of their own (:func:`robustness_table`)."""
    from rich.console import Console
    from rich.table import Table
    from rich.text import Text

    results = [r for r in report["results"] if "corruption" not in r]
    metrics = metric_columns(results)
    best = best_means(results)
    s = report["splits"]
    table = Table(
        title=Text(
            f"probe {report['task']} ({report['layout']}, {report['kind']}, "
            f"train/valid/test {s['train']}/{s['valid']}/{s['test']}, {report['seeds']} seeds)"
        )
    )
    table.add_column("features")
    table.add_column("head")
    for m in metrics:
        table.add_column(m, justify="right", no_wrap=True)
    rows: dict[tuple[str, str], dict[str, dict[str, Any]]] = {}
    for r in results:
        rows.setdefault((r["features"], r["head"]), {})[r["metric"]] = r
    for (features, head), by_metric in rows.items():
        cells = []
        for m in metrics:
            r = by_metric.get(m)
            text = cell(r) if r else ""
            if r and r["mean"] is not None and r["mean"] == best[m]:
                text = f"[bold]{text}[/bold]"
            cells.append(text)
        table.add_row(Text(features), head, *cells)
    console = Console(stderr=True)
    console.print(table)
    comparisons = [c for c in report.get("comparisons", []) if "corruption" not in c]
    if comparisons:
        console.print(comparison_table(comparisons))
    if "corruption" in report:
        console.print(robustness_table(report))
    lines = (report["evaluation"], report["aggregation"], report["retrieval"], report["confidence"])
    for line in (*lines, *([report["corruption"]] if "corruption" in report else [])):
        console.print(line, highlight=False, markup=False)
    for line in report.get("failed", [])[:20]:
        console.print(f"failed: {line}", style="red", highlight=False, markup=False)
    for note in report["warnings"]:
        console.print(f"warning: {note}", style="yellow", highlight=False, markup=False)


def significant(c: dict[str, Any]) -> int:
    """+1 when the comparison's interval lies above 0, -1 below, 0 when it covers 0 (or is unknown)."""
    lo, hi = c["ci95"]
    if lo is None or hi is None:
        return 0
    return 1 if lo > 0 else -1 if hi < 0 else 0


def comparison_table(comparisons: list[dict[str, Any]]) -> Any:
    """Paired differences a - b; '*' marks those whose 95% interval excludes 0."""
    from rich.table import Table
    from rich.text import Text

    table = Table(title="paired comparisons (a - b on the same seeds and test clips; * : 95% CI excludes 0)")
    for name in ("a", "b", "head", "metric"):
        table.add_column(name)
    for name in ("diff", "95% CI", "p"):
        table.add_column(name, justify="right", no_wrap=True)
    for c in comparisons:
        lo, hi = c["ci95"]
        interval = "n/a" if lo is None or hi is None else f"[{lo:+.3f}, {hi:+.3f}]"
        diff = "n/a" if c["diff"] is None else f"{c['diff']:+.3f}" + (" *" if significant(c) else "")
        p = "n/a" if c["p"] is None else f"{c['p']:.3f}"
        table.add_row(*(Text(str(c[k])) for k in ("a", "b", "head", "metric")), diff, interval, p)
    return table


def robustness_table(report: dict[str, Any]) -> Any:
    """One row per features x head x corruption, one column per metric: the mean on the
    corrupted test clips and its paired difference from the clean mean ('*': the difference's
    95% interval excludes 0). Means and differences only, to stay narrow: the intervals are in
    the JSON."""
    from rich.table import Table
    from rich.text import Text

    rows = [r for r in report["results"] if "corruption" in r]
    metrics = metric_columns(rows)
    diffs = {(c["a"], c["corruption"], c["head"], c["metric"]): c
             for c in report.get("comparisons", []) if "corruption" in c}  # fmt: skip
    title = (
        "corrupted test clips, heads fitted on clean clips: mean (corrupted - clean; * : 95% CI excludes 0)"
    )
    table = Table(title=title)
    table.add_column("features")
    table.add_column("corruption", no_wrap=True)
    table.add_column("head", no_wrap=True)
    for m in metrics:
        table.add_column(m, justify="right", no_wrap=True)
    cells: dict[tuple[str, str, str], dict[str, str]] = {}
    for r in rows:
        c = diffs.get((r["features"], r["corruption"], r["head"], r["metric"]))
        text = "n/a" if r["mean"] is None else f"{r['mean']:.3f}"
        if c is not None and c["diff"] is not None:
            text += f" ({c['diff']:+.3f}{'*' if significant(c) else ''})"
        cells.setdefault((r["features"], r["head"], r["corruption"]), {})[r["metric"]] = text
    order = {key: i for i, key in enumerate(dict.fromkeys((r["features"], r["head"]) for r in rows))}
    for (features, head, corruption), by_metric in sorted(cells.items(), key=lambda kv: order[kv[0][:2]]):
        table.add_row(Text(features), Text(corruption), head, *(by_metric.get(m, "") for m in metrics))
    return table


def write_json(report: dict[str, Any], path: str) -> None:
    with open(path, "w", encoding="utf-8") as f:
        json.dump(report, f, indent=1, allow_nan=False)
        f.write("\n")


def require_matplotlib() -> None:
    """Fail before any work when --plot cannot be honoured."""
    try:
        import matplotlib  # noqa: F401
    except ImportError:
        raise UsageError(f"--plot needs matplotlib: {PLOT_EXTRA}") from None


def plot_results(report: dict[str, Any], confusions: dict[str, list[list[int]]], path: str) -> None:
    """Bars with 95% CI whiskers per metric (a colour per feature set) and, for single-label
    tasks, each feature set's confusion matrix (rows normalised, all seeds' test clips)."""
    require_matplotlib()
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np

    results = [r for r in report["results"] if r["mean"] is not None and "corruption" not in r]  # clean only
    metrics = metric_columns(results)
    features = list(dict.fromkeys(r["features"] for r in report["results"]))
    comparisons = [
        c for c in report.get("comparisons", []) if c["diff"] is not None and "corruption" not in c
    ]
    cols = max(len(metrics), len(confusions), 1)
    nrows = 1 + bool(confusions) + bool(comparisons)
    fig, axes = plt.subplots(nrows, cols, figsize=(3.8 * cols, 4.2 * nrows), squeeze=False)
    for ax in [*axes[0][len(metrics) :], *(axes[1][len(confusions) :] if confusions else [])]:
        ax.axis("off")
    if comparisons:
        gs = axes[-1][0].get_gridspec()
        for ax in axes[-1]:
            ax.remove()
        cax = fig.add_subplot(gs[-1, :])
        labels = [f"{c['a']} - {c['b']}\n{c['head']} {c['metric']}" for c in comparisons]
        d = np.array([c["diff"] for c in comparisons])
        lo = np.array([c["diff"] if c["ci95"][0] is None else c["ci95"][0] for c in comparisons])
        hi = np.array([c["diff"] if c["ci95"][1] is None else c["ci95"][1] for c in comparisons])
        colours = [
            "C2" if significant(c) > 0 else "C3" if significant(c) < 0 else "grey" for c in comparisons
        ]
        for i, colour in enumerate(colours):
            cax.errorbar([i], d[i : i + 1], yerr=[d[i : i + 1] - lo[i : i + 1], hi[i : i + 1] - d[i : i + 1]],
                         fmt="none", ecolor=colour, capsize=4)  # fmt: skip
        cax.scatter(range(len(d)), d, c=colours, zorder=3)
        cax.axhline(0, color="black", lw=0.8)
        cax.set_xticks(range(len(d)), labels, rotation=60, ha="right", fontsize=6)
        cax.set_title("paired differences with 95% CI (green/red: interval excludes 0)", fontsize=9)
        axes = axes[:-1]
    for ax, metric in zip(axes[0], metrics, strict=False):
        rows = [r for r in results if r["metric"] == metric]
        means = np.array([r["mean"] for r in rows])
        lo = np.array([r["mean"] if r["ci95"][0] is None else r["ci95"][0] for r in rows])
        hi = np.array([r["mean"] if r["ci95"][1] is None else r["ci95"][1] for r in rows])
        colours = [f"C{features.index(r['features']) % 10}" for r in rows]
        ax.bar(range(len(rows)), means, yerr=[means - lo, hi - means], color=colours, capsize=4)
        ax.set_xticks(range(len(rows)), [r["head"] for r in rows], fontsize=8)
        ax.set_title(metric)
    handles = [plt.Rectangle((0, 0), 1, 1, color=f"C{i % 10}") for i in range(len(features))]
    fig.legend(handles, features, loc="lower center", ncol=min(len(features), 4), fontsize=8)
    classes = report["classes"]
    for ax, (name, counts) in zip(axes[-1], confusions.items(), strict=False):
        c = np.asarray(counts, dtype=np.float64)
        ax.imshow(c / np.maximum(c.sum(axis=1, keepdims=True), 1), cmap="Blues", vmin=0, vmax=1)
        ax.set_title(f"{name}\n(recall per true class)", fontsize=8)
        ax.set_xticks(range(len(classes)), classes, rotation=90, fontsize=6)
        ax.set_yticks(range(len(classes)), classes, fontsize=6)
        ax.set_xlabel("predicted")
        ax.set_ylabel("true")
    fig.suptitle(f"{report['task']}: test metrics, mean and 95% CI over {report['seeds']} seeds")
    fig.tight_layout(rect=(0, 0.08, 1, 1))
    fig.savefig(path, dpi=120)
    plt.close(fig)
