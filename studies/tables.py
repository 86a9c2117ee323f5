"""``docs/studies.md`` from ``docs/studies/`` alone: the same files give the same bytes.

Per study: what each run cost, the test-split table (linear accuracy and, where the study asks
for it, MAP@10, each a mean with its 95% bootstrap interval), the paired differences, the
spread between training seeds, the validation accuracy against mclx-base-1, and the study's
reading (``<study>/reading.md``, written by hand, its numbers and claims checked tokens:
``studies.claims``), and the study's figure
(``<study>/figure.png``, drawn by ``studies.figures``) where it exists. A study whose runs are
not all finished says which are missing.
"""

from __future__ import annotations

import tomllib
from pathlib import Path
from typing import Any

from mclx.probe.report import cell
from studies import claims
from studies.cells import Evidence, drop, load, name, result
from studies.figures import FIGURE
from studies.intervals import Interval
from studies.spec import REFERENCE

HEADER = """# Studies: the seed papers rerun with mclx (second edition)

Produced by `python -m studies run choi semisupcon` (`studies/`, one TOML per study, one `mclx
train` config per cell) on the development corpus (`../shared/data`), and rebuilt from
`docs/studies/` alone by `python -m studies run --tables-only`. Every cell: mclx-base's small mel
CNN, the same budget (steps x batch examples, the run table says what an example is), trained on a
2-core CPU, one thread per run; every run records the corpus it was built from (the clean 60-game
pool: its manifest's sha256 and track count), and the run table says what it drew its audio from
(the pool, labelled clips, or both). Probes: the test splits, a linear head (L2 chosen on the valid
split) and cosine retrieval. A cell is trained several times (training seeds); its score is the
mean over its trainings, and its 95% interval is a two-level percentile bootstrap that redraws the
trainings, then the test clips (the same clips for every training), so it covers both the training
seed and the test set. A cell with one training so far (marked †) has an interval over the clips
only. Differences between cells are paired on the clips (one clip draw for both) and redraw each
cell's trainings independently. `*`: the interval excludes 0. The first edition (a pool that held
the gamesrc valid and test clips' source tracks, one training for most cells) is withdrawn; it is
in the git history up to commit 990b333.
"""


def _row(cells: list[str]) -> str:
    return "| " + " | ".join(cells) + " |"


def _table(header: list[str], rows: list[list[str]]) -> list[str]:
    return [_row(header), "|" + "---|" * len(header), *(_row(r) for r in rows), ""]


def _interval(iv: Interval | None, signed: bool = False, trained: bool = True) -> str:
    """'mean [lo, hi]', with * for a difference whose interval excludes 0 and † for a trained cell
    with one training (its interval covers the clips only)."""
    if iv is None:
        return ""
    f = "{:+.3f}" if signed else "{:.3f}"
    star = " *" if signed and iv.excludes_zero else ""
    dagger = " †" if iv.trainings == 1 and not signed and trained else ""
    return f"{f.format(iv.mean)} [{f.format(iv.lo)}, {f.format(iv.hi)}]{star}{dagger}"


def _title(column: tuple[str, str, str]) -> str:
    task, head, _ = column
    return f"{task} {'linear acc.' if head == 'linear' else 'MAP@10'}"


def study_section(folder: Path) -> list[str]:
    ev = Evidence(folder)
    study, runs, reports = ev.study, ev.summaries, ev.reports
    lines = [f"## {study['title']}", ""]
    missing = [r for r in study["runs"] if r not in runs]
    if missing:
        lines += [
            f"Not finished yet ({len(missing)} of {len(study['runs'])} runs): {', '.join(missing)}.",
            "",
        ]
    unprobed = [r for r in runs if r not in ev.probed()]
    if unprobed:
        lines += [f"Trained, not probed yet: {', '.join(unprobed)}.", ""]
    protocol = folder / "protocol.md"
    if protocol.exists():
        lines += ["### How this differs from the paper", "", protocol.read_text().strip(), ""]
    lines += _costs(runs, folder)
    cols = ev.columns()
    cells = ev.cells()
    labels = ev.labels()
    lines += ["### Test splits: each cell's mean over its trainings", ""]
    rows = []
    for c, members in cells.items():
        trained = c not in study["baselines"]
        texts = [_interval(ev.interval(col, members), trained=trained) for col in cols]
        rows.append([c, labels.get(c, c), str(len(members)) if trained else "", *texts])
    lines += _table(["cell", "strategy", "trainings", *(_title(col) for col in cols)], rows)
    if (folder / FIGURE).exists():
        link = f"{folder.parent.name}/{folder.name}/{FIGURE}"
        lines += [f"![{study['title']}: the test table above, drawn]({link})", ""]
    lines += ["### Paired differences between cells (two-level: trainings and clips)", ""]
    rows = []
    for a, b in _pairs(folder, ev):
        rows.append([f"{a} − {b}", *(_interval(ev.difference(col, cells[a], cells[b]), signed=True)
                                     for col in cols)])  # fmt: skip
    lines += _table(["a − b", *(_title(col) for col in cols)], rows)
    lines += ["### Each training (the means the cells average; intervals over the clips only)", ""]
    rows = []
    for c, members in cells.items():
        if c in study["baselines"]:
            continue
        for run in members:
            row = [run]
            for task, head, metric in cols:
                r = result(reports[task], run, head, metric)
                row.append(cell(r) if r else "")
            rows.append(row)
    lines += _table(["run", *(_title(col) for col in cols)], rows)
    lines += _extra_sections(study, reports)
    lines += _validation(folder, cells)
    reading = folder / "reading.md"
    if reading.exists():
        lines += ["### Reading", "", _reading(reading, ev), ""]
    return lines


def _pairs(folder: Path, ev: Evidence) -> list[tuple[str, str]]:
    """The paired table's rows: the evidence's own pairs, then any other difference the reading
    cites (each claim of the reading points to a row)."""
    pairs = ev.pairs()
    reading = folder / "reading.md"
    if reading.exists():
        cells = ev.cells()
        cited = claims.cited_pairs(reading.read_text())
        pairs += [p for p in cited if p not in pairs and p[0] in cells and p[1] in cells]
    return pairs


def _reading(path: Path, ev: Evidence) -> str:
    """The reading with its tokens filled in; ClaimError names the file."""
    try:
        return claims.render(path.read_text().strip(), ev)
    except claims.ClaimError as exc:
        raise claims.ClaimError(f"{path}: {exc}") from None


def check_readings(docs: Path) -> None:
    """Every study's reading against its evidence (ClaimError on the first unsupported claim),
    before anything is written."""
    for folder in sorted(p.parent for p in docs.glob("*/study.json")):
        if (folder / "reading.md").exists():
            _reading(folder / "reading.md", Evidence(folder))


def _sources(summary: dict[str, Any], config: Path) -> str:
    """What a run trained on, from its resolved config's ``data.audio``: the pool (its track count
    and manifest sha256, as its summary records them) and any clip lists (with the split read)."""
    pool = f"pool {summary.get('pool_tracks', '?')} ({summary.get('pool_manifest_sha256', '')[:8]})"
    if not config.exists():
        return pool
    data = tomllib.loads(config.read_text())["data"]
    out = []
    for source in data["audio"]:
        path = Path(source)
        if path.parent.name == "music":
            out.append(pool)
        else:
            out.append(f"{path.parent.name} {data.get('split') or 'all'} clips")
    return " + ".join(out) if pool in out else " + ".join(out) + " only"


def _costs(runs: dict[str, Any], folder: Path) -> list[str]:
    rows = []
    for run, s in runs.items():
        budget = f"{s['steps']} x {s['batch_size']} = {s['examples']:,}"
        wall = s.get("train_wall_minutes")
        source = _sources(s, folder / "runs" / run / "config.toml")
        cpu, wall_text = claims.minutes(s["cpu_minutes"]), "" if wall is None else claims.minutes(wall)
        rows.append([run, str(s["seed"]), budget, str(s["segments_per_example"]), cpu, wall_text,
                     f"{s['final_loss']:.3f}", source])  # fmt: skip
    lines = ["### Runs and their cost", ""]
    header = ["run", "seed", "steps x batch = examples", "segments per example", "CPU minutes",
              "wall minutes", "final loss", "trained on (pool: tracks, manifest sha256)"]  # fmt: skip
    lines += _table(header, rows)
    note = ("An example is the views drawn from one track or clip; with intra-track negatives a batch draws "
            "several segment pairs from each of its tracks (the protocol table says how many), and an "
            "example is one pair. CPU minutes: user + system time of the training process; wall "
            "minutes: from its start to its end; both sampled every 5 s by the runner from /proc and "
            "added up over every session of the run (a resumed run counts whole). One thread per run, "
            "beside one other job.")  # fmt: skip
    lines += [note, ""]
    return lines


def _extra_sections(study: dict[str, Any], reports: dict[str, Any]) -> list[str]:
    lines: list[str] = []
    for task in study.get("extra_tasks", []):
        if task not in reports:
            continue
        lines += [f"### {task} (regression, linear head, r²)", ""]
        rows = []
        for r in reports[task]["results"]:
            if r["metric"] == "r2":
                rows.append([name(r["features"]), cell(r)])
        lines += _table(["features", "r² [95% CI]"], rows)
    for task in study["tasks"]:
        report = reports.get(f"{task}.robust")
        if report is None:
            continue
        lines += [f"### Robustness on {task}: heads fitted on clean clips, scored on corrupted test clips",
                  "", "Linear accuracy on the test split (the first training of each robust cell): clean, "
                  "then each corruption as its mean and its paired difference from clean "
                  "(same clips and seeds).", ""]  # fmt: skip
        features = list(dict.fromkeys(name(r["features"]) for r in report["results"]))
        corruptions = list(dict.fromkeys(r["corruption"] for r in report["results"] if "corruption" in r))
        rows = []
        for c in corruptions:
            row = [c]
            for f in features:
                r = result(report, f, "linear", "accuracy", c)
                d = drop(report, f, c, "linear", "accuracy")
                text = "" if r is None else f"{r['mean']:.3f}"
                if d is not None and d["ci95"][0] is not None:
                    lo, hi = d["ci95"]
                    star = " *" if lo > 0 or hi < 0 else ""
                    text += f" ({d['diff']:+.3f} [{lo:+.3f}, {hi:+.3f}]{star})"
                row.append(text)
            rows.append(row)
        clean = ["clean"]
        for f in features:
            r = result(report, f, "linear", "accuracy")
            clean.append(cell(r) if r else "")
        lines += _table(["corruption", *features], [clean, *rows])
    return lines


def _validation(folder: Path, cells: dict[str, list[str]]) -> list[str]:
    """Each cell's validation accuracy, averaged over its trainings, beside mclx-base-1 (a separate
    line: it trained 1,800 steps with the labels of all three tasks, not an equal-budget cell)."""
    path = folder / "valid.json"
    if not path.exists():
        return []
    valid = load(path)
    tasks = sorted({t for v in valid.values() for t in v})
    lines = ["### Validation splits (linear accuracy, mean over trainings; chooses, never the test splits)",
             ""]  # fmt: skip
    rows = []
    ref = valid.get(REFERENCE)
    groups = {c: [r for r in members if r in valid] for c, members in cells.items()}
    groups[f"{REFERENCE} (bundled, version 1; not an equal-budget cell)"] = [REFERENCE] if ref else []
    for c, members in groups.items():
        if not members or not all(set(valid[m]) == set(tasks) for m in members):
            continue
        per_task = [sum(valid[m][t] for m in members) / len(members) for t in tasks]
        mean = sum(per_task) / len(per_task)
        against = f"{mean - sum(ref.values()) / len(ref):+.4f}" if ref and members != [REFERENCE] else ""
        rows.append([c, str(len(members)), *(f"{v:.4f}" for v in per_task), f"{mean:.4f}", against])
    lines += _table(["cell", "trainings", *tasks, "mean", f"mean − {REFERENCE}"], rows)
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
