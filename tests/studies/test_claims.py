"""A study's reading cites its numbers through checked tokens: a claim its interval does not
support stops the rebuild, and nothing is written."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from studies.__main__ import main
from studies.cells import Evidence, result
from studies.claims import ClaimError, render

N = 120  # test clips


def _per_clip(p: float, seed: int) -> list[float]:
    """N 0/1 clip scores with success rate about ``p``."""
    return (np.random.default_rng(seed).random(N) < p).astype(float).tolist()


@pytest.fixture
def study(tmp_path: Path) -> Path:
    """docs/studies/<study> with cells strong (2 trainings), weak (2) and MFCC, one task."""
    folder = tmp_path / "studies" / "demo"
    rates = {"strong-s0": 0.9, "strong-s1": 0.85, "weak-s0": 0.3, "weak-s1": 0.35, "mfcc": 0.88}
    runs = [r for r in rates if r != "mfcc"]
    (folder / "probe").mkdir(parents=True)
    study = {"title": "Demo", "runs": runs, "tasks": ["t"], "baselines": ["mfcc"]}
    (folder / "study.json").write_text(json.dumps(study))
    for i, run in enumerate(runs):
        (folder / "runs" / run).mkdir(parents=True)
        summary = {"cell": run.split("-")[0], "label": run.split("-")[0], "seed": i, "steps": 10,
                   "batch_size": 4, "examples": 40, "segments_per_example": 2, "cpu_minutes": 1.0,
                   "final_loss": 1.0}  # fmt: skip
        (folder / "runs" / run / "summary.json").write_text(json.dumps(summary))
    results = [
        {"features": f"{f}.h5" if f != "mfcc" else f, "head": head, "metric": metric, "mean": p,
         "ci95": [p, p], "per_clip": _per_clip(p, seed)}
        for seed, (f, p) in enumerate(rates.items())
        for head, metric in (("linear", "accuracy"), ("cosine", "map_at_10"))
    ]  # fmt: skip
    report = {"task": "t", "features": [{"name": f"{f}.h5"} for f in runs] + [{"name": "mfcc"}],
              "results": results, "comparisons": []}  # fmt: skip
    (folder / "probe" / "t.json").write_text(json.dumps(report))
    return folder


def test_tokens_become_the_tables_numbers(study: Path) -> None:
    ev = Evidence(study)
    text = render("strong: [[strong | t linear]]; [[strong − weak | t linear | >]], "
                  "[[weak - strong | t map | <]]; [[strong − mfcc | t linear | ~]].", ev)  # fmt: skip
    iv = ev.interval(("t", "linear", "accuracy"), ["strong-s0", "strong-s1"])
    assert iv is not None and f"strong: {iv.mean:.3f} [{iv.lo:.3f}, {iv.hi:.3f}];" in text
    diff = ev.difference(("t", "linear", "accuracy"), ["strong-s0", "strong-s1"], ["weak-s0", "weak-s1"])
    assert diff is not None and diff.lo > 0 and f"{diff.mean:+.3f} [{diff.lo:+.3f}, {diff.hi:+.3f}]" in text
    assert "[[" not in text and "†" not in text  # two trainings each; MFCC is not trained


def test_a_cell_with_one_training_is_marked(study: Path) -> None:
    (study / "runs" / "weak-s1" / "summary.json").unlink()  # weak now has one finished training
    ev = Evidence(study)
    text = render("[[weak | t linear]]; [[strong − weak | t linear | >]]; [[strong | t map]]", ev)
    first, second, third = text.split("; ")
    assert first.endswith(" †") and second.endswith(" †") and not third.endswith("†")


def test_a_cost_token_is_the_run_tables_range(study: Path) -> None:
    for run, minutes in {"strong-s0": 43.4, "strong-s1": 45.6, "weak-s0": 12.5, "weak-s1": 12.4}.items():
        path = study / "runs" / run / "summary.json"
        path.write_text(json.dumps({**json.loads(path.read_text()), "cpu_minutes": minutes}))
    ev = Evidence(study)
    text = render("[[strong | cpu minutes]]; [[weak | cpu minutes]]; [[weak, strong | cpu minutes]]", ev)
    assert text == "43 to 46; 12; 12 to 46"  # rounded as the run table shows them (12.5 -> 12)


@pytest.mark.parametrize(
    ("token", "message"),
    [
        ("[[weak − strong | t linear | >]]", "is not above 0"),
        ("[[strong − mfcc | t linear | >]]", "is not above 0"),  # level: the interval covers 0
        ("[[strong − weak | t linear | ~]]", "is not covering 0"),
        ("[[strong − weak | t linear]]", "a difference is"),
        ("[[strong | t linear | >]]", "needs a difference"),
        ("[[nobody − weak | t linear | >]]", "no cell 'nobody'"),
        ("[[strong | t mlp]]", "expected 'TASK linear' or 'TASK map'"),
        ("[[strong | other linear]]", "no per-clip scores"),
        ("[[strong − weak | t linear | >=]]", "not a token"),
        ("[[strong]]", "not a token"),
        ("[[strong − weak | t linear | > | more]]", "not a token"),
        ("[[strong | cpu minutes | >]]", "a cost takes no direction"),
        ("[[strong, mfcc | cpu minutes]]", "mfcc is a baseline"),
        ("[[strong | wall minutes]]", "has no train_wall_minutes"),
    ],
)
def test_an_unsupported_or_unknown_claim_is_an_error(study: Path, token: str, message: str) -> None:
    with pytest.raises(ClaimError, match=message):
        render(f"Reading: {token}.", Evidence(study))


def test_tables_only_refuses_a_reading_its_evidence_contradicts(study: Path, capsys) -> None:
    docs = study.parent
    (study / "reading.md").write_text("Strong beats weak ([[strong − weak | t linear | >]]).")
    assert main(["run", "--tables-only", "--docs", str(docs)]) == 0
    written = docs.with_suffix(".md").read_text()
    assert "Strong beats weak (+0." in written
    (study / "reading.md").write_text("Weak beats strong ([[weak − strong | t linear | >]]).")
    assert main(["run", "--tables-only", "--docs", str(docs)]) == 1
    err = capsys.readouterr().err
    assert "reading.md: [[weak − strong" in err and "is not above 0" in err
    assert docs.with_suffix(".md").read_text() == written  # nothing half-written


def test_a_difference_the_reading_cites_is_a_row_of_the_paired_table(study: Path) -> None:
    docs = study.parent
    reading = "Weak trails MFCC ([[weak − mfcc | t linear | <]]); level: [[strong − mfcc | t map | ~]]."
    (study / "reading.md").write_text(reading)
    assert main(["run", "--tables-only", "--docs", str(docs)]) == 0
    paired = docs.with_suffix(".md").read_text().split("### Paired differences")[1].split("###")[0]
    rows = [line.split(" | ")[0].lstrip("| ") for line in paired.splitlines() if line.startswith("| ")]
    assert rows.count("weak − mfcc") == 1 and rows.count("strong − mfcc") == 1  # not twice
    (study / "reading.md").write_text("Strong beats weak ([[strong − weak | t linear | >]]).")
    assert main(["run", "--tables-only", "--docs", str(docs)]) == 0
    paired = docs.with_suffix(".md").read_text().split("### Paired differences")[1].split("###")[0]
    # both: the evidence's own (each cell against the first, strong) and the cited one
    assert "| weak − strong |" in paired and "| strong − weak |" in paired


def _robust_report(study: Path) -> None:
    """``t.robust.json`` as `mclx probe --corrupt` writes it: strong loses 0.3 under noise (an
    interval below 0), nothing under mp3 (one covering 0)."""
    results, comparisons = [], []
    run = "strong-s0.safetensors"
    scores = (("noise:0db", 0.55, [0.5, 0.6], -0.3, [-0.35, -0.25]),
              ("mp3:32k", 0.84, [0.8, 0.88], -0.01, [-0.03, 0.01]))  # fmt: skip
    for corruption, mean, ci, diff, dci in scores:
        scored = {"corruption": corruption, "head": "linear", "metric": "accuracy"}
        results.append({"features": run, **scored, "mean": mean, "ci95": ci})
        comparisons.append({"a": run, "b": run, **scored, "diff": diff, "ci95": dci})
    report = {"task": "t", "results": results, "comparisons": comparisons}
    (study / "probe" / "t.robust.json").write_text(json.dumps(report))


def test_a_robustness_token_is_the_corrupted_score_or_its_checked_drop(study: Path) -> None:
    _robust_report(study)
    ev = Evidence(study)
    text = render("[[strong-s0 @ noise:0db | t linear]]; [[strong-s0 @ noise:0db | t linear | <]]; "
                  "[[strong-s0 @ mp3:32k | t linear | ~]]", ev)  # fmt: skip
    assert text == "0.550 [0.500, 0.600]; -0.300 [-0.350, -0.250]; -0.010 [-0.030, +0.010]"
    with pytest.raises(ClaimError, match="is not covering 0"):
        render("[[strong-s0 @ noise:0db | t linear | ~]]", ev)
    with pytest.raises(ClaimError, match="is not below 0"):
        render("[[strong-s0 @ mp3:32k | t linear | <]]", ev)
    with pytest.raises(ClaimError, match="no score for strong-s0 under 'aac:24k'"):
        render("[[strong-s0 @ aac:24k | t linear]]", ev)
    with pytest.raises(ClaimError, match="no robustness report for other"):
        render("[[strong-s0 @ noise:0db | other linear]]", ev)


def test_a_clean_lookup_never_takes_a_corrupted_row_listed_first(study: Path) -> None:
    _robust_report(study)
    report = json.loads((study / "probe" / "t.robust.json").read_text())
    clean = {"features": "strong-s0.safetensors", "head": "linear", "metric": "accuracy", "mean": 0.85}
    report["results"].append(clean)  # after the corrupted rows sharing its feature set
    assert result(report, "strong-s0", "linear", "accuracy") == clean
    assert result(report, "strong-s0", "linear", "accuracy", "noise:0db")["mean"] == 0.55  # type: ignore[index]
    assert result(report, "strong-s0", "linear", "map@10") is None
