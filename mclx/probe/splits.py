"""Which clips train, tune and test each seed's heads.

With split lists every seed uses them (seeds then vary the heads' initialisation only).
Without, repeated stratified k-fold: seed s tests on fold s mod k and validates on the next
fold, and every k seeds the folds are drawn anew, so seeds beyond k add new partitions
rather than repeating old ones.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from mclx.errors import UsageError
from mclx.probe.tasks import Task

FOLDS = 5


@dataclass(frozen=True, eq=False)  # compared by identity: given splits are one object for all seeds
class Split:
    """Row indices into the task's clips; ``fold`` is None for given splits."""

    train: np.ndarray  # (n_train,) int64
    valid: np.ndarray  # (n_valid,) int64
    test: np.ndarray  # (n_test,) int64
    fold: int | None = None
    repetition: int | None = None

    def describe(self) -> dict[str, int | None]:
        return {"test_fold": self.fold, "valid_fold": None if self.fold is None else (self.fold + 1) % FOLDS,
                "repetition": self.repetition, "train": len(self.train), "valid": len(self.valid),
                "test": len(self.test)}  # fmt: skip


def make_splits(task: Task, usable: np.ndarray, seeds: int) -> list[Split]:
    """One Split per seed over the clips where ``usable`` (N,) bool is true."""
    idx = np.flatnonzero(usable)
    left_out = "" if usable.all() else f" (after leaving out {int((~usable).sum())} clips without features)"
    if task.has_splits:
        s = np.asarray(task.splits)[idx]
        parts = [idx[s == name] for name in ("train", "valid", "test")]
        for name, part in zip(("train", "valid", "test"), parts, strict=True):
            if len(part) == 0:
                raise UsageError(
                    f"{task.data}: the {name} split has no clips{left_out}; the heads need train, "
                    "valid (to choose hyper-parameters) and test"
                )
        return [Split(parts[0], parts[1], parts[2])] * seeds
    groups = _strata(task, idx, left_out)
    out = []
    for seed in range(seeds):
        repetition, test_fold = divmod(seed, FOLDS)
        folds = _assign(groups, len(task.paths), np.random.default_rng(repetition))
        valid_fold = (test_fold + 1) % FOLDS
        f = folds[idx]
        train = idx[(f != test_fold) & (f != valid_fold)]
        out.append(Split(train, idx[f == valid_fold], idx[f == test_fold], test_fold, repetition))
    return out


def _strata(task: Task, idx: np.ndarray, left_out: str) -> list[np.ndarray]:
    """Groups of clips (row indices) that each fold should sample evenly."""
    if task.kind == "single":
        labels = np.asarray(task.labels)[idx]
        groups = [idx[labels == c] for c in sorted(set(labels.tolist()))]
        small = [f"{task.labels[g[0]]} ({len(g)})" for g in groups if len(g) < FOLDS]
        if small:
            raise UsageError(
                f"{task.data}: too few clips for stratified {FOLDS}-fold in class(es) {', '.join(small)}"
                f"{left_out}; each class needs at least {FOLDS}, or give train/valid/test split lists"
            )
        return groups
    if len(idx) < 2 * FOLDS:
        raise UsageError(
            f"{task.data}: {len(idx)} clips{left_out} are too few for {FOLDS}-fold (need {2 * FOLDS}); "
            "add clips or give train/valid/test splits"
        )
    y = task.targets()[idx]
    if task.kind == "regression":  # neighbours in value spread over the folds
        order = idx[np.argsort(y, kind="stable")]
        return [order[i : i + FOLDS] for i in range(0, len(order), FOLDS)]
    # multi-label: stratify by each clip's rarest tag (clips without tags form their own group)
    frequency = y.sum(axis=0)
    rarest = np.where(y.any(axis=1), np.argmin(np.where(y > 0, frequency, np.inf), axis=1), -1)
    return [idx[rarest == r] for r in np.unique(rarest)]


def _assign(groups: list[np.ndarray], n: int, rng: np.random.Generator) -> np.ndarray:
    """(n,) fold of every clip (-1 for clips in no group): each group dealt round-robin, shuffled,
    continuing where the last group stopped so that the folds' sizes differ by one at most."""
    folds = np.full(n, -1, dtype=np.int64)
    offset = 0
    for group in groups:
        members = rng.permutation(group)
        folds[members] = (offset + np.arange(len(members))) % FOLDS
        offset += len(members)
    return folds


def split_notes(task: Task, split: Split, y: np.ndarray) -> list[str]:
    """Warnings for a split whose numbers need care (y: the task's targets, all rows)."""
    notes = []
    where = "" if split.fold is None else f" (fold {split.fold}, repetition {split.repetition})"
    if task.kind == "single":
        trained = set(y[split.train].tolist())
        consequences = {"test": "their clips count as errors", "valid": "left out of the validation loss"}
        for part, consequence in consequences.items():
            unseen = sorted(set(y[getattr(split, part)].tolist()) - trained)
            if unseen:
                names = ", ".join(task.classes[c] for c in unseen)
                notes.append(f"{part} classes never seen in training{where}: {names}; {consequence}")
    elif task.kind == "multi":
        never = np.flatnonzero(y[split.train].sum(axis=0) == 0)
        if len(never):
            names = ", ".join(task.classes[c] for c in never)
            notes.append(f"tags never positive in training{where}: {names}")
        n_pos = y[split.test].sum(axis=0)
        undefined = np.flatnonzero((n_pos == 0) | (n_pos == len(split.test)))
        if len(undefined):
            names = ", ".join(task.classes[c] for c in undefined)
            notes.append(
                f"tags all positive or all negative in test{where}, left out of the macro ROC-AUC and "
                f"PR-AUC: {names}"
            )
    elif np.ptp(y[split.test]) == 0:
        notes.append(f"the test targets are constant{where}: R² is undefined")
    return notes
