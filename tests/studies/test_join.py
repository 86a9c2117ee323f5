"""Joining another runner's evidence: a report grown by the runs probed elsewhere equals the report
of one probe over all of them, and evidence that disagrees joins nothing."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from mclx.probe import ProbeSettings, run_probe
from studies.__main__ import main
from studies.join import JoinError, join_study

from ..probe.helpers import blobs, write_csv_task, write_features


def _probe(tmp: Path, names: tuple[str, ...], compare: tuple[tuple[str, str], ...]) -> Any:
    """The study runner's probe: from the stores' folder (the working directory), by file name."""
    settings = ProbeSettings("t", str(tmp / "t"), "csv", embeddings=tuple(f"{n}.h5" for n in names),
                             head="linear", seeds=2, per_clip=True, quiet=True,
                             compare=tuple((f"{a}.h5", f"{b}.h5") for a, b in compare))  # fmt: skip
    return run_probe(settings)


def _folder(root: Path, report: Any, valid: dict[str, Any], runs: dict[str, dict[str, Any]]) -> Path:
    folder = root / "s"
    (folder / "probe").mkdir(parents=True)
    (folder / "study.json").write_text(json.dumps({"title": "S", "runs": ["b-s0", "c-s0"]}))
    (folder / "probe" / "t.json").write_text(json.dumps(report))
    (folder / "valid.json").write_text(json.dumps(valid))
    for run, summary in runs.items():
        (folder / "runs" / run).mkdir(parents=True)
        (folder / "runs" / run / "summary.json").write_text(json.dumps(summary))
        (folder / "runs" / run / "metrics.jsonl").write_text('{"step": 1}\n')
    return folder


@pytest.fixture
def clips(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """A baseline's (mfcc) and two runs' stores of one task in the working directory, each its own
    features of the clips."""
    x, y = blobs(12, 3, 6, spread=2.0, seed=1)
    splits = [("train", "train", "valid", "test")[i % 4] for i in range(len(y))]
    paths = write_csv_task(tmp_path / "t", [f"k{v}" for v in y], splits)
    rng = np.random.default_rng(0)
    for n, s in (("mfcc", 3.0), ("b-s0", 1.0), ("c-s0", 0.5)):
        write_features(tmp_path / f"{n}.h5", paths, x + s * rng.standard_normal(x.shape))
    monkeypatch.chdir(tmp_path)
    return paths


def test_a_report_grown_by_a_join_equals_one_probe_over_all(tmp_path: Path, clips: list[str]) -> None:
    whole = _probe(tmp_path, ("mfcc", "b-s0", "c-s0"), (("b-s0", "mfcc"), ("c-s0", "mfcc")))
    here = _probe(tmp_path, ("mfcc", "b-s0"), (("b-s0", "mfcc"),))
    there = _probe(tmp_path, ("mfcc", "c-s0"), (("c-s0", "mfcc"),))
    into = _folder(tmp_path / "here", here, {"mfcc": {"t": 0.5}, "b-s0": {"t": 0.6}}, {"b-s0": {"steps": 4}})
    valid = {"mfcc": {"t": 0.5}, "c-s0": {"t": 0.7}, "mclx-base": {"t": 1}}  # the other's reference
    other = _folder(tmp_path / "there", there, valid, {"c-s0": {"steps": 4}})
    said = join_study(into, other)
    assert said[:3] == ["run c-s0", "probe t: c-s0", "valid: c-s0"] and "mclx-base" in said[3]
    joined = json.loads((into / "probe" / "t.json").read_text())

    def rows(report: Any, key: str) -> list[str]:
        return sorted(json.dumps(r, sort_keys=True) for r in report[key])

    for key in ("features", "results", "hyperparameters", "comparisons"):
        assert rows(joined, key) == rows(whole, key), key
    assert json.loads((into / "valid.json").read_text()) == {
        "mfcc": {"t": 0.5}, "b-s0": {"t": 0.6}, "c-s0": {"t": 0.7}
    }  # fmt: skip
    assert (into / "runs" / "c-s0" / "metrics.jsonl").exists()
    assert join_study(into, other) == ["valid: left out mclx-base (neither a run of this study nor here)"]


def test_evidence_that_disagrees_joins_nothing(
    tmp_path: Path, clips: list[str], monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    here = _probe(tmp_path, ("mfcc", "b-s0"), ())
    elsewhere = tmp_path / "elsewhere"  # the other machine: the baseline embedded differently there
    elsewhere.mkdir()
    x = np.ones((len(clips), 6)) + np.arange(len(clips))[:, None] % 5
    write_features(elsewhere / "mfcc.h5", clips, x)
    (elsewhere / "c-s0.h5").write_bytes((tmp_path / "c-s0.h5").read_bytes())
    monkeypatch.chdir(elsewhere)
    there = _probe(tmp_path, ("mfcc", "c-s0"), ())
    into = _folder(tmp_path / "here", here, {}, {})
    other = _folder(tmp_path / "there", there, {}, {"c-s0": {"steps": 4}})
    before = (into / "probe" / "t.json").read_text()
    with pytest.raises(JoinError, match="results of mfcc differ"):
        join_study(into, other)
    assert (into / "probe" / "t.json").read_text() == before and not (into / "runs" / "c-s0").exists()
    assert main(["join", "s", "--from", str(tmp_path / "there"), "--docs", str(tmp_path / "here")]) == 1
    assert "nothing joined" in capsys.readouterr().err
    (other / "runs" / "d-s0").mkdir()
    with pytest.raises(JoinError, match="d-s0: not a run"):
        join_study(into, other)
