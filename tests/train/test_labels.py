"""Labels from a CSV: training rows only, a seeded labelled fraction, every target kind."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from mclx.config import load_config
from mclx.errors import ConfigError
from mclx.train.labels import build_labels, check_labels_match, read_label_rows


def setup(tmp_path: Path, labels: list[str], splits: list[str] | None = None) -> list[str]:
    """Label rows for files a0.wav ... (the files need not exist to be labelled)."""
    paths = [str(tmp_path / "audio" / f"a{i}.wav") for i in range(len(labels))]
    rows = ["path,label,split"] + [
        f"audio/a{i}.wav,{label},{(splits or ['train'] * len(labels))[i]}" for i, label in enumerate(labels)
    ]
    (tmp_path / "labels.csv").write_text("\n".join(rows) + "\n")
    return paths


def labels_of(tmp_path: Path, paths: list[str], kind: str, *overrides: str) -> np.ndarray:
    config = load_config(None, ["data.labels='labels.csv'", "loss.kind='semisupcon'", *overrides])
    rows = read_label_rows(config, tmp_path / "labels.csv")
    return build_labels(config, rows, paths, kind).values


def test_only_training_rows_are_read(tmp_path: Path) -> None:
    paths = setup(tmp_path, ["a", "b", "a", "c"], ["train", "test", "train", "valid"])
    assert labels_of(tmp_path, paths, "multiclass").tolist() == [0, -1, 0, -1]


def test_labelled_fraction_keeps_a_seeded_subset(tmp_path: Path) -> None:
    paths = setup(tmp_path, [f"c{i % 3}" for i in range(40)])
    kept = [labels_of(tmp_path, paths, "multiclass", "data.labelled_fraction=0.1", f"train.seed={s}") >= 0
            for s in (0, 0, 1)]  # fmt: skip
    assert kept[0].sum() == 4 and np.array_equal(kept[0], kept[1]) and not np.array_equal(kept[0], kept[2])
    assert (labels_of(tmp_path, paths, "multiclass", "data.labelled_fraction=0.0") == -1).all()


def test_a_blank_label_leaves_its_track_unlabelled_for_every_kind(tmp_path: Path) -> None:
    paths = setup(tmp_path, ["rock", "", " ", "jazz"])
    assert labels_of(tmp_path, paths, "multiclass").tolist() == [1, -1, -1, 0]  # no class ""
    assert labels_of(tmp_path, paths, "multilabel").tolist() == [[0, 1], [0, 0], [0, 0], [1, 0]]


def test_a_small_labelled_fraction_keeps_at_least_one_label(tmp_path: Path) -> None:
    paths = setup(tmp_path, ["a", "b", "a", "b"])
    kept = labels_of(tmp_path, paths, "multiclass", "data.labelled_fraction=0.1")
    assert (kept >= 0).sum() == 1  # round(0.4) would keep none: semisupcon silently became ntxent


def test_every_target_kind(tmp_path: Path) -> None:
    paths = [*setup(tmp_path, ["x;y", "y", "z"]), str(tmp_path / "unlabelled.wav")]
    tags = labels_of(tmp_path, paths, "multilabel")
    assert tags.tolist() == [[1, 1, 0], [0, 1, 0], [0, 0, 1], [0, 0, 0]]
    paths = [*setup(tmp_path, ["0.5", "2", "-1"]), str(tmp_path / "unlabelled.wav")]
    values = labels_of(tmp_path, paths, "regression")
    assert values[:3].tolist() == [0.5, 2.0, -1.0] and np.isnan(values[3])
    paths = setup(tmp_path, ["1;0", "0;1", "1;1"])
    assert labels_of(tmp_path, paths, "similarity").tolist() == [[1, 0], [0, 1], [1, 1]]
    with pytest.raises(ConfigError, match="regression"):
        labels_of(tmp_path, setup(tmp_path, ["fast", "slow"]), "regression")


def test_a_label_file_that_names_no_audio_is_refused(tmp_path: Path) -> None:
    paths = setup(tmp_path, ["a", "b"])
    config = load_config(None, ["data.labels='labels.csv'", "loss.kind='supcon'"])
    rows = read_label_rows(config, tmp_path / "labels.csv")
    check_labels_match(config, rows, paths)
    with pytest.raises(ConfigError, match="names a file"):
        check_labels_match(config, rows, [str(tmp_path / "other.wav")])
    (tmp_path / "labels.csv").write_text("file,tag\nx.wav,a\n")
    with pytest.raises(ConfigError, match="path,label"):
        read_label_rows(config, tmp_path / "labels.csv")
