"""A study's figure and tables: cells are the means of their trainings' per-clip scores, with the
two-level intervals; the tables show the figure once drawn."""

from __future__ import annotations

import json
from pathlib import Path

from studies import figures, tables


def _result(features: str, head: str, metric: str, mean: float) -> dict[str, object]:
    """A result row whose 20 per-clip scores average to ``mean`` (the first clip undefined for MAP)."""
    per_clip: list[float | None] = [mean - 0.1, mean + 0.1] * 10
    if metric == "map_at_10":
        per_clip[0] = None
        per_clip[1] = mean
    return {"features": f"{features}.h5", "head": head, "metric": metric, "mean": mean,
            "ci95": [mean - 0.05, mean + 0.04], "per_seed": [mean], "per_clip": per_clip}  # fmt: skip


def _study(folder: Path) -> None:
    (folder / "probe").mkdir(parents=True)
    study = {"title": "A study", "tasks": ["notes", "genre"], "baselines": ["mfcc"], "extra_tasks": [],
             "robustness": [], "runs": ["a-s0", "b-s0", "a-s1", "c-s0"]}  # fmt: skip
    (folder / "study.json").write_text(json.dumps(study))
    for run, label in (("a-s0", "strategy a"), ("b-s0", "strategy b"), ("a-s1", "strategy a")):
        (folder / "runs" / run).mkdir(parents=True)
        summary = {"cell": run[0], "label": label, "seed": int(run[-1]), "steps": 3, "batch_size": 4,
                   "examples": 12, "segments_per_example": 2, "cpu_minutes": 0.1,
                   "final_loss": 1.0}  # fmt: skip
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


def test_panels_hold_each_cells_mean_over_its_trainings_in_table_order(tmp_path: Path) -> None:
    folder = tmp_path / "studies" / "s"
    _study(folder)
    panels = figures.panels(folder)
    assert [title for title, _ in panels] == ["notes linear acc.", "notes MAP@10"]
    accuracy = panels[0][1]
    assert list(accuracy) == ["a", "b", "mfcc"]  # cells in the study's order, then the baselines
    mean, lo, hi, trainings = accuracy["a"]
    assert round(mean, 6) == round((0.5 + 0.7) / 2, 6) and trainings == 2 and lo < mean < hi
    assert accuracy["b"][3] == 1 and round(accuracy["b"][0], 6) == 0.6
    # MAP@10: the undefined first clip is left out of every feature set
    assert round(panels[1][1]["mfcc"][0], 6) == round((0.5 * 18 + 0.5) / 19, 6)


def test_tables_show_cells_differences_and_each_training(tmp_path: Path) -> None:
    docs = tmp_path / "studies"
    _study(docs / "s")
    text = tables.render(docs)
    assert "| a | strategy a | 2 | 0.600 [" in text  # a-s0 (0.5) and a-s1 (0.7) averaged
    assert "| b | strategy b | 1 | 0.600 [" in text and "] †" in text  # one training: clips only
    assert "| b − a |" in text and "| a − mfcc |" in text
    assert "| a-s1 |" in text and "c-s0" in text  # each training listed; c-s0 not finished


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
