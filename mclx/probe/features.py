"""Where a probe's features come from: embedding stores, read in task order, and the cached
stores the probe embeds itself (beside the results, or in the user cache)."""

from __future__ import annotations

import hashlib
import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from mclx.errors import UsageError
from mclx.probe.tasks import Task


@dataclass(frozen=True)
class Features:
    name: str  # as shown in the results: model name, checkpoint path, store path or "mfcc"
    source: str  # "model" | "baseline" | "embeddings"
    store: str  # the HDF5 store the features were read from
    x: np.ndarray  # (N, D) float32 in task order, NaN rows for clips without features
    aggregation: str

    def describe(self) -> dict[str, Any]:
        return {"name": self.name, "source": self.source, "store": self.store, "dim": int(self.x.shape[1]),
                "aggregation": self.aggregation}  # fmt: skip


def from_store(
    path: str,
    name: str,
    source: str,
    t: Task,
    failed: list[str] | None = None,
    notes: list[str] | None = None,
    paths: list[str] | None = None,
) -> Features:
    """(N, D) clip embeddings of the task's clips (or of ``paths``), in that order, from an
    embedding store.

    With ``failed`` (and ``notes``), the task's clips that the store records as failed are added
    to them: a probe on a store with failed clips then exits 1, as one that embeds them itself."""
    from mclx.store import read_store

    paths = t.paths if paths is None else paths
    store = read_store(path)
    index: dict[str, int] = {}
    for i, p in enumerate(store.paths):
        index.setdefault(os.path.realpath(p), i)
    rows = [index.get(os.path.realpath(p), -1) for p in paths]
    missing = [p for p, r in zip(paths, rows, strict=True) if r < 0]
    if missing:
        raise UsageError(
            f"--embeddings {path}: {len(missing)} of the task's {len(paths)} clips are not in it, "
            f"e.g. {missing[0]}"
        )
    if failed is not None:
        bad = [store.records[r] for r in rows if store.records[r].status != "ok"]
        failed.extend(f"{name}: {rec.path}: {rec.error}" for rec in bad)
        if bad and notes is not None:
            notes.append(f"{name}: {len(bad)} clips failed to embed, e.g. {bad[0].path}: {bad[0].error}")
    dim = int(store.attrs["dim"])
    x = np.full((len(paths), dim), np.nan, dtype=np.float32)
    from_segments = False
    for j, r in enumerate(rows):
        rec = store.records[r]
        if rec.global_ is not None:
            x[j] = rec.global_
        elif rec.segments is not None and len(rec.segments):
            x[j] = rec.segments.mean(axis=0)
            from_segments = True
    a = store.attrs
    where = "computed here from the store's /segments" if from_segments else "the store's /global"
    aggregation = (
        f"clip embedding = mean of the {a.get('model')} embeddings of {float(a['window_s']):g} s windows "
        f"every {float(a['hop_s']):g} s ({where})"
    )
    return Features(name, source, path, x, aggregation)


def embed_cached(
    name: str,
    paths: list[str],
    cache: Path,
    device: str,
    quiet: bool,
    log: Callable[[str], None],
    notes: list[str],
    failed: list[str],
    label: str,
) -> None:
    """Embed ``paths`` with model ``name`` into the store ``cache`` (resumed when it was made
    with the same model and precision, else started anew); failures go to ``notes`` and
    ``failed`` under ``label``."""
    from mclx.devices import resolve_device, resolve_precision
    from mclx.embed.plan import EmbedSettings
    from mclx.embed.run import embed
    from mclx.models.registry import load_model
    from mclx.store import read_attrs

    cache.parent.mkdir(parents=True, exist_ok=True)
    overwrite = False
    if cache.exists():
        try:
            attrs = read_attrs(cache)
            precision = resolve_precision("auto", resolve_device(device).type)
            overwrite = (
                attrs.get("model_sha256") != load_model(name).sha256 or attrs["precision"] != precision
            )
        except UsageError:
            overwrite = True
        if overwrite:
            log(f"{cache}: made with another model or precision, embedding again")
    log(f"features {label}: embedding {len(paths)} clips into {cache} (resumes what is there)")
    settings = EmbedSettings(model=name, level="global", device=device, overwrite=overwrite, quiet=quiet)
    summary = embed(paths, str(cache), settings)
    if summary.failed:
        path, error = summary.failures[0] if summary.failures else ("?", "?")
        notes.append(f"{label}: {summary.failed} clips failed to embed, e.g. {path}: {error}")
        failed.extend(f"{label}: {p}: {e}" for p, e in summary.failures)


def cache_path(name: str, t: Task, out: str | None, corruption: str = "", suffix: str = ".h5") -> Path:
    """``<results stem>.<features>[.<corruption>].h5`` beside --out, else
    ``~/.cache/mclx/probe/<task>-<dir hash>...``."""
    safe = "".join(c if c.isalnum() or c in "-_" else "_" for c in Path(name).stem) or "model"
    if os.sep in name or name.endswith(".safetensors"):  # a checkpoint: two may share a file name
        safe += "-" + hashlib.sha256(os.path.realpath(name).encode()).hexdigest()[:8]
    if corruption:
        safe += "." + corruption.replace(":", "-")
    if out:
        return Path(out).with_name(f"{Path(out).stem}.{safe}{suffix}")
    root = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "mclx" / "probe"
    where = hashlib.sha256(os.path.realpath(t.data).encode()).hexdigest()[:8]
    return root / f"{t.name}-{where}.{safe}{suffix}"
