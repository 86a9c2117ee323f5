"""`--corrupt` in the probe: corrupted copies of the test clips, cached, and their features.

The heads are fitted on clean clips as always; :func:`corrupted_features` gives, for every
feature set mclx embeds itself, the features of corrupted copies of the clips a seed may test
on, which the probe scores with those same heads (see :mod:`mclx.probe.corrupt` for what each
corruption does).
"""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path

import numpy as np

from mclx.errors import DecodeError
from mclx.probe.corrupt import Corruption, copy_name, write_copy
from mclx.probe.features import Features, cache_path, from_store
from mclx.probe.tasks import Task

CORRUPTION = (
    "--corrupt: the heads fitted on the clean train/valid clips (the clean rows' heads, same seeds) "
    "score corrupted copies of the test clips, embedded with the same features; retrieval queries "
    "the clean train+valid clips with them. Rows and comparisons with a 'corruption' field: the "
    "comparison is the corrupted minus the clean result of the same features, head and metric, "
    "paired on the same seeds and test clips. Features read with --embeddings cannot be re-embedded "
    "and are scored clean only"
)

Embed = Callable[[str, list[str], Path, str], None]  # (features, clip paths, store, label)


def testable_clips(t: Task) -> np.ndarray:
    """(N,) bool: the clips some seed may test on (given splits: the test split; k-fold: all)."""
    if t.has_splits:
        return np.asarray(t.splits) == "test"
    return np.ones(len(t.paths), dtype=bool)


def corrupted_features(
    t: Task,
    sets: list[Features],
    corruptions: tuple[Corruption, ...],
    clean: np.ndarray,
    out: str | None,
    embed: Embed,
    log: Callable[[str], None],
    notes: list[str],
    failed: list[str],
) -> dict[str, dict[str, np.ndarray]]:
    """{features: {corruption: (N, D) features}}: the corrupted copies of the clips some seed
    tests on (NaN elsewhere, and where corrupting or embedding failed), for every feature set
    mclx embeds itself (not those read with --embeddings). Only clips with clean features in
    every set (``clean``, (N,) bool) are corrupted: a clip that failed clean is left out anyway.
    The copies are cached (:func:`corrupted_copies`) and so are their embeddings (``embed``),
    one store per (features, corruption) beside the clean one: a second run reuses both."""
    shifted: dict[str, dict[str, np.ndarray]] = {}
    embeddable = [f for f in sets if f.source != "embeddings"]
    if corruptions and len(embeddable) < len(sets):
        skipped = ", ".join(f.name for f in sets if f.source == "embeddings")
        notes.append(f"--corrupt: {skipped} (from --embeddings) scored clean only (not re-embedded)")
    wanted = np.flatnonzero(testable_clips(t) & clean)
    for c in corruptions:
        copies = corrupted_copies(t, c, wanted, out, log, notes, failed)
        rows = np.array(sorted(copies), dtype=np.int64)
        paths = [copies[i] for i in rows]
        for f in embeddable:
            x = np.full_like(f.x, np.nan)
            if len(paths):
                label = f"{f.name} [{c.name}]"
                cache = cache_path(f.name, t, out, corruption=c.name)
                embed(f.name, paths, cache, label)
                x[rows] = from_store(str(cache), f.name, f.source, t, paths=paths).x
            shifted.setdefault(f.name, {})[c.name] = x
    return shifted


def corrupted_copies(
    t: Task,
    c: Corruption,
    rows: np.ndarray,
    out: str | None,
    log: Callable[[str], None],
    notes: list[str],
    failed: list[str],
) -> dict[int, str]:
    """{row: path} of the corrupted copies of the task's clips ``rows`` (M,) int, written once
    under ``<cache>.corrupt/<corruption>/`` (:func:`mclx.probe.corrupt.copy_name`), reused after;
    a clip that cannot be corrupted is recorded in ``failed`` and left out."""
    folder = cache_path("corrupt", t, out, suffix="") / c.name.replace(":", "-")
    copies: dict[int, str] = {}
    made, bad = 0, []
    for i in rows:
        source = t.paths[i]
        key = Path(os.path.relpath(source, t.data)).as_posix()
        target = folder / copy_name(c, key, source)
        if not target.exists():
            try:
                write_copy(c, source, key, target)
            except DecodeError as exc:
                bad.append(f"{c.name}: {source}: {exc}")
                continue
            made += 1
        copies[int(i)] = str(target)
    log(f"{c.name}: {len(copies)} corrupted test clips in {folder} ({made} written now)")
    if bad:
        notes.append(f"{c.name}: {len(bad)} clips could not be corrupted, e.g. {bad[0]}")
        failed.extend(bad)
    return copies
