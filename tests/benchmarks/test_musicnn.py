"""`benchmarks.musicnn` without TensorFlow: a stand-in model (fake_musicnn.py) in place of musicnn,
the script run as users run it (python -m), so the tests import nothing from benchmarks/."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from mclx.probe.features import from_store
from mclx.probe.tasks import load_task
from mclx.store import read_store

from ..audio_fixtures import tone

ROOT = Path(__file__).parents[2]
STORES = [f"MTT_musicnn.{layer}.{pool}.h5" for layer in ("taggram", "timbral", "penultimate")
          for pool in ("mean", "max")]  # fmt: skip


def pitch_task(data: Path, seconds: float, per_class: int = 4, broken: str = "") -> Path:
    """``data/t``: two classes of tones (gtzan layout, split lists); a clip named ``broken`` too."""
    root = data / "t"
    lists: dict[str, list[str]] = {"train": [], "valid": [], "test": []}
    names = [(label, f"{i:02d}.wav") for label in ("low", "high") for i in range(per_class)]
    names += [("low", broken)] if broken else []
    for n, (label, name) in enumerate(names):
        path = root / label / name
        path.parent.mkdir(parents=True, exist_ok=True)
        freq = (200.0 if label == "low" else 1600.0) * (1 + 0.03 * n)
        sf.write(path, tone(seconds, 16000, freq, seed=n)[:, 0], 16000)
        lists[("train", "train", "valid", "test")[n % 4]].append(f"{label}/{name}")
    for split, listed in lists.items():
        (root / f"{split}.txt").write_text("\n".join(listed) + "\n")
    return root


def fake_venv(where: Path) -> Path:
    """A folder whose bin/python runs this interpreter: the script then makes no environment."""
    python = where / "bin" / "python"
    python.parent.mkdir(parents=True)
    python.write_text(f'#!/bin/sh\nexec {sys.executable} "$@"\n')
    python.chmod(0o755)
    return where


def run_script(tmp_path: Path, *flags: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHONPATH": str(ROOT), "MCLX_DATA": str(tmp_path / "data"),
           "FAKE_MUSICNN_CALLS": str(tmp_path / "calls.txt")}  # fmt: skip
    venv = tmp_path / "venv" if (tmp_path / "venv").exists() else fake_venv(tmp_path / "venv")
    return subprocess.run(  # a later --venv in flags wins
        [sys.executable, "-m", "benchmarks.musicnn", "--venv", str(venv), "--out", str(tmp_path / "out"),
         "--tasks", "t", "--models", "MTT_musicnn", "--embedder", "tests.benchmarks.fake_musicnn:layers",
         *flags],
        capture_output=True, text=True, env=env, cwd=ROOT, timeout=600,
    )  # fmt: skip


def test_every_patch_is_pooled_into_stores_the_probe_reads(tmp_path: Path) -> None:
    task = pitch_task(tmp_path / "data", seconds=10.0)  # 3 patches of 3 s: p = 0, 1, 2
    proc = run_script(tmp_path, "--limit", "100")
    assert proc.returncode == 0, proc.stderr[-3000:]
    folder = tmp_path / "out" / "stores" / "t"
    assert sorted(p.name for p in folder.iterdir()) == sorted(STORES)
    t = load_task("t", str(task), None)
    expected = {  # over every patch (and every frame): not the first patch alone
        "taggram.mean": np.full(4, 1.0), "taggram.max": np.full(4, 2.0),
        "penultimate.mean": np.full(2, 1.0), "penultimate.max": np.full(2, 2.0),
        "timbral.mean": np.full(3, 12.0), "timbral.max": np.full(3, 24.0),
    }  # fmt: skip
    for feature, value in expected.items():
        store = str(folder / f"MTT_musicnn.{feature}.h5")
        x = from_store(store, feature, "embeddings", t).x
        assert x.shape == (len(t.paths), len(value))
        np.testing.assert_allclose(x, np.tile(value, (len(t.paths), 1)))
    data = read_store(str(folder / "MTT_musicnn.taggram.mean.h5"))
    assert data.attrs["level"] == "global" and data.attrs["format"] == "mclx-embeddings"
    assert [r.duration_s for r in data.records] == pytest.approx([10.0] * len(t.paths))


@pytest.mark.slow  # two runs of the script, each importing torch: 16 s on a busy 2-core machine
def test_a_rerun_embeds_only_what_failed_and_failures_are_recorded(tmp_path: Path) -> None:
    pitch_task(tmp_path / "data", seconds=4.0, broken="broken.wav")
    first = run_script(tmp_path, "--limit", "100")
    assert first.returncode == 1, first.stderr[-3000:]
    calls = tmp_path / "calls.txt"
    assert len(calls.read_text().splitlines()) == 9
    data = read_store(str(tmp_path / "out" / "stores" / "t" / "MTT_musicnn.penultimate.max.h5"))
    bad = [r for r in data.records if r.status != "ok"]
    assert [os.path.basename(r.path) for r in bad] == ["broken.wav"]
    assert "cannot decode this clip" in bad[0].error
    assert np.isnan(data.global_matrix()[[r.status != "ok" for r in data.records]]).all()

    calls.unlink()
    second = run_script(tmp_path, "--limit", "100")
    assert second.returncode == 1, second.stderr[-3000:]
    assert [os.path.basename(p) for p in calls.read_text().splitlines()] == ["broken.wav"]
    again = read_store(str(tmp_path / "out" / "stores" / "t" / "MTT_musicnn.penultimate.max.h5"))
    np.testing.assert_array_equal(again.global_matrix(), data.global_matrix())


def test_a_missing_environment_is_made_with_the_commands_it_prints(tmp_path: Path) -> None:
    pitch_task(tmp_path / "data", seconds=4.0)
    python = tmp_path / "python3.11"  # stands for the Python that makes the environment: it fails
    python.write_text('#!/bin/sh\necho "$@" > "$(dirname "$0")/made.txt"\nexit 3\n')
    python.chmod(0o755)
    proc = run_script(tmp_path, "--venv", str(tmp_path / "mn"), "--venv-python", str(python))
    assert proc.returncode == 2, proc.stderr[-3000:]
    assert (tmp_path / "made.txt").read_text().split() == ["-m", "venv", str(tmp_path / "mn")]
    assert f"+ {python} -m venv {tmp_path / 'mn'}" in proc.stderr
    assert proc.stderr.strip().splitlines()[-1].startswith(f"error: --venv {tmp_path / 'mn'}: ")


@pytest.mark.slow
def test_each_store_is_probed_and_compared_with_mclx_base(tmp_path: Path) -> None:
    pitch_task(tmp_path / "data", seconds=4.0)
    proc = run_script(tmp_path, "--seeds", "2")
    assert proc.returncode == 0, proc.stderr[-3000:]
    report = json.loads((tmp_path / "out" / "t.json").read_text())
    stores = [str(tmp_path / "out" / "stores" / "t" / name) for name in STORES]
    scored = {r["features"] for r in report["results"] if r["head"] == "linear" and r["metric"] == "accuracy"}
    assert scored == {*stores, "mclx-base", "mfcc"}
    paired = {c["a"] for c in report["comparisons"] if c["b"] == "mclx-base" and c["metric"] == "accuracy"}
    assert paired == set(stores)
    table = (tmp_path / "out" / "table.md").read_text()
    assert table in proc.stdout
    summary = next(line for line in table.splitlines() if line.startswith("| t | accuracy |"))
    assert "MTT_musicnn." in summary
    valid = json.loads((tmp_path / "out" / "valid.json").read_text())["t"]
    assert set(valid) == set(stores)  # every layer scored on the valid split
    chosen = max(stores, key=lambda s: valid[s])  # the best is chosen there, not on test
    assert Path(chosen).name.removesuffix(".h5") in summary
