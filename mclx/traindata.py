"""Training data: a cache of decoded tracks, their labels, and batches of segments.

Decoding compressed music is far slower than a training step, so every track is decoded
once, resampled to the model's rate, and stored as int16 in one flat file (``audio.i16``)
with an index (``index.json``) in a cache directory keyed by the files (path, size,
mtime) and the rate. Training memory-maps it and cuts segments at random places. The cache
lives in ``data.cache``, else ``$MCLX_CACHE/train``, else ``~/.cache/mclx/train``; a run
with the same files and rate reuses it.
"""

from __future__ import annotations

import csv
import hashlib
import json
import os
import sys
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from mclx.checkpoint import atomic_write_bytes
from mclx.config import Config, expand_path
from mclx.errors import ConfigError
from mclx.inputs import AUDIO_EXTENSIONS, walk_audio


@dataclass(frozen=True)
class TrackCache:
    """Decoded mono tracks at ``rate``: ``audio`` (total,) int16, track i at offsets[i]:+lengths[i]."""

    directory: Path
    rate: int
    paths: list[str]
    offsets: np.ndarray  # (T,) int64
    lengths: np.ndarray  # (T,) int64
    audio: np.ndarray  # (total,) int16, memory-mapped
    skipped: list[tuple[str, str]]  # (path, reason) of the files that could not be used

    def segments(self, tracks: np.ndarray, starts: np.ndarray, length: int) -> np.ndarray:
        """(M,) track indices and (M,) starts -> (M, length) float32, zero past a track's end."""
        pos = starts[:, None] + np.arange(length)[None, :]  # (M, length)
        valid = pos < self.lengths[tracks][:, None]
        flat = self.offsets[tracks][:, None] + np.minimum(pos, self.lengths[tracks][:, None] - 1)
        return np.where(valid, self.audio[flat], 0).astype(np.float32) / 32768.0


def cache_root(config: Config, base: Path | None = None) -> Path:
    """The cache directory; a relative ``data.cache`` is taken from the config file's folder."""
    if config.data.cache:
        return expand_path(config.data.cache, base)
    if os.environ.get("MCLX_CACHE"):
        return Path(os.environ["MCLX_CACHE"]) / "train"
    return Path.home() / ".cache" / "mclx" / "train"


def list_audio(config: Config, base: Path | None) -> list[str]:
    """Audio files named by ``data.audio``: directories, files, or CSV manifests with a `path` column."""
    files: list[str] = []
    for item in config.data.audio:
        path = expand_path(item, base)
        if path.is_dir():
            files += walk_audio(str(path))
        elif path.suffix.lower() == ".csv" and path.is_file():
            with open(path, newline="") as f:
                reader = csv.DictReader(f)
                if "path" not in (reader.fieldnames or []):
                    raise ConfigError(f"data.audio: {item} has no 'path' column")
                split = config.data.split
                files += [
                    str(expand_path(row["path"], path.parent))
                    for row in reader
                    if not split or row.get("split", split) in (split, "")
                ]
        elif path.is_file() and path.suffix.lower() in AUDIO_EXTENSIONS:
            files.append(str(path))
        else:
            raise ConfigError(f"data.audio: {item} ({path}) is not an audio file, directory or CSV manifest")
    if not files:
        raise ConfigError(f"data.audio: no audio files in {', '.join(config.data.audio)}")
    return sorted(dict.fromkeys(files))


def build_cache(files: list[str], rate: int, root: Path, min_samples: int, quiet: bool = False) -> TrackCache:
    """Decode ``files`` once into the cache (or open the existing one)."""
    keys = []
    for f in files:
        st = os.stat(f)
        keys.append([f, st.st_size, st.st_mtime_ns])
    key = hashlib.sha1(json.dumps([keys, rate]).encode()).hexdigest()[:16]
    directory = root / key
    index_path = directory / "index.json"
    if not index_path.exists():
        _decode_into(directory, files, rate, min_samples, quiet)
    index = json.loads(index_path.read_text())
    total = int(sum(index["lengths"]))
    audio = np.memmap(directory / "audio.i16", dtype=np.int16, mode="r", shape=(max(total, 1),))
    return TrackCache(
        directory,
        rate,
        index["paths"],
        np.asarray(index["offsets"], dtype=np.int64),
        np.asarray(index["lengths"], dtype=np.int64),
        audio,
        [(str(p), str(r)) for p, r in index["skipped"]],
    )


def _decode_into(directory: Path, files: list[str], rate: int, min_samples: int, quiet: bool) -> None:
    """Decode with the embed pipeline's decoder pool (streamed, resampled in the decoders)."""
    from tqdm import tqdm

    from mclx.decoders import DecoderPool, default_workers

    directory.mkdir(parents=True, exist_ok=True)
    buffers: dict[int, list[np.ndarray]] = {}
    done: dict[int, np.ndarray] = {}
    skipped: list[tuple[str, str]] = []
    pool = DecoderPool(files, list(range(len(files))), default_workers("cpu"), resample_to=rate)
    bar = tqdm(total=len(files), unit="file", desc="decoding into the cache", file=sys.stderr,
               disable=quiet or not sys.stderr.isatty())  # fmt: skip
    try:
        while pool.busy:
            for ev in pool.poll(0.5):
                if ev.kind == "start":
                    buffers[ev.index] = []
                elif ev.kind == "block" and ev.block is not None:
                    pcm = np.clip(np.round(ev.block * 32767.0), -32768, 32767).astype(np.int16)
                    buffers[ev.index].append(pcm)
                elif ev.kind == "end":
                    track = np.concatenate(buffers.pop(ev.index) or [np.zeros(0, np.int16)])
                    if len(track) < min_samples:
                        skipped.append((files[ev.index], f"shorter than {min_samples / rate:g} s"))
                    else:
                        done[ev.index] = track
                    bar.update(1)
                else:
                    buffers.pop(ev.index, None)
                    skipped.append((files[ev.index], ev.reason))
                    bar.update(1)
    finally:
        pool.close()
        bar.close()
    order = sorted(done)
    lengths = [len(done[i]) for i in order]
    tmp = directory / "audio.i16.tmp"
    with open(tmp, "wb") as f:
        for i in order:
            f.write(done.pop(i).tobytes())
    os.replace(tmp, directory / "audio.i16")
    offsets = np.concatenate([[0], np.cumsum(lengths)[:-1]]).astype(int).tolist() if lengths else []
    index = {"rate": rate, "paths": [files[i] for i in order], "offsets": offsets, "lengths": lengths,
             "skipped": skipped}  # fmt: skip
    atomic_write_bytes(directory / "index.json", json.dumps(index).encode())
    for path, reason in skipped:
        print(f"mclx train: skipped {path}: {reason}", file=sys.stderr)


@dataclass(frozen=True)
class Labels:
    """Per-track supervision (rows follow the cache's tracks).

    kind "multiclass": ``values`` (T,) int64, -1 unlabelled; "multilabel": (T, C) multi-hot,
    all-zero unlabelled; "regression": (T,) float64, NaN unlabelled; "similarity": (T, K)
    label vectors, all-zero unlabelled.
    """

    kind: str
    values: np.ndarray
    names: list[str]  # class or tag names ([] for regression and similarity)
    labelled: int  # tracks that kept a label


def read_labels(config: Config, base: Path | None, paths: list[str], kind: str) -> Labels:
    """Labels of the cached tracks from ``data.labels`` (rows of split 'train' or without split)."""
    path = expand_path(config.data.labels, base)
    if not path.is_file():
        raise ConfigError(f"data.labels: {config.data.labels} ({path}) does not exist")
    index = {os.path.realpath(p): i for i, p in enumerate(paths)}
    raw: dict[int, str] = {}
    with open(path, newline="") as f:
        reader = csv.DictReader(f)
        if not {"path", "label"} <= set(reader.fieldnames or []):
            raise ConfigError(f"data.labels: {path} needs the columns path,label[,split]")
        for row in reader:
            if row.get("split", "train") not in ("train", ""):
                continue  # never pretrain on the labels of evaluation splits
            i = index.get(os.path.realpath(expand_path(row["path"], path.parent)))
            if i is not None:
                raw[i] = row["label"]
    if not raw:
        raise ConfigError(f"data.labels: no path in {path} matches the audio of data.audio")
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
        vectors = [np.array([float(x) for x in raw[i].split(";")]) for i in sorted(raw)]
        dim = len(vectors[0])
        sim = np.zeros((n, dim), dtype=np.float32)
        for i, vec in zip(sorted(raw), vectors, strict=True):
            if len(vec) != dim:
                raise ValueError(f"label vectors of different lengths ({dim} and {len(vec)})")
            sim[i] = vec
        return Labels(kind, sim, [], len(raw))
    except ValueError as exc:
        raise ConfigError(f"data.labels: {path}: labels do not fit loss.target = {kind!r} ({exc})") from None


def _labelled_subset(indices: list[int], paths: list[str], fraction: float, seed: int) -> list[int]:
    """A fixed fraction of the labelled tracks, chosen by a seeded hash of their paths."""
    ranked = sorted(indices, key=lambda i: hashlib.sha1(f"{seed}:{paths[i]}".encode()).hexdigest())
    return sorted(ranked[: round(fraction * len(ranked))])
