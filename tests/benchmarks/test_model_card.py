"""The model card is written from evidence files alone, says what they say, and refuses a bundled
step its own rule does not pick."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

from benchmarks import model_card
from mclx.models.registry import read_manifest

KEPT = next(m for m in read_manifest()["models"] if m["name"] == "mclx-base")["trained_on"]["step"]


def _comparison(b: str, head: str, metric: str, diff: float, lo: float, hi: float) -> dict:
    return {
        "a": "mclx-base",
        "b": b,
        "head": head,
        "metric": metric,
        "diff": diff,
        "ci95": [lo, hi],
        "p": 0.01,
    }


@pytest.fixture
def evidence(tmp_path: Path) -> Path:
    docs = tmp_path / "docs"
    (docs / "pilot").mkdir(parents=True)
    (docs / "probe").mkdir()
    (docs / "musicnn").mkdir()
    (docs / "pilot" / "README.md").write_text("# Choosing\n\nThe pilot said games (0.634 against 0.616).\n")
    # A lucky snapshot (KEPT + 600) between weak ones: the raw maximum, not the smoothed one.
    accs = dict(zip([0, KEPT - 200, KEPT, KEPT + 200, KEPT + 400, KEPT + 600, KEPT + 800],
                    [0.50, 0.64, 0.66, 0.64, 0.55, 0.72, 0.50], strict=True))  # fmt: skip
    snaps = {f"step-{s:06d}.safetensors": {"step": s, "sha256": str(s),
             "valid_accuracy": {"notes": a, "genre": a, "gamesrc": a}} for s, a in accs.items()}  # fmt: skip
    curves = {"runs": {"games": snaps}, "baselines": {"mfcc": {"notes": 0.6, "genre": 0.5, "gamesrc": 0.3}}}
    (docs / "learning_curves.json").write_text(json.dumps(curves))
    rows = [{"step": s, "loss": 1.0, "lr": 1e-3, "examples_per_s": 64.0} for s in range(10, KEPT + 201, 10)]
    (docs / "metrics.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    reports = {
        "notes": [_comparison("mclx-base-1", "linear", "accuracy", 0.05, 0.01, 0.09),
                  _comparison("mclx-base-1", "cosine", "map_at_10", 0.01, -0.02, 0.04),
                  _comparison("mfcc", "linear", "accuracy", 0.1, 0.05, 0.15)],
        "genre": [_comparison("mclx-base-1", "linear", "accuracy", 0.0, -0.08, 0.08),
                  _comparison("mclx-base-1", "cosine", "map_at_10", -0.05, -0.09, -0.01)],
        "brightness": [],  # a task without a comparison against version 1 is not counted
    }  # fmt: skip
    for task, comparisons in reports.items():
        (docs / "probe" / f"{task}.json").write_text(json.dumps({"task": task, "comparisons": comparisons}))
    (docs / "probe" / "table.md").write_text("| task | features |\n|---|---|\n| notes | mclx-base |\n")
    (docs / "musicnn" / "table.md").write_text(
        "Test scores ...\n\n| task | best |\n|---|---|\n| notes | x |\n\n"
        "| task | model | layer |\n|---|---|---|\n"
    )
    embed = {"files": 40, "audio_s": 1200.0, "model": "mclx-base", "versus": "mclx-base-1", "mclx_xrt": 200.0,
             "versus_mclx_xrt": 190.0, "mclx_ratio": 1.05, "model_xrt": 1000.0, "versus_model_xrt": 990.0,
             "model_ratio": 1.01}  # fmt: skip
    (docs / "embed_bench.json").write_text(json.dumps(embed))
    data = {"pool_tracks": 466, "pool_games": 60, "pool_hours": 23.0, "licences": [["GPL-2+", 466]],
            "labelled_clips": {"game": 752, "genre": 336, "notes": 1182},
            "labelled_pool_tracks": {"game": 466},
            "label_classes": {"game": 60, "genre": 6, "notes": 12}}  # fmt: skip
    (docs / "training_data.json").write_text(json.dumps(data))
    return docs


def _write(docs: Path, out: Path, monkeypatch: pytest.MonkeyPatch) -> str:
    argv = ["model_card", "--docs", str(docs), "--data", "", "--out", str(out)]
    monkeypatch.setattr(sys, "argv", argv)
    model_card.main()
    return out.read_text()


def test_the_card_says_what_the_evidence_says(evidence: Path, tmp_path: Path, monkeypatch) -> None:
    card = _write(evidence, tmp_path / "CARD.md", monkeypatch)
    assert f"Step kept: {KEPT}. Rule" in card and f"step {KEPT},\n  smoothed mean 0.647" in card
    assert f"| games | {KEPT + 600} | 0.720 | 0.720 | 0.720 | 0.720 | 0.590 |" in card
    assert "ahead by a paired interval on 1 of 2 tasks (notes (linear accuracy))" in card
    assert "behind on 1 (genre (MAP@10))" in card
    assert "`game:` 752 dev-task train clips and 466 pool tracks (60 classes)" in card
    assert (
        "The pilot said games" in card and "| notes | x |" in card and "| task | model | layer |" not in card
    )
    steps_to_kept = KEPT * 128 / 64.0 / 3600  # 2 s a step up to the kept step
    assert f"in\n  {steps_to_kept:.2f} hours of step time" in card
    assert "{" not in card.replace("```toml", "").split("## Choosing")[0]  # nothing left unformatted


def test_a_bundled_step_the_rule_does_not_pick_is_refused(
    evidence: Path, tmp_path: Path, monkeypatch
) -> None:
    curves = json.loads((evidence / "learning_curves.json").read_text())
    for step in (KEPT + 400, KEPT + 600, KEPT + 800):  # a plateau later on, not one lucky draw
        curves["runs"]["games"][f"step-{step:06d}.safetensors"]["valid_accuracy"] = dict.fromkeys(
            model_card.TASKS, 0.9
        )
    (evidence / "learning_curves.json").write_text(json.dumps(curves))
    with pytest.raises(
        SystemExit, match=f"bundled from step {KEPT}, but the rule picks step {KEPT + 800}"
    ):  # later on ties
        _write(evidence, tmp_path / "CARD.md", monkeypatch)
    assert not (tmp_path / "CARD.md").exists()
