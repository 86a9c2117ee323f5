"""Labelled tasks in the layouts of the contract: ``gtzan`` folders, ``nsynth`` JSON, ``csv``.

A task is a list of clips, each with a label and a split ("" everywhere when the task has no
split lists: the probe then uses stratified k-fold). Kinds: "single" (one class per clip),
"multi" (';'-separated tags) and "regression" (a number). Anything that would make a result
silently wrong (missing audio, an empty class, a clip in two splits, a typo in a number
column) is a UsageError naming the file; doubtful but usable input becomes a note that
travels with the results.
"""

from __future__ import annotations

import csv
import json
import math
import os
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from mclx.errors import UsageError
from mclx.inputs import AUDIO_EXTENSIONS

LAYOUTS = ("gtzan", "nsynth", "csv")
KINDS = ("single", "multi", "regression")
SPLITS = ("train", "valid", "test")
NSYNTH_FIELD = "instrument_family_str"


@dataclass(frozen=True)
class Task:
    name: str
    layout: str
    data: str  # the task directory as given (or as found under $MCLX_DATA)
    kind: str  # "single" | "multi" | "regression"
    paths: list[str]  # (N,) audio files
    labels: list[str]  # (N,) raw label text
    splits: list[str]  # (N,) "train" | "valid" | "test", or all "" (no split lists: k-fold)
    classes: list[str]  # class or tag names, sorted; [] for regression
    notes: list[str] = field(default_factory=list)  # warnings to show with the results

    @property
    def has_splits(self) -> bool:
        return bool(self.splits) and all(self.splits)

    def targets(self) -> np.ndarray:
        """(N,) int64 class index, (N, C) float32 multi-hot, or (N,) float64 values."""
        if self.kind == "single":
            index = {c: i for i, c in enumerate(self.classes)}
            return np.array([index[label] for label in self.labels], dtype=np.int64)
        if self.kind == "multi":
            index = {c: i for i, c in enumerate(self.classes)}
            y = np.zeros((len(self.labels), len(self.classes)), dtype=np.float32)
            for i, label in enumerate(self.labels):
                for tag in tags(label):
                    y[i, index[tag]] = 1.0
            return y
        return np.array([float(label) for label in self.labels], dtype=np.float64)


@dataclass(frozen=True)
class _Rows:
    """What a layout reader found: parallel lists, the kind if the layout fixes it, notes."""

    paths: list[str]
    labels: list[str]
    splits: list[str]
    kind: str | None
    notes: list[str]


def tags(label: str) -> list[str]:
    return [t.strip() for t in label.split(";") if t.strip()]


def resolve_data(task: str, data: str | None) -> str:
    """The task directory: ``--data``, else ``$MCLX_DATA/<task>``."""
    if data:
        path, how = data, "--data"
    elif os.environ.get("MCLX_DATA"):
        path, how = os.path.join(os.environ["MCLX_DATA"], task), "$MCLX_DATA/<task>"
    else:
        raise UsageError(f"--task {task}: no --data given and MCLX_DATA is not set; give one of them")
    if not os.path.isdir(path):
        raise UsageError(f"{path}: no such task directory ({how})")
    return path


def detect_layout(path: Path) -> str:
    if any((path / f"nsynth-{s}" / "examples.json").is_file() for s in SPLITS):
        return "nsynth"
    if (path / "labels.csv").is_file():
        return "csv"
    if any(p.is_dir() and not p.name.startswith(".") for p in path.iterdir()):
        return "gtzan"
    raise UsageError(
        f"{path}: cannot tell the task layout (class folders, nsynth-*/examples.json or labels.csv); "
        "give --layout"
    )


def load_task(
    name: str, data: str | None, layout: str | None, label_field: str | None = None, kind: str | None = None
) -> Task:
    """Read a task; raises UsageError for anything that would make a result wrong.

    ``kind`` (single | multi | regression) overrides the kind the layout or the labels suggest."""
    where = resolve_data(name, data)
    path = Path(where)
    layout = layout or detect_layout(path)
    if layout not in LAYOUTS:
        raise UsageError(f"--layout {layout}: choose one of {', '.join(LAYOUTS)}")
    if label_field and layout == "gtzan":
        raise UsageError("--label applies to the nsynth and csv layouts (gtzan labels are folder names)")
    if layout == "gtzan":
        rows = _gtzan(path)
    elif layout == "nsynth":
        rows = _nsynth(path, label_field or NSYNTH_FIELD)
    elif (path / "labels.csv").is_file():
        rows = _csv(path, label_field or "label")
    else:
        raise UsageError(f"{where}: the csv layout needs a labels.csv file")
    if not rows.paths:
        raise UsageError(f"{where}: no labelled audio found ({layout} layout)")
    missing = [p for p in rows.paths if not os.path.isfile(p)]
    if missing:
        shown = ", ".join(missing[:3])
        raise UsageError(f"{where}: {len(missing)} labelled audio files do not exist: {shown}")
    notes = list(rows.notes)
    if kind is None:
        kind = rows.kind or _infer_kind(rows.labels, f"{where}/labels.csv", notes)
    elif kind not in KINDS:
        raise UsageError(f"--kind {kind}: choose {', '.join(KINDS)}")
    elif kind == "regression":
        numbers = [(label, _number(label)) for label in rows.labels]
        bad = [label for label, v in numbers if v is None or not math.isfinite(v)]
        if bad:
            raise UsageError(f"--kind regression: label {bad[0]!r} of {where} is not a finite number")
    if kind == "single":
        classes = sorted(set(rows.labels))
    elif kind == "multi":
        classes = sorted({t for label in rows.labels for t in tags(label)})
    else:
        classes = []
    if any(rows.splits) and not all(rows.splits):
        n = sum(not s for s in rows.splits)
        raise UsageError(f"{where}: {n} clips have no split while others have one; give all or none")
    return Task(name, layout, where, kind, rows.paths, rows.labels, rows.splits, classes, notes)


def _infer_kind(labels: list[str], source: str, notes: list[str]) -> str:
    """csv labels: any ';' -> multi; every label a number -> regression; else single."""
    if any(";" in label for label in labels):
        return "multi"
    numbers = [_number(label) for label in labels]
    n_numeric = sum(v is not None for v in numbers)
    if n_numeric == len(labels):
        bad = [labels[i] for i, v in enumerate(numbers) if v is not None and not math.isfinite(v)]
        if bad:
            raise UsageError(f"{source}: regression labels must be finite numbers, got {bad[0]!r}")
        _note_class_ids(labels, numbers, source, notes)
        notes.append(f"{source}: every label is a number, so the task is probed as a regression; "
                     "give --kind single (class ids) or --kind multi to say otherwise")  # fmt: skip
        return "regression"
    if n_numeric > len(labels) / 2:
        first = next(label for label, v in zip(labels, numbers, strict=True) if v is None)
        raise UsageError(
            f"{source}: {n_numeric} labels are numbers but {len(labels) - n_numeric} are not "
            f"(e.g. {first!r}); regression needs every label to be a number"
        )
    return "single"


def _number(text: str) -> float | None:
    try:
        return float(text)
    except ValueError:
        return None


def _note_class_ids(labels: list[str], numbers: list[float | None], source: str, notes: list[str]) -> None:
    distinct = {v for v in numbers if v is not None}
    if len(distinct) <= 20 and all(float(v).is_integer() for v in distinct):
        notes.append(
            f"{source}: the labels are {len(distinct)} distinct integers, probed as a regression "
            "target (R²); if they are class ids, give --kind single"
        )


def _audio(directory: Path) -> list[Path]:
    return sorted(p for p in directory.rglob("*") if p.suffix.lower() in AUDIO_EXTENSIONS and p.is_file())


def _gtzan(path: Path) -> _Rows:
    classes = sorted(p for p in path.iterdir() if p.is_dir() and not p.name.startswith("."))
    files = {c.name: _audio(c) for c in classes}
    empty = [name for name, found in files.items() if not found]
    if empty:
        raise UsageError(f"{path}: class folder(s) without audio: {', '.join(empty)}")
    split_of: dict[str, str] = {}
    for split in SPLITS:
        listing = path / f"{split}.txt"
        if not listing.is_file():
            continue
        for line in listing.read_text().splitlines():
            rel = os.path.normpath(line.strip())
            if not line.strip():
                continue
            if split_of.get(rel, split) != split:
                raise UsageError(f"{listing}: {rel} is also in {split_of[rel]}.txt")
            split_of[rel] = split
    paths, labels, splits = [], [], []
    for name, found in files.items():
        for f in found:
            paths.append(str(f))
            labels.append(name)
            splits.append(split_of.pop(os.path.relpath(f, path), ""))
    notes = []
    if split_of or any(splits):
        if split_of:  # listed but not found among the class folders' audio
            shown = ", ".join(sorted(split_of)[:3])
            raise UsageError(
                f"{path}: split lists name {len(split_of)} files that are not audio in a class folder: "
                f"{shown}"
            )
        unlisted = sum(not s for s in splits)
        if unlisted:
            notes.append(f"{path}: {unlisted} clips are in no split list and are left out")
            keep = [i for i, s in enumerate(splits) if s]
            paths, labels, splits = ([xs[i] for i in keep] for xs in (paths, labels, splits))
    return _Rows(paths, labels, splits, "single", notes)


def _nsynth(path: Path, label_field: str) -> _Rows:
    paths, labels, splits, kinds = [], [], [], set()
    for split in SPLITS:
        meta = path / f"nsynth-{split}" / "examples.json"
        if not meta.is_file():
            continue
        try:
            examples = json.loads(meta.read_text(encoding="utf-8"))
        except (json.JSONDecodeError, UnicodeDecodeError) as exc:
            raise UsageError(f"{meta}: not valid JSON ({exc})") from None
        if not isinstance(examples, dict) or not all(isinstance(v, dict) for v in examples.values()):
            raise UsageError(f"{meta}: expected an object of examples keyed by note name")
        for key in sorted(examples):
            if label_field not in examples[key]:
                raise UsageError(f"{meta}: example {key} has no field {label_field!r} (see --label)")
            value = examples[key][label_field]
            if isinstance(value, list):
                kinds.add("multi")
                labels.append(";".join(str(v) for v in value))
            elif isinstance(value, int | float) and not isinstance(value, bool):
                kinds.add("regression")
                labels.append(repr(value))
            else:
                kinds.add("single")
                labels.append(str(value))
            paths.append(str(path / f"nsynth-{split}" / "audio" / f"{key}.wav"))
            splits.append(split)
    if len(kinds) > 1:
        raise UsageError(f"{path}: field {label_field!r} mixes {' and '.join(sorted(kinds))} values")
    kind = kinds.pop() if kinds else "single"
    notes: list[str] = []
    if kind == "regression":
        _note_class_ids(labels, [float(v) for v in labels], f"{path} field {label_field!r}", notes)
    return _Rows(paths, labels, splits, kind, notes)


def _csv(path: Path, label_column: str) -> _Rows:
    source = path / "labels.csv"
    try:
        return _read_csv(source, path, label_column)
    except (UnicodeDecodeError, csv.Error) as exc:
        raise UsageError(f"{source}: not a readable UTF-8 CSV file ({exc})") from None


def _read_csv(source: Path, path: Path, label_column: str) -> _Rows:
    with open(source, newline="", encoding="utf-8") as f:
        reader = csv.DictReader(f)
        columns = set(reader.fieldnames or [])
        if not {"path", label_column} <= columns:
            raise UsageError(f"{source}: needs the columns path,{label_column}[,split]")
        paths, labels, splits = [], [], []
        seen: dict[str, int] = {}
        first_empty = 0
        for row in reader:
            line = reader.line_num
            rel, label = (row["path"] or "").strip(), (row[label_column] or "").strip()
            split = (row.get("split") or "").strip()
            if not rel:
                raise UsageError(f"{source}:{line}: empty path")
            file = os.path.realpath(path / rel)  # `a.wav`, `./a.wav` and `/abs/a.wav` are one clip
            if file in seen:
                raise UsageError(f"{source}:{line}: {rel} is already on line {seen[file]}")
            if split not in ("", *SPLITS):
                raise UsageError(f"{source}:{line}: unknown split {split!r} (use train, valid or test)")
            seen[file] = line
            first_empty = first_empty or (line if not label else 0)
            paths.append(str(path / rel))
            labels.append(label)
            splits.append(split)
    if first_empty and not any(";" in label for label in labels):  # multi-label: no tag is fine
        raise UsageError(f"{source}:{first_empty}: empty label")
    return _Rows(paths, labels, splits, None, [])
