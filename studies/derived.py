"""Tasks the studies derive from the corpus: a brightness descriptor and corrupted test clips.

Written under ``$MCLX_DATA/studies/`` (beside the corpus, never in the repository), once; the
same corpus gives the same files (no unseeded randomness).

- ``brightness``: every ``gamesrc`` clip with its brightness, the mean over voiced frames of
  log2 of the spectral centroid in Hz (gamesrc is levelled to -20 dBFS, so loudness says
  nothing; brightness does vary). Its train rows are SemiSupCon's regression signal; the whole
  file is a csv-layout regression task with gamesrc's splits, probed by r².
- ``<task>.<corruption>``: a csv-layout copy of a task whose train and valid rows are the
  original clips and whose test rows are corrupted copies: heads trained on clean clips are
  tested on corrupted ones. Corruptions: those of :mod:`mclx.probe.corrupt` (what
  ``mclx probe --corrupt`` applies), named ``<kind>-<level>``: white noise at 10 and 0 dB SNR
  (seeded per clip), a 2 kHz brick-wall low-pass and AAC at 24 kbit/s through PyAV.
"""

from __future__ import annotations

import csv
import hashlib
import os
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import soundfile as sf

from studies.spec import Study

if TYPE_CHECKING:
    from mclx.probe.corrupt import Corruption

BRIGHTNESS = "brightness"
# A derived task whose clips are another task's is probed on that task's stores (embedded once).
SAME_CLIPS = {BRIGHTNESS: "gamesrc"}
CORRUPTIONS = ("noise-10db", "noise-0db", "lowpass-2k", "aac-24k")


def is_corrupted(task: str) -> bool:
    return "." in task


def root(data: Path) -> Path:
    return data / "studies"


def store_task(task: str) -> str:
    """The task whose stores hold ``task``'s clips: itself, or the task it takes its clips from."""
    return SAME_CLIPS.get(task, task)


def task_dirs(study: Study, data: Path) -> dict[str, Path]:
    """{task name: directory} of every task a study probes, derived ones included."""
    dirs = {t: data / t for t in study.tasks}
    for t in study.extra_tasks:
        dirs[t] = root(data) / t
    for t in study.tasks:
        for c in study.robustness:
            dirs[f"{t}.{c}"] = root(data) / "robust" / f"{t}.{c}"
    return dirs


def task_paths(task: str, directory: Path) -> list[str]:
    """The clips to embed for a task: all of them, or only the corrupted test clips (the clean
    ones are in the clean task's store, merged in by the runner)."""
    from mclx.probe.tasks import load_task

    t = load_task(task.split(".")[0], str(directory), None)
    if is_corrupted(task):
        return [p for p, s in zip(t.paths, t.splits, strict=True) if s == "test"]
    return list(t.paths)


def prepare(study: Study, data: Path, log: Callable[[str], None]) -> None:
    """Writes the derived tasks a study needs that are not there yet."""
    if BRIGHTNESS in study.extra_tasks:
        _brightness(data / "gamesrc", root(data) / BRIGHTNESS, log)
    for task in study.tasks:
        for c in study.robustness:
            _corrupted(data / task, task, c, root(data) / "robust" / f"{task}.{c}", log)


def brightness(x: np.ndarray, rate: int, frame: int = 2048) -> float:
    """Mean log2 spectral centroid (Hz) over the frames within 40 dB of the loudest; x: (samples,)."""
    n = len(x) // frame
    if n == 0:
        x, n = np.pad(x, (0, frame - len(x))), 1
    frames = x[: n * frame].reshape(n, frame) * np.hanning(frame)
    mag = np.abs(np.fft.rfft(frames, axis=1))  # (n, frame // 2 + 1)
    freqs = np.fft.rfftfreq(frame, 1.0 / rate)
    energy = mag.sum(axis=1)
    keep = energy > energy.max() * 10 ** (-40 / 20) if energy.max() > 0 else np.ones(n, bool)
    centroid = (mag[keep] * freqs).sum(axis=1) / np.maximum(energy[keep], 1e-12)
    return float(np.mean(np.log2(np.maximum(centroid, 20.0))))


def _read_mono(path: str) -> tuple[np.ndarray, int]:
    x, rate = sf.read(path, dtype="float32", always_2d=True)
    return x.mean(axis=1), rate


def _write_rows(out: Path, rows: list[tuple[str, str, str]]) -> None:
    tmp = out.with_suffix(".tmp")
    with open(tmp, "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["path", "label", "split"])
        w.writerows(rows)
    os.replace(tmp, out)


def _brightness(source: Path, out: Path, log: Callable[[str], None]) -> None:
    from mclx.probe.tasks import load_task

    labels = out / "labels.csv"
    if labels.exists():
        return
    out.mkdir(parents=True, exist_ok=True)
    t = load_task("gamesrc", str(source), None)
    log(f"brightness: computing the descriptor of {len(t.paths)} clips into {labels}")
    rows = []
    for path, split in zip(t.paths, t.splits, strict=True):
        x, rate = _read_mono(path)
        rows.append((os.path.abspath(path), f"{brightness(x, rate):.4f}", split))
    _write_rows(labels, rows)


def corruption(name: str) -> Corruption:
    """A study's corruption name, ``<kind>-<level>`` ("noise-10db", "lowpass-2k", "aac-24k"),
    as the :mod:`mclx.probe.corrupt` corruption that ``mclx probe --corrupt <kind>:<level>`` applies."""
    from mclx.errors import UsageError
    from mclx.probe.corrupt import parse_one

    kind, _, level = name.partition("-")
    try:
        return parse_one(f"{kind}:{level}")
    except UsageError as exc:
        reason = str(exc).removeprefix("--corrupt ")
        raise ValueError(f"robustness {name!r}: {reason} (e.g. {', '.join(CORRUPTIONS)})") from None


def _corrupted(source: Path, task: str, name: str, out: Path, log: Callable[[str], None]) -> None:
    from mclx.probe.tasks import load_task

    labels = out / "labels.csv"
    if labels.exists():
        return
    c = corruption(name)
    t = load_task(task, str(source), None)
    clips = out / "clips"
    clips.mkdir(parents=True, exist_ok=True)
    tests = sum(s == "test" for s in t.splits)
    log(f"{task}.{name}: corrupting {tests} test clips into {out}")
    rows = []
    for i, (path, label, split) in enumerate(zip(t.paths, t.labels, t.splits, strict=True)):
        if split != "test":
            rows.append((os.path.abspath(path), label, split))
            continue
        x, rate = _read_mono(path)
        # the studies' own seed (not mclx.probe.corrupt.clip_seed): the copies written before
        # the probe had --corrupt stay the ones a fresh corpus gets
        seed = int.from_bytes(hashlib.sha1(f"{name}:{Path(path).name}".encode()).digest()[:4], "little")
        target = clips / f"{i:05d}-{Path(path).stem}.wav"
        sf.write(target, np.clip(c.apply(x, rate, seed), -1, 1), rate, subtype="FLOAT")
        rows.append((str(target), label, split))
    _write_rows(labels, rows)
