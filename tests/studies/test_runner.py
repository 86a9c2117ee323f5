"""The study runner end to end at a tiny budget (`--smoke`): every cell of both studies trains,
is probed against the baselines, and the tables rebuild from the evidence byte for byte."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]


def studies(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    return subprocess.run([sys.executable, "-m", "studies", *args], cwd=cwd, env=env, text=True,
                          capture_output=True, timeout=1500)  # fmt: skip


@pytest.mark.slow
def test_smoke_runs_both_studies_and_tables_rebuild(mini_corpus: Path, tmp_path: Path) -> None:
    runs, docs = tmp_path / "runs", tmp_path / "docs" / "studies"
    flags = ["--smoke", "--runs", str(runs), "--docs", str(docs), "--data", str(mini_corpus)]
    done = studies("run", "choi", "semisupcon", *flags, cwd=tmp_path)
    assert done.returncode == 0, done.stderr[-3000:]
    for study, cells in (("choi", 10), ("semisupcon", 13)):
        described = json.loads((docs / study / "study.json").read_text())
        assert len(described["runs"]) == cells + 2  # two cells with a second training seed
        for run in described["runs"]:
            summary = json.loads((docs / study / "runs" / run / "summary.json").read_text())
            assert summary["steps"] == 3 and summary["examples"] == 12
            assert summary["pool_tracks"] == 6 and len(summary["pool_manifest_sha256"]) == 64
            assert summary["train_wall_minutes"] >= 0 and summary["cpu_minutes"] >= 0
            assert (docs / study / "runs" / run / "encoder.safetensors").stat().st_size > 0
        for task in described["tasks"]:
            report = json.loads((docs / study / "probe" / f"{task}.json").read_text())
            names = {f["name"].removesuffix(".h5") for f in report["features"]}
            assert names == {*described["runs"], *described["baselines"]}
    semi = docs / "semisupcon" / "probe"
    assert json.loads((semi / "brightness.json").read_text())["kind"] == "regression"
    robust = json.loads((semi / "gamesrc.robust.json").read_text())
    assert {f["name"] for f in robust["features"]} == {
        "ssl-s0.safetensors",
        "semi-100-s0.safetensors",
        "mfcc",
    }
    assert {r.get("corruption") for r in robust["results"]} >= {None, "noise:0db", "reverb:1"}
    text = (tmp_path / "docs" / "studies.md").read_text()
    assert "## Choi et al." in text and "## SemiSupCon" in text and "Robustness" in text
    # The run table says what each run drew its audio from, read from its resolved config.
    costs = [part.split("###")[0] for part in text.split("### Runs and their cost")[1:]]
    rows = {line.split(" | ")[0].lstrip("| "): line.rstrip(" |").split(" | ")[-1]
            for table in costs for line in table.splitlines() if line.startswith("| ")}  # fmt: skip
    assert rows["supervised-s0"] == "gamesrc train clips only"
    assert rows["ssl-s0"].startswith("pool 6 (") and rows["ssl-s0"].endswith(") + gamesrc train clips")
    assert rows["segment-adjacent-s0"].startswith("pool 6 (") and "+" not in rows["segment-adjacent-s0"]
    for study in ("choi", "semisupcon"):  # each table drawn (matplotlib is in the test install)
        assert (docs / study / "figure.png").read_bytes().startswith(b"\x89PNG")
        assert f"](studies/{study}/figure.png)" in text
    # The tables come from the evidence alone, byte for byte.
    (tmp_path / "docs" / "studies.md").unlink()
    again = studies("run", "--tables-only", "--docs", str(docs), cwd=tmp_path)
    assert again.returncode == 0, again.stderr
    assert (tmp_path / "docs" / "studies.md").read_text() == text
    # A second run finds every run trained and every store embedded: it only probes again. The
    # choi run directories are gone (another machine): those runs come back from the evidence.
    shutil.rmtree(runs / "choi")
    rerun = studies("run", "choi", "semisupcon", *flags, cwd=tmp_path)
    assert rerun.returncode == 0, rerun.stderr[-3000:]
    assert "train: started" not in rerun.stderr and "embed" not in rerun.stderr
    assert (tmp_path / "docs" / "studies.md").read_text() == text
