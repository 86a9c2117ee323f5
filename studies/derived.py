"""Tasks the studies derive from the corpus: a brightness descriptor and corrupted test clips.

Written under ``$MCLX_DATA/studies/`` (beside the corpus, never in the repository), once; the
same corpus gives the same files (no unseeded randomness).

- ``brightness``: every ``gamesrc`` clip with its brightness, the mean over voiced frames of
  log2 of the spectral centroid in Hz (gamesrc is levelled to -20 dBFS, so loudness says
  nothing; brightness does vary). Its train rows are SemiSupCon's regression signal; the whole
  file is a csv-layout regression task with gamesrc's splits, probed by r².
- ``<task>.<corruption>``: a csv-layout copy of a task whose train and valid rows are the
  original clips and whose test rows are corrupted copies: heads trained on clean clips are
  tested on corrupted ones. Corruptions: white noise at 10 and 0 dB SNR (seeded per clip), a
  2 kHz low-pass (brick-wall, in the frequency domain) and AAC at 24 kbit/s through PyAV.
"""

from __future__ import annotations

import csv
import hashlib
import io
import os
from collections.abc import Callable
from pathlib import Path

import numpy as np
import soundfile as sf

from studies.spec import Study

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


def corrupt(x: np.ndarray, rate: int, corruption: str, seed: int) -> np.ndarray:
    """(samples,) float32 -> the corrupted (samples,) float32."""
    if corruption.startswith("noise-"):
        snr_db = float(corruption.removeprefix("noise-").removesuffix("db"))
        power = float(np.mean(x.astype(np.float64) ** 2)) or 1e-12
        noise = np.random.default_rng(seed).standard_normal(len(x)) * np.sqrt(power / 10 ** (snr_db / 10))
        return (x + noise).astype(np.float32)
    if corruption == "lowpass-2k":
        spec = np.fft.rfft(x.astype(np.float64))
        spec[np.fft.rfftfreq(len(x), 1.0 / rate) > 2000.0] = 0
        return np.fft.irfft(spec, n=len(x)).astype(np.float32)
    if corruption == "aac-24k":
        return _aac_round_trip(x, rate, 24_000)
    raise ValueError(f"unknown corruption {corruption!r} (known: {', '.join(CORRUPTIONS)})")


def _aac_round_trip(x: np.ndarray, rate: int, bitrate: int) -> np.ndarray:
    """Encode to AAC in an MP4 container with PyAV and decode back; same length as ``x``."""
    import av

    buf = io.BytesIO()
    with av.open(buf, "w", format="mp4") as out:
        stream = out.add_stream("aac", rate=rate, layout="mono")
        stream.bit_rate = bitrate
        step = 1024
        for i in range(0, len(x), step):
            frame = av.AudioFrame.from_ndarray(
                x[None, i : i + step].astype(np.float32), format="flt", layout="mono"
            )
            frame.sample_rate = rate
            for packet in stream.encode(frame):
                out.mux(packet)
        for packet in stream.encode(None):
            out.mux(packet)
    buf.seek(0)
    with av.open(buf) as inp:
        decoded = np.concatenate(
            [f.to_ndarray().reshape(-1) for f in inp.decode(audio=0)]
        )  # mono, float planar
    y = np.zeros(len(x), dtype=np.float32)
    y[: min(len(x), len(decoded))] = decoded[: len(x)]
    return y


def _corrupted(source: Path, task: str, corruption: str, out: Path, log: Callable[[str], None]) -> None:
    from mclx.probe.tasks import load_task

    labels = out / "labels.csv"
    if labels.exists():
        return
    t = load_task(task, str(source), None)
    clips = out / "clips"
    clips.mkdir(parents=True, exist_ok=True)
    tests = sum(s == "test" for s in t.splits)
    log(f"{task}.{corruption}: corrupting {tests} test clips into {out}")
    rows = []
    for i, (path, label, split) in enumerate(zip(t.paths, t.labels, t.splits, strict=True)):
        if split != "test":
            rows.append((os.path.abspath(path), label, split))
            continue
        x, rate = _read_mono(path)
        seed = int.from_bytes(hashlib.sha1(f"{corruption}:{Path(path).name}".encode()).digest()[:4], "little")
        target = clips / f"{i:05d}-{Path(path).stem}.wav"
        sf.write(target, np.clip(corrupt(x, rate, corruption, seed), -1, 1), rate, subtype="FLOAT")
        rows.append((str(target), label, split))
    _write_rows(labels, rows)
