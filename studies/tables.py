"""``docs/studies.md`` from ``docs/studies/`` alone: the same files give the same bytes.

Per study: what each run cost, the test-split table (linear accuracy and, where the study asks
for it, MAP@10, each a mean with its 95% bootstrap interval), the paired differences, the
spread between training seeds, the validation accuracy against mclx-base, and the study's
reading (``<study>/reading.md``, written by hand from these numbers), and the study's figure
(``<study>/figure.png``, drawn by ``studies.figures``) where it exists. A study whose runs are
not all finished says which are missing.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from mclx.probe.report import cell
from studies.figures import FIGURE

HEADER = """# Studies: the seed papers rerun with mclx

Produced by `python -m studies run choi semisupcon` (`studies/`, one TOML per study, one `mclx
train` config per cell) on the development corpus (`../shared/data`), and rebuilt from
`docs/studies/` alone by `python -m studies run --tables-only`. Every cell: mclx-base's small mel
CNN, the same budget (steps x batch tracks), trained on a 2-core CPU, two runs at a time with
one thread each. Probes: the test splits, a linear head (L2 chosen on the valid split) and cosine
retrieval, 5 seeds; intervals are 95% percentile bootstraps over the test clips (and seeds), and
every difference is paired (same clips, same seeds). `*`: the interval excludes 0. The
training seed is not covered by these intervals: the second-seed rows show how far two trainings
of one cell differ.
"""


def _load(path: Path) -> Any:
    return json.loads(path.read_text())


def _name(features: str) -> str:
    return features.removesuffix(".h5")


def _result(report: dict[str, Any], features: str, head: str, metric: str) -> dict[str, Any] | None:
    for r in report["results"]:
        if _name(r["features"]) == features and r["head"] == head and r["metric"] == metric:
            return r  # type: ignore[no-any-return]
    return None


def _diff(report: dict[str, Any], a: str, b: str, head: str, metric: str) -> str:
    for c in report["comparisons"]:
        if (_name(c["a"]), _name(c["b"]), c["head"], c["metric"]) == (a, b, head, metric):
            lo, hi = c["ci95"]
            star = " *" if lo is not None and (lo > 0 or hi < 0) else ""
            return f"{c['diff']:+.3f} [{lo:+.3f}, {hi:+.3f}]{star}"
    return ""


def _row(cells: list[str]) -> str:
    return "| " + " | ".join(cells) + " |"


def _table(header: list[str], rows: list[list[str]]) -> list[str]:
    return [_row(header), "|" + "---|" * len(header), *(_row(r) for r in rows), ""]


def _columns(study: dict[str, Any], reports: dict[str, Any]) -> list[tuple[str, str, str]]:
    """(task, head, metric) columns of the main table."""
    cols = []
    for task in study["tasks"]:
        if task in reports:
            cols.append((task, "linear", "accuracy"))
            cols.append((task, "cosine", "map_at_10"))
    return cols


def study_section(folder: Path) -> list[str]:
    study = _load(folder / "study.json")
    runs = {}
    for run in study["runs"]:
        path = folder / "runs" / run / "summary.json"
        if path.exists():
            runs[run] = _load(path)
    reports = {p.stem: _load(p) for p in sorted((folder / "probe").glob("*.json"))}
    lines = [f"## {study['title']}", ""]
    missing = [r for r in study["runs"] if r not in runs]
    if missing:
        lines += [
            f"Not finished yet ({len(missing)} of {len(study['runs'])} runs): {', '.join(missing)}.",
            "",
        ]
    probed = {f["name"].removesuffix(".h5") for r in reports.values() for f in r["features"]}
    unprobed = [r for r in runs if r not in probed]
    if unprobed:
        lines += [f"Trained, not probed yet: {', '.join(unprobed)}.", ""]
    lines += ["### Runs and their cost", ""]
    rows = []
    for name, s in runs.items():
        budget = f"{s['steps']} x {s['batch_size']} = {s['examples']:,}"
        wall = s.get("train_wall_minutes")
        rows.append([name, s["label"], str(s["seed"]), budget, str(s["segments_per_example"]),
                     f"{s['cpu_minutes']:.0f}", "" if wall is None else f"{wall:.0f}",
                     f"{s['final_loss']:.3f}"])  # fmt: skip
    lines += _table(["run", "strategy", "seed", "steps x batch = tracks", "segments per track",
                     "CPU minutes", "training wall minutes", "final loss"], rows)  # fmt: skip
    lines += ["CPU minutes: user + system time of the training process, sampled every 5 s by the runner "
              "(a run whose process outlived a stopped runner is undercounted); training wall minutes: "
              "from the run's own summary lines, one thread, beside one other job.", ""]  # fmt: skip
    features = [*(r for r in runs), *study["baselines"]]
    cols = _columns(study, reports)
    lines += ["### Test splits", ""]
    rows = []
    for f in features:
        row = [f]
        for task, head, metric in cols:
            r = _result(reports[task], f, head, metric)
            row.append(cell(r) if r else "")
        rows.append(row)
    lines += _table(
        ["features", *(f"{t} {'linear acc.' if h == 'linear' else 'MAP@10'}" for t, h, _ in cols)], rows
    )
    if (folder / FIGURE).exists():
        link = f"{folder.parent.name}/{folder.name}/{FIGURE}"
        lines += [f"![{study['title']}: the test table above, drawn]({link})", ""]
    lines += ["### Paired differences (linear accuracy; MAP@10 for retrieval)", ""]
    rows = []
    for a, b in _pairs(reports):
        row = [f"{a} − {b}"]
        for task, head, metric in cols:
            row.append(_diff(reports[task], a, b, head, metric) if task in reports else "")
        rows.append(row)
    lines += _table(["a − b", *(f"{t} {'acc.' if h == 'linear' else 'MAP@10'}" for t, h, _ in cols)], rows)
    lines += _extra_sections(study, reports)
    lines += _validation(folder)
    reading = folder / "reading.md"
    if reading.exists():
        lines += ["### Reading", "", reading.read_text().strip(), ""]
    return lines


def _pairs(reports: dict[str, Any]) -> list[tuple[str, str]]:
    seen: dict[tuple[str, str], None] = {}
    for report in reports.values():
        for c in report["comparisons"]:
            seen[(_name(c["a"]), _name(c["b"]))] = None
    return list(seen)


def _extra_sections(study: dict[str, Any], reports: dict[str, Any]) -> list[str]:
    lines: list[str] = []
    for task in study.get("extra_tasks", []):
        if task not in reports:
            continue
        lines += [f"### {task} (regression, linear head, r²)", ""]
        rows = []
        for r in reports[task]["results"]:
            if r["metric"] == "r2":
                rows.append([_name(r["features"]), cell(r)])
        lines += _table(["features", "r² [95% CI]"], rows)
    corrupted = [t for t in reports if "." in t]
    if corrupted:
        lines += ["### Robustness: heads trained on clean clips, tested on corrupted test clips", "",
                  "Linear accuracy on the test split.", ""]  # fmt: skip
        corruptions = list(dict.fromkeys(t.split(".", 1)[1] for t in corrupted))
        rows = []
        for task in study["tasks"]:
            if task not in reports:
                continue
            names = [_name(r["features"]) for r in reports[task]["results"] if r["metric"] == "accuracy"]
            for f in names:
                clean = _result(reports[task], f, "linear", "accuracy")
                row = [task, f, cell(clean) if clean else ""]
                found = False
                for c in corruptions:
                    r = _result(reports.get(f"{task}.{c}", {"results": []}), f, "linear", "accuracy")
                    found |= r is not None
                    row.append(cell(r) if r else "")
                if found:
                    rows.append(row)
        lines += _table(["task", "features", "clean", *corruptions], rows)
    return lines


def _validation(folder: Path) -> list[str]:
    path = folder / "valid.json"
    if not path.exists():
        return []
    valid = _load(path)
    tasks = sorted({t for v in valid.values() for t in v})
    lines = ["### Validation splits (linear accuracy; chooses, never the test splits)", ""]
    rows = []
    ref = valid.get("mclx-base")
    for f, v in valid.items():
        mean = sum(v.values()) / len(v)
        against = f"{mean - sum(ref.values()) / len(ref):+.4f}" if ref else ""
        rows.append([f, *(f"{v[t]:.4f}" for t in tasks), f"{mean:.4f}", against])
    lines += _table(["features", *tasks, "mean", "mean − mclx-base"], rows)
    return lines


def render(docs: Path) -> str:
    lines = [HEADER]
    for folder in sorted(p.parent for p in docs.glob("*/study.json")):
        lines += study_section(folder)
    return "\n".join(lines).rstrip() + "\n"


def write(docs: Path) -> str:
    """Writes ``<docs>.md`` (docs/studies -> docs/studies.md); returns its path."""
    out = docs.with_suffix(".md")
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(render(docs))
    return str(out)
