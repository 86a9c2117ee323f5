"""`run_probe` end to end: tones through the embed pipeline, synthetic stores, the JSON, errors."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import soundfile as sf

import mclx.embed.run
from mclx.errors import UsageError
from mclx.probe import ProbeSettings, run_probe

from ..audio_fixtures import tone
from .helpers import blobs, write_csv_task, write_features

CONTRACT_KEYS = {"task", "layout", "data", "splits", "results"}
RESULT_KEYS = {"features", "head", "metric", "mean", "ci95", "per_seed"}


def pitch_task(root: Path, per_class: int = 8) -> Path:
    """Three classes of tones separated by pitch (interleaved splits: no pitch extrapolation)."""
    lists: dict[str, list[str]] = {"train": [], "valid": [], "test": []}
    for name, freq in {"low": 150.0, "mid": 600.0, "high": 2400.0}.items():
        for i in range(per_class):
            path = root / name / f"{i:02d}.wav"
            path.parent.mkdir(parents=True, exist_ok=True)
            sf.write(path, tone(0.5, 16000, freq * (1 + 0.03 * i), seed=i)[:, 0], 16000)
            lists[("train", "train", "valid", "test")[i % 4]].append(f"{name}/{i:02d}.wav")
    for split, names in lists.items():
        (root / f"{split}.txt").write_text("\n".join(names) + "\n")
    return root


def result(report: dict[str, Any], metric: str, head: str = "linear", features: str | None = None) -> dict:
    return next(
        r for r in report["results"]
        if r["metric"] == metric and r["head"] == head and (features is None or r["features"] == features)
    )  # fmt: skip


def probe_store(
    data: Path, store: str, head: str, seeds: int, layout: str | None = None, out: str | None = None
) -> dict[str, Any]:
    return run_probe(
        ProbeSettings(
            "t", str(data), layout, embeddings=(store,), head=head, seeds=seeds, out=out, quiet=True
        )
    )


def test_pitch_classes_through_the_embed_pipeline(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    data = pitch_task(tmp_path / "pitch")
    out = tmp_path / "res" / "pitch.json"
    out.parent.mkdir()
    summaries = []
    real_embed = mclx.embed.run.embed

    def counting_embed(*args: Any, **kwargs: Any) -> Any:
        summaries.append(real_embed(*args, **kwargs))
        return summaries[-1]

    monkeypatch.setattr(mclx.embed.run, "embed", counting_embed)
    # a cache left by another model (a checkpoint retrained in place) is replaced, not an error
    write_features(out.parent / "pitch.mfcc.h5", ["elsewhere.wav"], np.zeros((1, 80)))
    report = run_probe(
        ProbeSettings("pitch", str(data), baseline="mfcc", head="linear", seeds=2, out=str(out), quiet=True)
    )
    assert result(report, "accuracy")["mean"] >= 0.95
    saved = json.loads(out.read_text())
    assert saved == report and saved.keys() >= CONTRACT_KEYS
    assert saved["splits"] == {"train": 12, "valid": 6, "test": 6} and saved["layout"] == "gtzan"
    assert all(r.keys() >= RESULT_KEYS and len(r["per_seed"]) in (1, 2) for r in saved["results"])
    assert "mean of the mfcc embeddings" in saved["aggregation"]
    assert (out.parent / "pitch.mfcc.h5").exists()  # cached next to the results ...
    run_probe(
        ProbeSettings("pitch", str(data), baseline="mfcc", head="linear", seeds=1, out=str(out), quiet=True)
    )
    assert (summaries[0].skipped, summaries[1].skipped, summaries[1].audio_s) == (0, 24, 0.0)  # ... reused


def test_a_store_of_random_features_stays_near_chance_with_kfold(tmp_path: Path) -> None:
    labels = [f"c{i % 3}" for i in range(150)]
    clips = write_csv_task(tmp_path / "t", labels)
    x = np.random.default_rng(0).standard_normal((150, 8))
    store = write_features(tmp_path / "x.h5", clips, x)
    report = probe_store(tmp_path / "t", store, "both", 5)
    for head in ("linear", "mlp"):
        acc = result(report, "accuracy", head)
        assert abs(acc["mean"] - 1 / 3) < 0.12 and len(acc["per_seed"]) == 5
        assert acc["ci95"][0] < acc["mean"] < acc["ci95"][1]
    assert [f["test_fold"] for f in report["folds"]] == [0, 1, 2, 3, 4]
    assert "5-fold" in report["evaluation"] and report["features"][0]["name"] == store
    assert 0 <= result(report, "map_at_10", "cosine")["mean"] < 0.5  # retrieval over the same features


def test_separable_store_features_and_failed_clips(tmp_path: Path) -> None:
    x, y = blobs(12, 3, 6, spread=0.5, seed=1)
    splits = [("train", "train", "valid", "test")[i % 4] for i in range(len(y))]
    clips = write_csv_task(tmp_path / "t", [f"k{v}" for v in y], splits)
    store = write_features(tmp_path / "x.h5", clips, x, failed=[0, 5])
    report = probe_store(tmp_path / "t", store, "linear", 2, layout="csv")
    assert result(report, "accuracy")["mean"] >= 0.95 and result(report, "macro_f1")["mean"] >= 0.95
    assert any("2 clips have no features" in w for w in report["warnings"])
    assert sum(report["splits"].values()) == len(y) - 2
    assert len(report["failed"]) == 2  # so the command exits 1, as when it embeds the clips itself
    cos = result(report, "map_at_10", "cosine")
    assert cos["per_seed"] == [cos["mean"]] * 2  # given splits, nothing trained: the same for every seed
    assert cos["ci95"][0] < cos["mean"] <= cos["ci95"][1]  # yet the finite test set leaves uncertainty


def test_regression_target_linear_in_the_features(tmp_path: Path) -> None:
    rng = np.random.default_rng(2)
    x = rng.standard_normal((120, 6))
    target = 20.0 + 3.0 * (x @ rng.standard_normal(6))
    clips = write_csv_task(tmp_path / "t", [f"{v:.6f}" for v in target])
    store = write_features(tmp_path / "x.h5", clips, x)
    report = probe_store(tmp_path / "t", store, "linear", 2)
    assert report["kind"] == "regression" and result(report, "r2")["mean"] >= 0.95
    assert {r["metric"] for r in report["results"]} == {"r2"}  # no retrieval for numbers


def test_multilabel_task_reports_macro_auc(tmp_path: Path) -> None:
    rng = np.random.default_rng(3)
    x = rng.standard_normal((200, 6))
    tags = [";".join(t for t, on in zip("abc", row, strict=True) if on) or "" for row in x[:, :3] > 0.3]
    clips = write_csv_task(tmp_path / "t", tags)
    store = write_features(tmp_path / "x.h5", clips, x)
    report = probe_store(tmp_path / "t", store, "linear", 2)
    assert report["kind"] == "multi" and report["classes"] == ["a", "b", "c"]
    assert result(report, "roc_auc")["mean"] >= 0.95 and result(report, "pr_auc")["mean"] >= 0.9
    assert result(report, "precision_at_10", "cosine")["mean"] > 0.5


def test_classes_unseen_in_training_and_a_single_seed_are_warned_and_json_stays_valid(
    tmp_path: Path,
) -> None:
    x, y = blobs(8, 3, 4, spread=0.5, seed=4)
    # class k2 only in valid (4 clips) and test (4 clips): no head can ever predict it
    splits = [("valid", "test")[i % 2] if v == 2 else ("train", "train", "valid", "test")[i % 4]
              for i, v in enumerate(y)]  # fmt: skip
    clips = write_csv_task(tmp_path / "t", [f"k{v}" for v in y], splits)
    store = write_features(tmp_path / "x.h5", clips, x)
    out = tmp_path / "r.json"
    report = probe_store(tmp_path / "t", store, "linear", 1, out=str(out))
    assert any("test classes never seen in training: k2" in w for w in report["warnings"])
    assert any("valid classes never seen in training: k2" in w for w in report["warnings"])
    acc = result(report, "accuracy")
    assert acc["ci95"][0] < acc["mean"] < acc["ci95"][1]  # one seed: the test clips still give an interval
    assert acc["mean"] == 0.5  # k0 and k1 separable: right; k2's 4 test clips: always wrong
    json.loads(out.read_text(), parse_constant=lambda c: pytest.fail(f"{c} in the JSON"))


def test_the_store_must_hold_every_clip(tmp_path: Path) -> None:
    clips = write_csv_task(tmp_path / "t", ["a", "b"] * 6)
    store = write_features(tmp_path / "x.h5", clips[:-1], np.zeros((11, 3)))
    with pytest.raises(UsageError, match="1 of the task's 12 clips are not in it"):
        run_probe(
            ProbeSettings("t", str(tmp_path / "t"), embeddings=(store,), head="linear", seeds=1, quiet=True)
        )


def test_a_missing_split_is_refused_before_any_clip_is_embedded(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import mclx.probe.run

    write_csv_task(tmp_path / "t", ["a", "b"] * 4, ["train", "test"] * 4)  # no valid split
    monkeypatch.setattr(mclx.probe.run, "_embedded", lambda *a: pytest.fail("embedded before the check"))
    with pytest.raises(UsageError, match="the valid split has no clips"):
        run_probe(
            ProbeSettings("t", str(tmp_path / "t"), models=("mfcc",), head="linear", seeds=1, quiet=True)
        )


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"head": "svm"}, "--head svm"),
        ({"seeds": 0}, "--seeds 0"),
        ({"baseline": "chroma"}, "the only baseline is mfcc"),
        ({"embeddings": ("missing.h5",)}, "--embeddings missing.h5: no such file"),
        ({"out": "no/dir/r.json"}, "--out output no/dir/r.json: directory no/dir does not exist"),
        ({"device": "tpu"}, "--device tpu"),
    ],
)
def test_bad_flags_fail_before_any_work(tmp_path: Path, change: dict[str, Any], message: str) -> None:
    clips = write_csv_task(tmp_path / "t", ["a", "b"] * 6)
    store = write_features(tmp_path / "x.h5", clips, np.zeros((12, 2)))
    args: dict[str, Any] = dict(
        task="t", data=str(tmp_path / "t"), embeddings=(store,), head="linear", seeds=2
    )
    with pytest.raises(UsageError, match=message.replace("(", r"\(")):
        run_probe(ProbeSettings(**{**args, **change}, quiet=True))


def test_a_misspelt_compare_name_is_refused_before_any_clip_is_embedded(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import mclx.probe.run

    write_csv_task(tmp_path / "t", ["a", "b"] * 6)
    monkeypatch.setattr(mclx.probe.run, "_embedded", lambda *a: pytest.fail("embedded before the check"))
    monkeypatch.setattr(
        mclx.probe.run, "load_task", lambda *a, **k: pytest.fail("task read before the check")
    )
    settings = ProbeSettings("t", str(tmp_path / "t"), baseline="mfcc", compare=(("mfc", "mfcc"),))
    with pytest.raises(UsageError, match=r"--compare mfc,mfcc: mfc is not one of the feature sets \(mfcc\)"):
        run_probe(settings)


def test_plot_without_matplotlib_names_the_extra(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "matplotlib", None)  # import matplotlib -> ImportError
    with pytest.raises(UsageError, match=r"--plot needs matplotlib: pip install 'mclx\[plot\]'"):
        run_probe(
            ProbeSettings(
                "t", str(tmp_path), baseline="mfcc", head="linear", seeds=1, plot=str(tmp_path / "p.png")
            )
        )


def run_in_process(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    """`mclx ARGS` through the console entry point, in this process (no interpreter start-up)."""
    from mclx.cli import main

    argv, sys.argv = sys.argv, ["mclx", *args]
    try:
        main()
        code = 0
    except SystemExit as exc:
        code = exc.code if isinstance(exc.code, int) else int(exc.code is not None)
    finally:
        sys.argv = argv
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def test_cli_prints_the_table_and_writes_json_and_plot(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    pytest.importorskip("matplotlib")
    x, y = blobs(10, 3, 4, spread=0.5, seed=5)
    splits = [("train", "train", "valid", "test")[i % 4] for i in range(len(y))]
    clips = write_csv_task(tmp_path / "t", [f"k{v}" for v in y], splits)
    store = write_features(tmp_path / "x.h5", clips, x)
    out, png = tmp_path / "r.json", tmp_path / "r.png"
    flags = ["--data", str(tmp_path / "t"), "--embeddings", store, "--seeds", "2"]
    code, _, err = run_in_process(
        capsys, "probe", "--task", "t", *flags, "--out", str(out), "--plot", str(png)
    )
    assert code == 0, err
    assert "accuracy" in err and "map_at_10" in err  # the table
    assert json.loads(out.read_text())["results"] and png.read_bytes()[:4] == b"\x89PNG"
    code, _, err = run_in_process(
        capsys, "probe", "--task", "t", "--data", str(tmp_path / "nowhere"), "--baseline", "mfcc"
    )
    assert code == 2 and "no such task directory" in err and "Traceback" not in err


def test_a_segment_only_store_is_probed_on_the_mean_of_its_segments(tmp_path: Path) -> None:
    from mclx.store import FileRecord, write_store

    x, y = blobs(12, 3, 6, spread=0.5, seed=11)
    splits = [("train", "train", "valid", "test")[i % 4] for i in range(len(y))]
    clips = write_csv_task(tmp_path / "t", [f"k{v}" for v in y], splits)
    attrs = {"format": "mclx-embeddings", "format_version": 1, "mclx_version": "test", "model": "synthetic",
             "model_sha256": "0" * 64, "model_config": "{}", "sample_rate": 16000, "window_s": 1.0,
             "hop_s": 1.0, "dim": 6, "level": "segment", "pooling": "mean", "precision": "fp32",
             "created_utc": "", "argv": "[]"}  # fmt: skip
    rng = np.random.default_rng(0)
    records = []
    for clip, row in zip(clips, x, strict=True):
        noise = rng.standard_normal((3, 6)) * 0.1
        segs = (row + noise - noise.mean(axis=0)).astype(np.float32)  # segments whose mean is the row
        records.append(FileRecord(clip, "ok", "", 3.0, 0, 0, 3, segments=segs,
                                  starts=np.arange(3.0), ends=np.arange(1.0, 4.0)))  # fmt: skip
    store = str(tmp_path / "seg.h5")
    write_store(store, attrs, records)
    report = probe_store(tmp_path / "t", store, "linear", 1)
    assert result(report, "accuracy")["mean"] >= 0.95
    assert "computed here from the store's /segments" in report["aggregation"]


@pytest.mark.parametrize("task", ["odd[/b]", "t[live]"])
def test_task_names_and_feature_paths_print_verbatim_in_the_probe_table(
    tmp_path: Path, task: str, capsys: pytest.CaptureFixture[str]
) -> None:
    """Task names and feature paths are user text, never rich markup (an outside review's defect 1:
    brackets vanished from the probe table or raised a markup error)."""
    from mclx.probe import ProbeSettings, run_probe

    from .helpers import blobs, write_csv_task, write_features

    x, y = blobs(8, 2, 4, spread=0.5, seed=0)
    data = tmp_path / task
    clips = write_csv_task(
        data, [f"k{v}" for v in y], [("train", "valid", "test", "train")[i % 4] for i in range(16)]
    )
    store = write_features(tmp_path / "f [feat. Y].h5", clips, x)
    run_probe(ProbeSettings(task, str(data), embeddings=(store,), head="linear", seeds=1))
    err = capsys.readouterr().err
    assert f"probe {task}" in err and "f [feat. Y].h5" in err


def test_per_clip_scores_average_to_the_reported_means(tmp_path: Path) -> None:
    """--per-clip: each test clip's score (correct or not, its AP@10), whose mean is the metric."""
    x, y = blobs(20, 3, 6, spread=1.5, seed=3)
    splits = [("train", "train", "valid", "test")[i % 4] for i in range(len(y))]
    clips = write_csv_task(tmp_path / "t", [f"k{v}" for v in y], splits)
    store = write_features(tmp_path / "x.h5", clips, x)
    settings = ProbeSettings("t", str(tmp_path / "t"), "csv", embeddings=(store,), head="both", seeds=2,
                             per_clip=True, quiet=True)  # fmt: skip
    report = run_probe(settings)
    tests = report["splits"]["test"]
    for head, metric in (("linear", "accuracy"), ("mlp", "accuracy"), ("cosine", "map_at_10"),
                         ("cosine", "precision_at_10")):  # fmt: skip
        row = result(report, metric, head)
        scores = np.array([np.nan if v is None else v for v in row["per_clip"]])
        assert len(scores) == tests
        assert np.nanmean(scores) == pytest.approx(row["mean"], abs=1e-6), (head, metric)
    assert set(result(report, "accuracy", "linear")["per_clip"]) <= {0.0, 1.0}  # one fit for all seeds
    assert "per_clip" not in result(report, "macro_f1", "linear")  # not a mean over clips
    plain = run_probe(
        ProbeSettings("t", str(tmp_path / "t"), "csv", embeddings=(store,), seeds=2, quiet=True)
    )
    assert all("per_clip" not in r for r in plain["results"])
