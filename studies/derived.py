"""A task the studies derive from the corpus: a brightness descriptor.

Written under ``$MCLX_DATA/studies/`` (beside the corpus, never in the repository), once; the
same corpus gives the same files (no unseeded randomness).

- ``brightness``: every ``gamesrc`` clip with its brightness, the mean over voiced frames of
  log2 of the spectral centroid in Hz (gamesrc is levelled to -20 dBFS, so loudness says
  nothing; brightness does vary). Its train rows are SemiSupCon's regression signal; the whole
  file is a csv-layout regression task with gamesrc's splits, probed by r².

Robustness is not a derived task: the studies run ``mclx probe --corrupt`` (:mod:`studies.evidence`).
"""

from __future__ import annotations

import csv
import os
from collections.abc import Callable
from pathlib import Path

import numpy as np
import soundfile as sf

from studies.spec import Study

BRIGHTNESS = "brightness"
# A derived task whose clips are another task's is probed on that task's stores (embedded once).
SAME_CLIPS = {BRIGHTNESS: "gamesrc"}


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
    return dirs


def task_paths(task: str, directory: Path) -> list[str]:
    """The clips to embed for a task."""
    from mclx.probe.tasks import load_task

    return list(load_task(task, str(directory), None).paths)


def prepare(study: Study, data: Path, log: Callable[[str], None]) -> None:
    """Writes the derived tasks a study needs that are not there yet."""
    if BRIGHTNESS in study.extra_tasks:
        _brightness(data / "gamesrc", root(data) / BRIGHTNESS, log)


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
