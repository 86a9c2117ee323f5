"""The study runner's scheduler and its restore of runs from committed evidence."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

from studies import evidence
from studies.runner import Job, Layout, Scheduler
from studies.spec import Cell, Run, Study


def _job(key: str, tmp: Path, training: bool, ended: list[str]) -> Job:
    lock = tmp / key / ".lock" if training else None
    if lock:
        lock.parent.mkdir()
    return Job(key, [sys.executable, "-c", "pass"], lambda rc: ended.append(key), lock=lock)


def test_training_does_not_wait_behind_other_jobs(tmp_path: Path) -> None:
    started: list[str] = []
    ended: list[str] = []
    sched = Scheduler(2, lambda m: started.append(m.split(":")[0]) if "started" in m else None)
    for key in ("embed a", "embed b", "embed c"):
        sched.push(_job(key, tmp_path, False, ended))
    sched.push(_job("train x", tmp_path, True, ended))
    sched.push(_job("train y", tmp_path, True, ended))
    while sched.step():
        for job in sched.running:  # every started job ends before the next step
            assert job.proc is not None
            job.proc.wait()
    # A free slot goes to the first training job while none trains, else to the queue's head.
    assert started == ["train x", "embed a", "train y", "embed b", "embed c"]
    assert sorted(ended) == sorted(started)


def test_run_restored_from_evidence_is_not_trained_or_rewritten(tmp_path: Path) -> None:
    layout = Layout(tmp_path / "runs" / "s", tmp_path / "runs" / "stores", tmp_path / "docs" / "s", tmp_path)
    run = Run("s", Cell("c", tmp_path / "c.toml", "a cell", (0,)), 0)
    assert not evidence.restore_run(run, layout)  # nothing committed: nothing to restore
    kept = layout.docs / "runs" / run.name
    kept.mkdir(parents=True)
    for name in evidence.KEPT:
        (kept / name).write_bytes(name.encode())
    summary = {"steps": 400, "cpu_minutes": 12.5, "final_loss": 1.0}
    (kept / "summary.json").write_text(json.dumps(summary))
    (kept / "encoder.safetensors").rename(kept / "elsewhere")
    assert not evidence.restore_run(run, layout)  # a clone without the encoder: trained again
    (kept / "elsewhere").rename(kept / "encoder.safetensors")
    assert evidence.restore_run(run, layout)
    d = layout.run_dir(run)
    assert all((d / n).read_bytes() == n.encode() for n in evidence.KEPT)
    done = json.loads((d / "done.json").read_text())
    assert done["steps"] == 400 and done["cpu_s"] == 750.0
    assert not evidence.restore_run(run, layout)  # once only
    evidence.keep_run(None, run, layout)  # type: ignore[arg-type]  # restored: left as committed
    assert json.loads((kept / "summary.json").read_text()) == summary


def test_a_task_is_probed_only_once_all_its_stores_are_embedded(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import mclx.probe

    layout = Layout(tmp_path / "runs" / "s", tmp_path / "runs" / "stores", tmp_path / "docs" / "s", tmp_path)
    cells = (Cell("a", tmp_path / "a.toml", "a", (0,)), Cell("b", tmp_path / "b.toml", "b", (0,)))
    study = Study("s", "S", ("notes",), ("mfcc",), (), ("noise:0db",), ("a",), cells)
    for run in study.runs():  # both runs trained and kept
        (layout.docs / "runs" / run.name).mkdir(parents=True)
        (layout.docs / "runs" / run.name / "summary.json").write_text("{}")
        layout.run_dir(run).mkdir(parents=True)
        (layout.run_dir(run) / "encoder.safetensors").write_text("")
    probed: list[tuple[str, tuple[str, ...], str | None]] = []

    def fake_probe(s: mclx.probe.ProbeSettings) -> None:
        probed.append((Path(s.out or "").name, s.embeddings or s.models, s.corrupt))
        Path(s.out or "").write_text("{}")

    monkeypatch.setattr(mclx.probe, "run_probe", fake_probe)
    monkeypatch.setattr(evidence, "validation_accuracy", lambda store, directory: 0.5)
    tasks = {"notes": tmp_path / "notes"}

    def ready(task: str, *features: str) -> None:
        for f in features:
            store = layout.store(task, f)
            store.parent.mkdir(parents=True, exist_ok=True)
            store.write_text("")
            store.with_suffix(".done").write_text("")

    ready("notes", "mfcc", "a-s0")  # b-s0's store is still being embedded
    evidence.refresh(study, layout, tasks, seeds=1)
    # only the robustness probe (the robust cell a and MFCC, under --corrupt) could run
    assert probed == [("notes.json", ("a-s0.safetensors",), "noise:0db")]
    assert (layout.docs / "probe" / "notes.robust.json").exists()
    ready("notes", "b-s0")
    probed.clear()
    evidence.refresh(study, layout, tasks, seeds=1)
    assert probed == [("notes.json", ("mfcc.h5", "a-s0.h5", "b-s0.h5"), None)]  # robustness: done


def test_a_refresh_measures_only_what_changed_since_the_last(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import os

    import mclx.probe

    layout = Layout(tmp_path / "runs" / "s", tmp_path / "runs" / "stores", tmp_path / "docs" / "s", tmp_path)
    study = Study("s", "S", ("notes",), ("mfcc",), (), (), (), (Cell("a", tmp_path / "a.toml", "a", (0,)),))
    (layout.docs / "runs" / "a-s0").mkdir(parents=True)
    (layout.docs / "runs" / "a-s0" / "summary.json").write_text("{}")
    for f in ("mfcc", "a-s0", evidence.REFERENCE):
        store = layout.store("notes", f)
        store.parent.mkdir(parents=True, exist_ok=True)
        store.write_text("")
        store.with_suffix(".done").write_text("")
        os.utime(store.with_suffix(".done"), (1e9, 1e9))
    probed: list[str] = []
    measured: list[str] = []

    def probe(s: mclx.probe.ProbeSettings) -> None:  # writes what run_probe would about its inputs
        probed.append(Path(s.out).name)
        comparisons = [{"a": a, "b": b} for a, b in s.compare]
        features = [{"name": n} for n in s.embeddings]
        results = [{"metric": "accuracy", **({"per_clip": [1.0]} if s.per_clip else {})}]
        Path(s.out).write_text(
            json.dumps(
                {"seeds": s.seeds, "features": features, "comparisons": comparisons, "results": results}
            )
        )

    monkeypatch.setattr(mclx.probe, "run_probe", probe)
    monkeypatch.setattr(evidence, "validation_accuracy", lambda store, d: measured.append(store) or 0.5)
    tasks = {"notes": tmp_path / "notes"}
    evidence.refresh(study, layout, tasks, seeds=2)
    assert probed == ["notes.json"] and len(measured) == 3
    probed.clear()
    measured.clear()
    evidence.refresh(study, layout, tasks, seeds=2)  # nothing new: nothing measured again
    assert probed == [] and measured == []
    evidence.refresh(study, layout, tasks, seeds=3)  # other settings: probed again
    assert probed == ["notes.json"] and measured == []
    probed.clear()
    os.utime(layout.store("notes", "a-s0").with_suffix(".done"))  # a-s0 embedded again, just now
    evidence.refresh(study, layout, tasks, seeds=3)
    assert probed == ["notes.json"] and measured == [str(layout.store("notes", "a-s0"))]
    assert json.loads((layout.docs / "valid.json").read_text())["a-s0"] == {"notes": 0.5}
    report = layout.docs / "probe" / "notes.json"  # a report of an earlier edition: no per-clip scores
    old = json.loads(report.read_text())
    report.write_text(json.dumps({**old, "results": [{"metric": "accuracy"}]}))
    probed.clear()
    evidence.refresh(study, layout, tasks, seeds=3)
    assert probed == ["notes.json"]


def test_cheapest_first_orders_runs_by_segments_per_step(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    from studies.runner import segments_per_step
    from studies.spec import load_study

    monkeypatch.setenv("MCLX_DATA", str(tmp_path))
    runs = sorted(load_study("choi").runs(), key=segments_per_step)
    costs = {r.name: segments_per_step(r) for r in runs}
    assert costs["segment-adjacent-s0"] == 2 and costs["segment-track-s0"] == 5
    assert costs["track-random-s1"] == 8 and costs["segment-cpc-s0"] == 8  # CPC: 4 read + 4 predicted
    assert [r.name for r in runs][:4] == ["segment-adjacent-s0", "segment-same-s0", "segment-random-s0",
                                          "segment-intra-s0"]  # fmt: skip


def test_a_job_asked_for_twice_runs_once_and_answers_both(tmp_path: Path) -> None:
    started: list[str] = []
    codes: list[tuple[str, int]] = []
    sched = Scheduler(1, lambda m: started.append(m.split(":")[0]) if "started" in m else None)
    for caller in ("first", "second"):
        job = Job("embed a", [sys.executable, "-c", "raise SystemExit(3)"],
                  lambda rc, who=caller: codes.append((who, rc)))  # fmt: skip
        sched.push(job)
    while sched.step():
        for job in sched.running:
            assert job.proc is not None
            job.proc.wait()
    assert started == ["embed a"]
    assert codes == [("first", 3), ("second", 3)]  # each caller's callback, in order, with the code
