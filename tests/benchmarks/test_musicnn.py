"""`benchmarks.musicnn` without TensorFlow: a stand-in model (fake_musicnn.py) in place of musicnn,
the script run as users run it (python -m), so the tests import nothing from benchmarks/."""

from __future__ import annotations

import csv
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import torch

from mclx.config import from_dict
from mclx.probe.features import from_store
from mclx.probe.tasks import load_task
from mclx.store import read_store
from mclx.train.labels import build_labels, check_labels_match, read_label_rows
from mclx.train.losses import similarity_target

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


def music_pool(data: Path, seconds: tuple[float, ...], broken: bool = False) -> list[str]:
    """``data/music``: tones of these lengths and a manifest (relative paths, as the corpus's);
    their absolute paths, sorted (the order mclx train lists them in)."""
    root = data / "music"
    names = [f"g/{i:02d}.wav" for i in range(len(seconds))] + (["g/broken.wav"] if broken else [])
    for n, name in enumerate(names):
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        length = seconds[n] if n < len(seconds) else 4.0
        sf.write(root / name, tone(length, 16000, 300.0 * (1 + n), seed=n)[:, 0], 16000)
    (root / "manifest.csv").write_text("path,game\n" + "".join(f"{name},g\n" for name in names))
    return sorted(str(root / name) for name in names)


def teacher_rows(csv_path: Path) -> dict[str, str]:
    with open(csv_path, newline="") as f:
        rows = list(csv.DictReader(f))
    assert all(r["split"] == "train" for r in rows)
    return {r["path"]: r["label"] for r in rows}


def test_teacher_labels_name_every_pool_track_and_train_reads_a_similarity_target(tmp_path: Path) -> None:
    # 10, 13 and 19 s: 3, 4 and 6 patches, so penultimate.mean is 1.0, 1.5 and 2.5 in both
    # channels over every patch (the first patch alone would be 0 for all three).
    paths = music_pool(tmp_path / "data", (10.0, 13.0, 19.0), broken=True)
    target = tmp_path / "labels" / "teacher.csv"
    proc = run_script(tmp_path, "--teacher-labels", str(target), "--layer", "MTT_musicnn.penultimate.mean")
    assert proc.returncode == 1, proc.stderr[-3000:]  # the broken track failed, and was recorded
    rows = teacher_rows(target)
    assert list(rows) == paths  # every track of the manifest, as mclx train lists them
    assert rows[paths[-1]] == ""  # g/broken.wav: blank, an unlabelled track
    written = np.array([[float(x) for x in rows[p].split(";")] for p in paths[:3]])
    means = np.array([1.0, 1.5, 2.5])
    z = (means - means.mean()) / means.std()  # standardised over the pool's embedded tracks
    np.testing.assert_allclose(written, np.stack([z, z], axis=1), rtol=1e-6)

    config = from_dict({"data": {"audio": [str(tmp_path / "data" / "music" / "manifest.csv")],
                                 "labels": str(target)},
                        "loss": {"kind": "semisupcon", "target": "similarity"}})  # fmt: skip
    label_rows = read_label_rows(config, target)
    check_labels_match(config, label_rows, paths)
    labels = build_labels(config, label_rows, paths, "similarity")
    assert labels.values.shape == (4, 2) and labels.labelled == 3
    np.testing.assert_array_equal(labels.values[:3], written.astype(np.float32))  # 9 digits: exact
    assert labels.labelled_tracks().tolist() == [0, 1, 2]
    sim = similarity_target(torch.from_numpy(labels.values))
    assert sim.shape == (4, 4)
    # z is (-1.07, -0.27, 1.34) in both channels: the cosine is 1 between tracks on the same side
    # of the pool's mean and -1, clipped to 0, across it; the unlabelled track is 0 to every track
    expected = [[1, 1, 0, 0], [1, 1, 0, 0], [0, 0, 1, 0], [0, 0, 0, 0]]
    np.testing.assert_allclose(sim.numpy(), expected, atol=1e-6)


@pytest.mark.slow  # two runs of the script, each importing torch
def test_teacher_labels_pool_every_patch_and_a_rerun_embeds_nothing_new(tmp_path: Path) -> None:
    paths = music_pool(tmp_path / "data", (10.0, 13.0, 4.0, 7.0))
    target = tmp_path / "teacher.csv"
    flags = ("--teacher-labels", str(target), "--layer", "MTT_musicnn.taggram.max", "--no-standardise")
    first = run_script(tmp_path, *flags)
    assert first.returncode == 0, first.stderr[-3000:]
    rows = teacher_rows(target)
    assert list(rows) == paths
    # taggram.max: the last patch's index, in each of the 4 channels (3, 4, 1 and 2 patches)
    for path, value in zip(paths, (2.0, 3.0, 0.0, 1.0), strict=True):
        assert rows[path] == ";".join([f"{value:.9g}"] * 4)
    calls = tmp_path / "calls.txt"
    assert sorted(calls.read_text().splitlines()) == paths

    calls.unlink()
    second = run_script(tmp_path, *flags)
    assert second.returncode == 0, second.stderr[-3000:]
    assert not calls.exists()  # every track came from the cache
    assert teacher_rows(target) == rows


def test_a_bad_teacher_layer_is_one_line_and_exit_2(tmp_path: Path) -> None:
    music_pool(tmp_path / "data", (4.0,))
    proc = run_script(
        tmp_path, "--teacher-labels", str(tmp_path / "t.csv"), "--layer", "MTT_musicnn.bogus.mean"
    )
    assert proc.returncode == 2, proc.stderr[-3000:]
    assert proc.stderr.strip().splitlines()[-1].startswith("error: --layer MTT_musicnn.bogus.mean: ")
    assert not (tmp_path / "t.csv").exists()
