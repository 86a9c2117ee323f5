"""Per-track supervision for the supervised and semi-supervised losses, read from a CSV.

``data.labels`` is a CSV with the columns ``path,label[,split]``; only rows of split
``train`` (or without a split) are read, so evaluation labels never leak into pretraining.
``data.labelled_fraction`` keeps the labels of a fixed, seeded fraction of those tracks (at least
one when the fraction is above 0). A blank label cell leaves its track unlabelled.
"""

from __future__ import annotations

import csv
import hashlib
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from mclx.config import Config, expand_path
from mclx.errors import ConfigError


@dataclass(frozen=True)
class Labels:
    """Per-track supervision, rows following the cache's tracks.

    kind "multiclass": ``values`` (T,) int64, -1 unlabelled; "multilabel": (T, C) multi-hot,
    all-zero unlabelled; "regression": (T,) float64, NaN unlabelled; "similarity": (T, K)
    label vectors, all-zero unlabelled.
    """

    kind: str
    values: np.ndarray
    names: list[str]  # class or tag names ([] for regression and similarity)
    labelled: int  # tracks that kept a label

    def labelled_tracks(self) -> np.ndarray:
        """(L,) int64 indices of the tracks that kept a label, ascending."""
        v = self.values
        if self.kind == "multiclass":
            known = v >= 0
        elif self.kind == "regression":
            known = ~np.isnan(v)
        else:  # multi-hot tags or label vectors: an all-zero row is unlabelled
            known = (v != 0).any(axis=1)
        return np.flatnonzero(known).astype(np.int64)


def read_label_rows(config: Config, path: Path) -> dict[str, str]:
    """{real path: label text} of the training rows of ``data.labels`` (``path``: expanded, as the
    plan resolved it)."""
    if not path.is_file():
        raise ConfigError(f"data.labels: {config.data.labels} ({path}) does not exist")
    rows: dict[str, str] = {}
    with open(path, newline="") as f:
        reader = csv.DictReader(f)
        if not {"path", "label"} <= set(reader.fieldnames or []):
            raise ConfigError(f"data.labels: {config.data.labels} needs the columns path,label[,split]")
        for row in reader:
            if (row.get("split") or "train") != "train":
                continue  # never pretrain on the labels of evaluation splits
            if not (row["label"] or "").strip():
                continue  # a blank label marks an unlabelled track, not a class of its own
            rows[os.path.realpath(expand_path(row["path"], path.parent))] = row["label"]
    return rows


def check_labels_match(config: Config, rows: dict[str, str], files: list[str]) -> None:
    """A label file that names none of the audio files is a configuration error (before decoding)."""
    if not any(os.path.realpath(f) in rows for f in files):
        raise ConfigError(
            f"data.labels: no training row of {config.data.labels} names a file of data.audio "
            "(paths are relative to the CSV's folder)"
        )


def build_labels(config: Config, rows: dict[str, str], paths: list[str], kind: str) -> Labels:
    """The labels of the tracks ``paths`` (the cache's order) for loss target ``kind``."""
    index = {os.path.realpath(p): i for i, p in enumerate(paths)}
    raw = {index[p]: label for p, label in rows.items() if p in index}
    if not raw:
        raise ConfigError(f"data.labels: no labelled file of {config.data.labels} could be decoded")
    keep = _labelled_subset(sorted(raw), paths, config.data.labelled_fraction, config.train.seed)
    raw = {i: raw[i] for i in keep}
    n = len(paths)
    try:
        if kind == "multiclass":
            names = sorted(set(raw.values()))
            values = np.full(n, -1, dtype=np.int64)
            for i, label in raw.items():
                values[i] = names.index(label)
            return Labels(kind, values, names, len(raw))
        if kind == "multilabel":
            names = sorted({t.strip() for v in raw.values() for t in v.split(";") if t.strip()})
            tags = np.zeros((n, len(names)), dtype=np.float32)
            for i, label in raw.items():
                for t in label.split(";"):
                    if t.strip():
                        tags[i, names.index(t.strip())] = 1.0
            return Labels(kind, tags, names, len(raw))
        if kind == "regression":
            reg = np.full(n, np.nan)
            for i, label in raw.items():
                reg[i] = float(label)
            return Labels(kind, reg, [], len(raw))
        vectors = {i: np.array([float(x) for x in label.split(";")]) for i, label in raw.items()}
        dim = len(next(iter(vectors.values()))) if vectors else 1
        sim = np.zeros((n, dim), dtype=np.float32)
        for i, vec in vectors.items():
            if len(vec) != dim:
                raise ValueError(f"label vectors of different lengths ({dim} and {len(vec)})")
            sim[i] = vec
        return Labels(kind, sim, [], len(raw))
    except ValueError as exc:
        raise ConfigError(
            f"data.labels: {config.data.labels}: labels do not fit loss.target = {kind!r} ({exc})"
        ) from None


def _labelled_subset(indices: list[int], paths: list[str], fraction: float, seed: int) -> list[int]:
    """A fixed fraction of the labelled tracks, chosen by a seeded hash of their paths."""
    ranked = sorted(indices, key=lambda i: hashlib.sha1(f"{seed}:{paths[i]}".encode()).hexdigest())
    keep = round(fraction * len(ranked))
    return sorted(ranked[: max(keep, 1) if fraction > 0 else 0])  # a fraction > 0 keeps at least one
