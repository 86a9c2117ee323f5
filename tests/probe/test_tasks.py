"""Task layouts, label kinds, splits and the bad inputs that must never give a silent number."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from mclx.errors import UsageError
from mclx.probe.splits import FOLDS, make_splits, split_notes
from mclx.probe.tasks import load_task

from .helpers import touch_clips, write_csv_task


def gtzan_dir(root: Path, per_class: int = 6, classes: tuple[str, ...] = ("jazz", "rock", "pop")) -> Path:
    touch_clips(root, [f"{c}/{c}.{i:03d}.wav" for c in classes for i in range(per_class)])
    return root


def test_gtzan_with_split_lists(tmp_path: Path) -> None:
    root = gtzan_dir(tmp_path / "g", per_class=4)
    (root / "train.txt").write_text("jazz/jazz.000.wav\nrock/rock.000.wav\npop/pop.000.wav\n")
    (root / "valid.txt").write_text("jazz/jazz.001.wav\nrock/rock.001.wav\n\npop/pop.001.wav\n")
    (root / "test.txt").write_text("./jazz/jazz.002.wav\nrock/rock.002.wav\npop/pop.002.wav\n")
    task = load_task("g", str(root), None)
    assert (task.layout, task.kind, task.classes) == ("gtzan", "single", ["jazz", "pop", "rock"])
    assert task.has_splits and sorted(task.splits) == ["test"] * 3 + ["train"] * 3 + ["valid"] * 3
    assert any("3 clips are in no split list" in n for n in task.notes)  # *.003 are left out, said so
    assert task.targets().tolist() == [task.classes.index(p.split("/")[-2]) for p in task.paths]


def test_gtzan_class_folders_named_by_numbers_stay_classes(tmp_path: Path) -> None:
    task = load_task("g", str(gtzan_dir(tmp_path / "g", classes=("1", "2"))), None)
    assert task.kind == "single" and task.classes == ["1", "2"]


def test_gtzan_bad_inputs_are_clear_errors(tmp_path: Path) -> None:
    root = gtzan_dir(tmp_path / "g")
    (root / "blues").mkdir()
    with pytest.raises(UsageError, match="without audio: blues"):
        load_task("g", str(root), None)
    (root / "blues").rmdir()
    (root / "train.txt").write_text("jazz/jazz.000.wav\njazz/missing.wav\n")
    with pytest.raises(UsageError, match=r"1 files that are not audio in a class folder: jazz/missing\.wav"):
        load_task("g", str(root), None)
    (root / "train.txt").write_text("jazz/jazz.000.wav\n")
    (root / "test.txt").write_text("jazz/jazz.000.wav\n")
    with pytest.raises(UsageError, match=r"jazz.000.wav is also in train.txt"):
        load_task("g", str(root), None)
    with pytest.raises(UsageError, match="--label applies"):
        load_task("g", str(root), "gtzan", label_field="x")


def test_nsynth_fields_give_the_kind(tmp_path: Path) -> None:
    root = tmp_path / "n"
    for split, keys in (("train", ["a", "b", "c"]), ("valid", ["d"]), ("test", ["e", "f"])):
        meta = {k: {"instrument_family_str": "bass" if i % 2 else "organ", "instrument_family": i % 2,
                    "qualities_str": ["bright"] if i % 2 else [], "pitch": 40 + 7 * i}
                for i, k in enumerate(keys)}  # fmt: skip
        (root / f"nsynth-{split}").mkdir(parents=True)
        (root / f"nsynth-{split}" / "examples.json").write_text(json.dumps(meta))
        touch_clips(root / f"nsynth-{split}" / "audio", [f"{k}.wav" for k in keys])
    task = load_task("n", str(root), None)
    assert (task.layout, task.kind, task.classes) == ("nsynth", "single", ["bass", "organ"])
    assert task.splits == ["train", "train", "train", "valid", "test", "test"]
    assert task.paths[0].endswith("nsynth-train/audio/a.wav")
    assert load_task("n", str(root), None, "qualities_str").kind == "multi"
    assert load_task("n", str(root), None, "pitch").kind == "regression"
    ids = load_task("n", str(root), None, "instrument_family")
    assert ids.kind == "regression" and any("class ids" in n for n in ids.notes)  # said, not silent
    with pytest.raises(UsageError, match="no field 'velocity'"):
        load_task("n", str(root), None, "velocity")
    (root / "nsynth-test" / "audio" / "e.wav").unlink()
    with pytest.raises(UsageError, match="1 labelled audio files do not exist"):
        load_task("n", str(root), None)


def test_csv_single_multi_and_regression_from_one_layout(tmp_path: Path) -> None:
    write_csv_task(tmp_path / "s", ["cat", "dog", "cat"])
    task = load_task("s", str(tmp_path / "s"), None)
    assert (task.layout, task.kind, task.classes, task.has_splits) == ("csv", "single", ["cat", "dog"], False)
    write_csv_task(tmp_path / "m", ["a;b", "b", "", "c ; a"])
    task = load_task("m", str(tmp_path / "m"), None)
    assert task.kind == "multi" and task.classes == ["a", "b", "c"]
    assert task.targets().tolist() == [[1, 1, 0], [0, 1, 0], [0, 0, 0], [1, 0, 1]]
    write_csv_task(tmp_path / "r", ["0.5", "-3", "1e2"], ["train", "valid", "test"])
    task = load_task("r", str(tmp_path / "r"), None)
    assert task.kind == "regression" and task.targets().tolist() == [0.5, -3.0, 100.0] and task.has_splits


@pytest.mark.parametrize(
    ("labels", "splits", "message"),
    [
        (["a", "", "b"], None, r"labels.csv:3: empty label"),
        (["1.5", "2", "x", "4"], None, r"3 labels are numbers but 1 are not \(e.g. 'x'\)"),
        (["1.5", "nan", "2"], None, "must be finite numbers"),
        (["a", "b"], ["train", "validation"], r"labels.csv:3: unknown split 'validation'"),
        (["a", "b", "a"], ["train", "", "test"], "1 clips have no split while others have one"),
    ],
)
def test_csv_bad_labels_are_clear_errors(tmp_path: Path, labels: list[str], splits: list[str] | None,
                                         message: str) -> None:  # fmt: skip
    write_csv_task(tmp_path / "t", labels, splits)
    with pytest.raises(UsageError, match=message):
        load_task("t", str(tmp_path / "t"), None)


def test_csv_naming_missing_audio_or_a_clip_twice_is_an_error(tmp_path: Path) -> None:
    root = tmp_path / "t"
    write_csv_task(root, ["a", "b"])
    (root / "labels.csv").write_text("path,label\nclips/c000.wav,a\nclips/nope.wav,b\n")
    with pytest.raises(UsageError, match=r"1 labelled audio files do not exist: .*nope\.wav"):
        load_task("t", str(root), None)
    (root / "labels.csv").write_text("path,label\nclips/c000.wav,a\nclips/c000.wav,b\n")
    with pytest.raises(UsageError, match=r"c000\.wav is already on line 2"):
        load_task("t", str(root), None)
    # The same clip spelled another way, in another split: leakage, refused the same way.
    (root / "labels.csv").write_text(
        f"path,label,split\nclips/c000.wav,a,train\n./clips/c000.wav,a,test\n{root}/clips/c001.wav,b,test\n"
    )
    with pytest.raises(UsageError, match=r"\./clips/c000\.wav is already on line 2"):
        load_task("t", str(root), None)


def test_explicit_regression_accepts_a_label_of_zero(tmp_path: Path) -> None:
    write_csv_task(tmp_path / "t", ["0", "1.5", "0.0", "4"])
    task = load_task("t", str(tmp_path / "t"), None, kind="regression")
    assert task.kind == "regression" and task.targets().tolist() == [0.0, 1.5, 0.0, 4.0]


def test_integer_csv_labels_are_regression_with_a_note(tmp_path: Path) -> None:
    write_csv_task(tmp_path / "t", ["0", "1", "2", "1"])
    task = load_task("t", str(tmp_path / "t"), None)
    assert task.kind == "regression" and any("3 distinct integers" in n for n in task.notes)


def test_where_the_data_comes_from(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("MCLX_DATA", raising=False)
    with pytest.raises(UsageError, match="no --data given and MCLX_DATA is not set"):
        load_task("genre", None, None)
    gtzan_dir(tmp_path / "genre")
    monkeypatch.setenv("MCLX_DATA", str(tmp_path))
    assert load_task("genre", None, None).data == str(tmp_path / "genre")
    with pytest.raises(UsageError, match="no such task directory"):
        load_task("nothing", None, None)
    (tmp_path / "empty").mkdir()
    with pytest.raises(UsageError, match="cannot tell the task layout"):
        load_task("empty", None, None)
    with pytest.raises(UsageError, match=r"the csv layout needs a labels\.csv file"):
        load_task("genre", None, "csv")
    with pytest.raises(UsageError, match=r"no labelled audio found \(nsynth layout\)"):
        load_task("genre", None, "nsynth")
    with pytest.raises(UsageError, match="--layout folders: choose one of gtzan, nsynth, csv"):
        load_task("genre", None, "folders")


def test_stratified_kfold_partitions_every_class_evenly(tmp_path: Path) -> None:
    task = load_task("g", str(gtzan_dir(tmp_path / "g", per_class=7)), None)
    usable = np.ones(len(task.paths), dtype=bool)
    splits = make_splits(task, usable, 7)
    y = task.targets()
    tests = [set(s.test.tolist()) for s in splits[:FOLDS]]
    assert set().union(*tests) == set(range(len(y))) and sum(map(len, tests)) == len(y)  # a partition
    for s in splits:
        assert not (set(s.train) & set(s.valid) or set(s.train) & set(s.test) or set(s.valid) & set(s.test))
        assert set(y[s.test]) == set(y[s.train]) == {0, 1, 2}  # every class in every fold
        assert s.fold is not None and s.describe()["valid_fold"] == (s.fold + 1) % FOLDS
    assert [s.fold for s in splits] == [0, 1, 2, 3, 4, 0, 1] and splits[5].repetition == 1
    assert set(splits[5].test.tolist()) != set(splits[0].test.tolist())  # repetition 1: folds redrawn


def test_kfold_regression_spreads_values_over_the_folds(tmp_path: Path) -> None:
    write_csv_task(tmp_path / "r", [str(v) for v in np.random.default_rng(0).permutation(50)])
    task = load_task("r", str(tmp_path / "r"), None)
    y = task.targets()
    means = [y[s.test].mean() for s in make_splits(task, np.ones(50, dtype=bool), FOLDS)]
    assert max(means) - min(means) < 5  # each fold takes one value of every block of 5 neighbours


def test_too_few_clips_for_kfold_is_an_error(tmp_path: Path) -> None:
    task = load_task("g", str(gtzan_dir(tmp_path / "g", per_class=4)), None)
    with pytest.raises(UsageError, match=r"too few clips for stratified 5-fold in class\(es\) jazz \(4\)"):
        make_splits(task, np.ones(len(task.paths), dtype=bool), 2)
    task = load_task("g", str(gtzan_dir(tmp_path / "h", per_class=5)), None)
    usable = np.ones(len(task.paths), dtype=bool)
    usable[0] = False  # one jazz clip failed to embed
    with pytest.raises(UsageError, match=r"jazz \(4\) \(after leaving out 1 clips without features\)"):
        make_splits(task, usable, 2)
    write_csv_task(tmp_path / "r", [str(v) for v in range(9)])
    with pytest.raises(UsageError, match="9 clips are too few for 5-fold"):
        make_splits(load_task("r", str(tmp_path / "r"), None), np.ones(9, dtype=bool), 1)


def test_given_splits_need_a_validation_split(tmp_path: Path) -> None:
    write_csv_task(tmp_path / "t", ["a", "b", "a", "b"], ["train", "train", "test", "test"])
    task = load_task("t", str(tmp_path / "t"), None)
    with pytest.raises(UsageError, match="the valid split has no clips"):
        make_splits(task, np.ones(4, dtype=bool), 1)


def test_unseen_classes_and_undefined_tags_are_noted(tmp_path: Path) -> None:
    write_csv_task(tmp_path / "s", ["a", "b", "a", "c"], ["train", "train", "valid", "test"])
    task = load_task("s", str(tmp_path / "s"), None)
    (split,) = set(make_splits(task, np.ones(4, dtype=bool), 2))
    assert split_notes(task, split, task.targets()) == [
        "test classes never seen in training: c; their clips count as errors"
    ]
    write_csv_task(tmp_path / "m", ["a;b", "a", "b", "a;c", "a"], ["train", "train", "valid", "test", "test"])
    task = load_task("m", str(tmp_path / "m"), None)
    (split,) = set(make_splits(task, np.ones(5, dtype=bool), 1))
    notes = split_notes(task, split, task.targets())
    assert "tags never positive in training: c" in notes
    assert any("left out of the macro ROC-AUC and PR-AUC: a, b" in n for n in notes)
