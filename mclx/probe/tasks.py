"""Labelled tasks in the layouts of the contract: gtzan folders, nsynth JSON, csv.

A task is a list of clips with a label and a split. Kinds: "single" (one class per clip),
"multi" (';'-separated tags) and "regression" (a number).
"""

from __future__ import annotations

import csv
import json
import os
import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from mclx.errors import UsageError
from mclx.inputs import AUDIO_EXTENSIONS

LAYOUTS = ("gtzan", "nsynth", "csv")
SPLITS = ("train", "valid", "test")


@dataclass(frozen=True)
class Task:
    name: str
    layout: str
    data: str
    kind: str  # "single" | "multi" | "regression"
    paths: list[str]
    labels: list[str]  # raw label text per clip
    splits: list[str]  # "train" | "valid" | "test" | "" (no split lists: k-fold)
    classes: list[str]  # class or tag names ([] for regression)

    def targets(self) -> np.ndarray:
        """(N,) int64 class index, (N, C) float32 multi-hot, or (N,) float64 values."""
        if self.kind == "single":
            return np.array([self.classes.index(label) for label in self.labels], dtype=np.int64)
        if self.kind == "multi":
            y = np.zeros((len(self.labels), len(self.classes)), dtype=np.float32)
            for i, label in enumerate(self.labels):
                for tag in _tags(label):
                    y[i, self.classes.index(tag)] = 1.0
            return y
        return np.array([float(label) for label in self.labels], dtype=np.float64)


def _tags(label: str) -> list[str]:
    return [t.strip() for t in label.split(";") if t.strip()]


def resolve_data(task: str, data: str | None) -> Path:
    if data:
        path = Path(data)
    elif os.environ.get("MCLX_DATA"):
        path = Path(os.environ["MCLX_DATA"]) / task
    else:
        raise UsageError(f"--task {task}: no --data given and MCLX_DATA is not set")
    if not path.is_dir():
        raise UsageError(f"task data {path}: no such directory")
    return path


def detect_layout(path: Path) -> str:
    if any((path / f"nsynth-{s}" / "examples.json").is_file() for s in SPLITS):
        return "nsynth"
    if (path / "labels.csv").is_file():
        return "csv"
    if any(p.is_dir() for p in path.iterdir()):
        return "gtzan"
    raise UsageError(f"{path}: cannot tell its layout (gtzan folders, nsynth examples.json or labels.csv)")


def load_task(name: str, data: str | None, layout: str | None, label_field: str | None = None) -> Task:
    path = resolve_data(name, data)
    layout = layout or detect_layout(path)
    if layout not in LAYOUTS:
        raise UsageError(f"--layout {layout}: choose one of {', '.join(LAYOUTS)}")
    if layout == "gtzan":
        rows = _gtzan(path)
    elif layout == "nsynth":
        rows = _nsynth(path, label_field or "instrument_family_str")
    else:
        rows = _csv(path)
    if not rows:
        raise UsageError(f"{path}: no labelled audio found ({layout} layout)")
    paths, labels, splits = (list(x) for x in zip(*rows, strict=True))
    missing = [p for p in paths if not os.path.exists(p)]
    if missing:
        raise UsageError(f"{path}: {len(missing)} labelled files do not exist, e.g. {missing[0]}")
    kind = _kind(labels)
    if kind == "single":
        classes = sorted(set(labels))
    elif kind == "multi":
        classes = sorted({t for label in labels for t in _tags(label)})
    else:
        classes = []
    task = Task(name, layout, str(path), kind, paths, labels, splits, classes)
    _check(task)
    return task


def _kind(labels: list[str]) -> str:
    if any(";" in label for label in labels):
        return "multi"
    try:
        [float(label) for label in labels]
    except ValueError:
        return "single"
    return "regression"


def _gtzan(path: Path) -> list[tuple[str, str, str]]:
    classes = sorted(p for p in path.iterdir() if p.is_dir() and not p.name.startswith("."))
    empty = [c.name for c in classes if not any(_audio(c))]
    if empty:
        raise UsageError(f"{path}: class folder(s) without audio: {', '.join(empty)}")
    split_of: dict[str, str] = {}
    for split in SPLITS:
        listing = path / f"{split}.txt"
        if listing.is_file():
            for line in listing.read_text().splitlines():
                if line.strip():
                    split_of[os.path.normpath(line.strip())] = split
    rows = []
    for c in classes:
        for f in sorted(_audio(c)):
            rel = os.path.normpath(os.path.relpath(f, path))
            rows.append((str(f), c.name, split_of.get(rel, "" if not split_of else "unlisted")))
    if split_of:
        unknown = [r for r in split_of if not (path / r).exists()]
        if unknown:
            raise UsageError(f"{path}: split lists name {len(unknown)} missing files, e.g. {unknown[0]}")
        rows = [r for r in rows if r[2] != "unlisted"]
    return rows


def _audio(directory: Path) -> list[Path]:
    return [p for p in directory.rglob("*") if p.suffix.lower() in AUDIO_EXTENSIONS]


def _nsynth(path: Path, field: str) -> list[tuple[str, str, str]]:
    rows = []
    for split in SPLITS:
        meta = path / f"nsynth-{split}" / "examples.json"
        if not meta.is_file():
            continue
        examples = json.loads(meta.read_text())
        for key in sorted(examples):
            if field not in examples[key]:
                raise UsageError(f"{meta}: example {key} has no field {field!r} (--label)")
            value = examples[key][field]
            label = ";".join(value) if isinstance(value, list) else str(value)
            rows.append((str(path / f"nsynth-{split}" / "audio" / f"{key}.wav"), label, split))
    return rows


def _csv(path: Path) -> list[tuple[str, str, str]]:
    with open(path / "labels.csv", newline="") as f:
        reader = csv.DictReader(f)
        if not {"path", "label"} <= set(reader.fieldnames or []):
            raise UsageError(f"{path / 'labels.csv'}: needs the columns path,label[,split]")
        return [(str(path / r["path"]), r["label"], (r.get("split") or "").strip()) for r in reader]


def _check(task: Task) -> None:
    if any(s not in ("", *SPLITS) for s in task.splits):
        bad = next(s for s in task.splits if s not in ("", *SPLITS))
        raise UsageError(f"{task.data}: unknown split {bad!r} (use train, valid, test)")
    if task.kind == "single" and all(task.splits):
        train = {lab for lab, s in zip(task.labels, task.splits, strict=True) if s == "train"}
        unseen = sorted({lab for lab, s in zip(task.labels, task.splits, strict=True) if s == "test"} - train)
        if unseen:
            warnings.warn(
                f"{task.name}: test classes never seen in training: {', '.join(unseen)} "
                "(their clips count as errors for every head)",
                stacklevel=2,
            )
