"""Probes on tiny synthetic tasks whose answers are known."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import torch

from mclx.errors import UsageError
from mclx.probe import heads, run_probe
from mclx.probe.tasks import load_task

from ..conftest import tone
from ..test_embed import run_cli


def gtzan(
    root: Path, per_class: int = 12, classes: dict[str, float] | None = None, lists: bool = True
) -> Path:
    """Classes of tones separated by pitch, with split lists."""
    classes = classes or {"low": 150.0, "mid": 600.0, "high": 2400.0}
    rows: dict[str, list[str]] = {"train": [], "valid": [], "test": []}
    for name, freq in classes.items():
        for i in range(per_class):
            path = root / name / f"{i:02d}.wav"
            path.parent.mkdir(parents=True, exist_ok=True)
            sf.write(path, tone(1.0, 16000, freq * (1 + 0.03 * i), seed=i)[:, 0], 16000)
            split = ("train", "train", "valid", "test")[i % 4]  # interleaved: no pitch extrapolation
            rows[split].append(f"{name}/{i:02d}.wav")
    if lists:
        for split, names in rows.items():
            (root / f"{split}.txt").write_text("\n".join(names) + "\n")
    return root


def test_pitch_classes_are_separable_with_the_linear_head(tmp_path: Path) -> None:
    data = gtzan(tmp_path / "pitch")
    report = run_probe("pitch", str(data), None, None, None, "mfcc", "linear", 2, str(tmp_path / "r.json"),
                       None, quiet=True)  # fmt: skip
    acc = next(r for r in report["results"] if r["metric"] == "accuracy")
    assert acc["mean"] >= 0.95
    saved = json.loads((tmp_path / "r.json").read_text())
    assert saved["task"] == "pitch" and saved["layout"] == "gtzan"
    assert saved["splits"] == {"train": 18, "valid": 9, "test": 9}
    for r in saved["results"]:
        assert {"features", "head", "metric", "mean", "ci95", "per_seed"} <= r.keys()
    assert (tmp_path / "r.mfcc.h5").exists()  # the features are cached next to the results


def random_split(n: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    idx = np.random.default_rng(0).permutation(n)
    return idx[: n // 2], idx[n // 2 : 3 * n // 4], idx[3 * n // 4 :]


def fit_eval(head: str, kind: str, x: np.ndarray, y: np.ndarray, out: int) -> np.ndarray:
    tr, va, te = random_split(len(x))
    xtr, xva, xte = heads.standardise(x[tr], x[va], x[te])
    yt = torch.long if kind == "single" else torch.float32
    model = heads.fit(
        head, kind,
        heads.Split(torch.tensor(xtr, dtype=torch.float32), torch.tensor(y[tr], dtype=yt)),
        heads.Split(torch.tensor(xva, dtype=torch.float32), torch.tensor(y[va], dtype=yt)),
        out, seed=0,
    )  # fmt: skip
    return heads.predict(model, torch.tensor(xte, dtype=torch.float32), kind), y[te]


def test_random_labels_stay_near_chance() -> None:
    rng = np.random.default_rng(1)
    x, y = rng.standard_normal((600, 16)), rng.integers(0, 4, 600)
    for head in ("linear", "mlp"):
        p, yte = fit_eval(head, "single", x, y, 4)
        assert abs((p.argmax(1) == yte).mean() - 0.25) < 0.12


def test_linear_regression_target_is_recovered() -> None:
    rng = np.random.default_rng(2)
    x = rng.standard_normal((400, 8))
    y = x @ rng.standard_normal(8) + 0.05 * rng.standard_normal(400)
    p, yte = fit_eval("linear", "regression", x, y, 1)
    r2 = 1 - ((yte - p) ** 2).sum() / ((yte - yte.mean()) ** 2).sum()
    assert r2 >= 0.95


def test_csv_layouts_single_multi_regression_and_kfold(tmp_path: Path) -> None:
    root = tmp_path / "t"
    (root / "a").mkdir(parents=True)
    for i in range(10):
        sf.write(root / "a" / f"{i}.wav", tone(0.5, 16000, 200 + 100 * i)[:, 0], 16000)
    (root / "labels.csv").write_text(
        "path,label,split\n" + "".join(f"a/{i}.wav,{i * 0.5},\n" for i in range(10))
    )
    assert load_task("t", str(root), None).kind == "regression"
    (root / "labels.csv").write_text("path,label\n" + "".join(f"a/{i}.wav,x;y{i % 2}\n" for i in range(10)))
    task = load_task("t", str(root), None)
    assert task.kind == "multi" and task.classes == ["x", "y0", "y1"]
    assert task.targets().shape == (10, 3)
    (root / "labels.csv").write_text("path,label\n" + "".join(f"a/{i}.wav,c{i % 2}\n" for i in range(10)))
    report = run_probe("t", str(root), None, None, None, "mfcc", "linear", 2, None, None, quiet=True)
    assert "5-fold" in report["evaluation"] and report["splits"]["test"] == 2


def test_bad_tasks_are_clear_errors(tmp_path: Path) -> None:
    data = gtzan(tmp_path / "g", per_class=4, lists=False)
    (data / "empty").mkdir()
    with pytest.raises(UsageError, match="without audio: empty"):
        load_task("g", str(data), None)
    (data / "empty").rmdir()
    with pytest.raises(UsageError, match="too few"):
        run_probe("g", str(data), None, None, None, "mfcc", "linear", 1, None, None, quiet=True)
    (data / "labels.csv").write_text("path,label,split\nnope.wav,a,train\n")
    with pytest.raises(UsageError, match="do not exist"):
        load_task("g", str(data), "csv")


def test_a_task_without_data_says_where_it_looked(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("MCLX_DATA", raising=False)
    with pytest.raises(UsageError, match="MCLX_DATA is not set"):
        load_task("nothing", None, None)


def test_unseen_test_classes_are_a_warning_in_the_output(tmp_path: Path) -> None:
    data = gtzan(tmp_path / "u", per_class=8)
    lines = (data / "train.txt").read_text().splitlines()
    (data / "train.txt").write_text("\n".join(x for x in lines if not x.startswith("high/")) + "\n")
    valid = (data / "valid.txt").read_text().splitlines()
    (data / "valid.txt").write_text("\n".join(x for x in valid if not x.startswith("high/")) + "\n")
    report = run_probe("u", str(data), None, None, None, "mfcc", "linear", 1, None, None, quiet=True)
    assert any("never seen in training: high" in w for w in report["warnings"])


def test_cli_probe_writes_json_and_plot(tmp_path: Path) -> None:
    pytest.importorskip("matplotlib")
    data = gtzan(tmp_path / "p", per_class=8)
    out = tmp_path / "res.json"
    result = run_cli("probe", "--task", "p", "--data", str(data), "--baseline", "mfcc", "--seeds", "2",
                     "--out", str(out), "--plot", str(tmp_path / "res.png"), "-q")  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert json.loads(out.read_text())["results"] and (tmp_path / "res.png").stat().st_size > 1000
