"""A study's figure: its points are the probe reports' numbers, and the tables show it once drawn."""

from __future__ import annotations

import json
from pathlib import Path

from studies import figures, tables


def _result(features: str, head: str, metric: str, mean: float) -> dict[str, object]:
    return {"features": f"{features}.h5", "head": head, "metric": metric, "mean": mean,
            "std": 0.0, "ci95": [mean - 0.05, mean + 0.04], "n": 10}  # fmt: skip


def _study(folder: Path) -> None:
    (folder / "probe").mkdir(parents=True)
    study = {"title": "A study", "tasks": ["notes", "genre"], "baselines": ["mfcc"], "extra_tasks": [],
             "robustness": [], "runs": ["a-s0", "b-s0", "a-s1", "c-s0"]}  # fmt: skip
    (folder / "study.json").write_text(json.dumps(study))
    for run, label in (("a-s0", "strategy a"), ("b-s0", "strategy b"), ("a-s1", "strategy a")):
        (folder / "runs" / run).mkdir(parents=True)
        summary = {"label": label, "seed": int(run[-1]), "steps": 3, "batch_size": 4, "examples": 12,
                   "segments_per_example": 2, "cpu_minutes": 0.1, "final_loss": 1.0}  # fmt: skip
        (folder / "runs" / run / "summary.json").write_text(json.dumps(summary))
    results = [
        _result(f, head, metric, 0.1 * i + (0.5 if head == "linear" else 0.2))
        for i, f in enumerate(("a-s0", "b-s0", "a-s1", "mfcc"))
        for head, metric in (("linear", "accuracy"), ("cosine", "map_at_10"))
    ]
    # genre is not probed yet: its panels are left out, not drawn empty.
    features = [{"name": f"{f}.h5"} for f in ("a-s0", "b-s0", "a-s1", "mfcc")]
    report = {"features": features, "results": results, "comparisons": []}
    (folder / "probe" / "notes.json").write_text(json.dumps(report))


def test_panels_hold_the_reports_numbers_in_table_order(tmp_path: Path) -> None:
    folder = tmp_path / "studies" / "s"
    _study(folder)
    panels = figures.panels(folder)
    assert [title for title, _ in panels] == ["notes linear acc.", "notes MAP@10"]
    accuracy = panels[0][1]
    assert list(accuracy) == ["a-s0", "b-s0", "a-s1", "mfcc"]
    mean, lo, hi = accuracy["b-s0"]
    assert (round(mean, 6), round(lo, 6), round(hi, 6)) == (0.6, 0.55, 0.64)
    assert panels[1][1]["mfcc"][0] == 0.2 + 0.3


def test_figure_is_drawn_reproducibly_and_linked_from_the_tables(tmp_path: Path) -> None:
    docs = tmp_path / "studies"
    _study(docs / "s")
    assert "figure.png" not in tables.render(docs)
    assert figures.write(docs) == [docs / "s" / figures.FIGURE]
    png = (docs / "s" / figures.FIGURE).read_bytes()
    assert png.startswith(b"\x89PNG\r\n\x1a\n")
    figures.write(docs)
    assert (docs / "s" / figures.FIGURE).read_bytes() == png  # no date in it: same bytes again
    assert "![A study: the test table above, drawn](studies/s/figure.png)" in tables.render(docs)


def test_nothing_is_drawn_before_any_probe(tmp_path: Path) -> None:
    docs = tmp_path / "studies"
    _study(docs / "s")
    (docs / "s" / "probe" / "notes.json").unlink()
    assert figures.write(docs) == []
    assert not (docs / "s" / figures.FIGURE).exists()
