"""Showing probe results: a rich table on stderr and an optional PNG."""

from __future__ import annotations

from typing import Any

from mclx.errors import UsageError


def print_table(report: dict[str, Any]) -> None:
    """features x head x metric, mean and 95% CI; the best mean of each metric in bold."""
    from rich.console import Console
    from rich.table import Table

    rows = report["results"]
    best: dict[str, float] = {}
    for r in rows:
        best[r["metric"]] = max(best.get(r["metric"], float("-inf")), r["mean"])
    s = report["splits"]
    table = Table(title=f"{report['task']} ({report['layout']}, {report['kind']}; "
                  f"train {s['train']} / valid {s['valid']} / test {s['test']})")  # fmt: skip
    for col in ("features", "head", "metric", "mean", "95% CI", "seeds"):
        table.add_column(col, justify="right" if col in ("mean", "95% CI", "seeds") else "left")
    for r in rows:
        mean = f"{r['mean']:.4f}"
        if r["mean"] == best[r["metric"]]:
            mean = f"[bold]{mean}[/bold]"
        lo, hi = r["ci95"]
        table.add_row(
            r["features"], r["head"], r["metric"], mean, f"[{lo:.4f}, {hi:.4f}]", str(len(r["per_seed"]))
        )
    console = Console(stderr=True)
    console.print(table)
    console.print(f"{report['aggregation']}; {report['evaluation']}", highlight=False)


def plot_results(report: dict[str, Any], confusions: dict[str, list[list[int]]], path: str) -> None:
    """Bars with 95% CI whiskers per metric and feature set; confusion matrices for single-label tasks."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        raise UsageError("--plot needs matplotlib: pip install 'mclx[plot]'") from None
    rows = report["results"]
    metrics = sorted({r["metric"] for r in rows})
    features = list(dict.fromkeys(r["features"] for r in rows))
    n_conf = len(confusions)
    fig, axes = plt.subplots(
        1, len(metrics) + n_conf, figsize=(4.2 * (len(metrics) + n_conf), 4.2), squeeze=False
    )
    for ax, metric in zip(axes[0], metrics, strict=False):
        sel = [r for r in rows if r["metric"] == metric]
        labels = [f"{r['features']}\n{r['head']}" for r in sel]
        means = [r["mean"] for r in sel]
        err = [[r["mean"] - r["ci95"][0] for r in sel], [r["ci95"][1] - r["mean"] for r in sel]]
        colours = [f"C{features.index(r['features'])}" for r in sel]
        ax.bar(range(len(sel)), means, yerr=err, color=colours, capsize=4)
        ax.set_xticks(range(len(sel)), labels, rotation=45, ha="right", fontsize=7)
        ax.set_title(metric)
    for ax, (name, conf) in zip(axes[0][len(metrics) :], confusions.items(), strict=False):
        ax.imshow(conf, cmap="Blues")
        ax.set_title(f"confusion: {name}", fontsize=8)
        ticks = range(len(report["classes"]))
        ax.set_xticks(ticks, report["classes"], rotation=90, fontsize=6)
        ax.set_yticks(ticks, report["classes"], fontsize=6)
        ax.set_xlabel("predicted")
        ax.set_ylabel("true")
    fig.suptitle(f"{report['task']}: probes with 95% confidence intervals")
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
