"""Training data: the audio files of a config, and a cache of them decoded once.

Decoding compressed music is far slower than a training step, so every track is decoded
once, resampled to the model's rate, down-mixed to mono and stored as int16. The cache
directory (``data.cache``, else ``$MCLX_CACHE/train``, else ``~/.cache/mclx/train``) holds
one folder per sample rate, and in it a few large *chunks*: ``<name>.i16`` (tracks end to
end) and ``<name>.json`` (for each track: path, size, mtime, offset, length). A track is
found again by (path, size, mtime) at that rate, so any later run over any subset or
superset of the files decodes only what is new or changed. A chunk is committed every
``CHUNK_BYTES``, so an interrupted fill keeps what it decoded. Filling takes a file lock:
processes sharing a cache (torchrun ranks) wait for each other instead of decoding twice.
Files that fail to decode are not recorded and are retried by the next run.
"""

from __future__ import annotations

import contextlib
import csv
import json
import os
import shutil
import sys
import uuid
from collections.abc import Generator, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

import numpy as np

from mclx.config import Config, expand_path
from mclx.errors import ConfigError, DecodeError, UsageError, one_line
from mclx.fileio import atomic_write_bytes
from mclx.inputs import AUDIO_EXTENSIONS, walk_audio
from mclx.locks import locked

FORMAT = 1
CHUNK_BYTES = 1 << 28  # a kill loses at most this much decoded audio (2.3 h at 16 kHz)
IN_PROCESS_BYTES = 32 << 20  # less to decode than this: no decoder processes (they take seconds to start)
SPILL_BYTES = 64 << 20  # a track being decoded moves from memory to a temporary file beyond this

Key = tuple[str, int, int]  # (absolute path, size, mtime_ns)


@dataclass(frozen=True)
class TrackCache:
    """Decoded mono tracks at ``rate``: track i is ``chunks[chunk[i]][offsets[i]:+lengths[i]]``."""

    rate: int
    paths: list[str]
    chunks: list[np.ndarray]  # (samples,) int16 each, memory-mapped
    chunk: np.ndarray  # (T,) int64
    offsets: np.ndarray  # (T,) int64
    lengths: np.ndarray  # (T,) int64
    skipped: list[tuple[str, str]]  # (path, reason) of the files that could not be used

    def segments(self, tracks: np.ndarray, starts: np.ndarray, length: int) -> np.ndarray:
        """(M,) track indices and (M,) starts -> (M, length) float32 in [-1, 1), zero past a track's end.

        One contiguous slice per row: gathering with an (M, length) index array is ~60x slower.
        """
        out = np.zeros((len(tracks), length), dtype=np.float32)
        for row, (t, s) in enumerate(zip(tracks.tolist(), starts.tolist(), strict=True)):
            n = min(length, int(self.lengths[t]) - s)
            if n > 0:
                o = int(self.offsets[t]) + s
                out[row, :n] = self.chunks[int(self.chunk[t])][o : o + n]
        out *= 1.0 / 32768.0
        return out


def list_audio(config: Config, audio: Sequence[Path]) -> list[str]:
    """Audio files named by ``data.audio`` (its items as written; ``audio``: each expanded, as the
    plan resolved them): directories, files, or CSV manifests with a `path` column."""
    files: list[str] = []
    for item, path in zip(config.data.audio, audio, strict=True):
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
    return sorted(dict.fromkeys(os.path.abspath(f) for f in files))


def build_cache(files: list[str], rate: int, root: Path, min_samples: int, quiet: bool = False) -> TrackCache:
    """The tracks of ``files`` at ``rate``, decoding those the cache under ``root`` lacks.

    Tracks keep the order of ``files``; unreadable ones and those shorter than
    ``min_samples`` are left out and listed in ``skipped``.
    """
    directory = root / f"{rate}hz"
    try:
        directory.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise UsageError(f"cache {directory}: {one_line(exc)}") from None
    keys: dict[str, Key] = {}
    failed: dict[str, str] = {}
    for f in files:
        try:
            st = os.stat(f)
            keys[f] = (os.path.abspath(f), st.st_size, st.st_mtime_ns)
        except OSError as exc:
            failed[f] = one_line(exc)
    found = _scan(directory)
    if any(k not in found for k in keys.values()):
        with _lock(directory, quiet):
            found = _scan(directory)  # another process may have filled it meanwhile
            missing = [f for f, k in keys.items() if k not in found]
            if missing:
                _remove_orphans(directory)
                failed |= _fill(directory, missing, keys, rate, quiet)
                found = _scan(directory)
    maps: dict[str, int] = {}
    chunks: list[np.ndarray] = []
    paths, rows, skipped = [], [], []
    for f in files:
        hit = found.get(keys[f]) if f in keys else None
        if hit is None:
            skipped.append((f, failed.get(f, "not in the cache after decoding")))
        elif hit[2] < min_samples:
            skipped.append((f, f"shorter than {min_samples / rate:g} s"))
        else:
            if hit[0] not in maps:
                maps[hit[0]] = len(chunks)
                chunks.append(_open_chunk(directory / f"{hit[0]}.i16"))
            paths.append(f)
            rows.append((maps[hit[0]], hit[1], hit[2]))
    table = np.asarray(rows, dtype=np.int64).reshape(-1, 3)
    return TrackCache(rate, paths, chunks, table[:, 0], table[:, 1], table[:, 2], skipped)


def _open_chunk(path: Path) -> np.ndarray:
    if path.stat().st_size == 0:
        return np.zeros(0, dtype=np.int16)
    return np.memmap(path, dtype=np.int16, mode="r")


def _scan(directory: Path) -> dict[Key, tuple[str, int, int]]:
    """{(path, size, mtime_ns): (chunk name, offset, length)} of every committed chunk."""
    found: dict[Key, tuple[str, int, int]] = {}
    for index in sorted(directory.glob("*.json")):
        try:
            meta = json.loads(index.read_text())
            if meta.get("format") != FORMAT or not (directory / f"{index.stem}.i16").exists():
                continue
            for path, size, mtime, offset, length in meta["tracks"]:
                found.setdefault((path, size, mtime), (index.stem, offset, length))
        except (OSError, ValueError, KeyError, TypeError):
            continue  # a damaged index: its tracks are decoded again
    return found


def _remove_orphans(directory: Path) -> None:
    """Audio of chunks whose index was never written (a killed fill); called with the lock held."""
    for path in directory.glob("*.tmp"):
        path.unlink(missing_ok=True)
    for path in directory.glob("*.i16"):
        if not path.with_suffix(".json").exists():
            path.unlink(missing_ok=True)


@contextlib.contextmanager
def _lock(directory: Path, quiet: bool) -> Iterator[None]:
    def say_why() -> None:
        if not quiet:
            print(f"mclx train: waiting for another process filling the cache {directory}", file=sys.stderr)

    with locked(directory / ".lock", on_wait=say_why):
        yield


class _Track:
    """One track's int16 samples as they are decoded: in memory up to SPILL_BYTES, then in a
    temporary file next to the chunks, so a 10-hour mix costs no more memory than a song."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory
        self.parts: list[np.ndarray] = []
        self.samples = 0
        self.spill: BinaryIO | None = None

    def add(self, block: np.ndarray) -> None:
        """Append (k,) int16 samples."""
        self.samples += len(block)
        if self.spill is not None:
            self.spill.write(block.tobytes())
            return
        self.parts.append(block)
        if 2 * self.samples > SPILL_BYTES:
            self.spill = open(self.directory / f".track-{uuid.uuid4().hex[:16]}.tmp", "w+b")  # noqa: SIM115
            for part in self.parts:
                self.spill.write(part.tobytes())
            self.parts = []

    def write_to(self, f: BinaryIO) -> None:
        """Copy the samples to ``f`` (a block at a time from the spill file), then drop them."""
        if self.spill is not None:
            self.spill.seek(0)
            shutil.copyfileobj(self.spill, f, 1 << 20)
        for part in self.parts:
            f.write(part.tobytes())
        self.discard()

    def discard(self) -> None:
        self.parts = []
        if self.spill is not None:
            self.spill.close()
            Path(self.spill.name).unlink(missing_ok=True)
            self.spill = None


class _ChunkWriter:
    """Appends decoded tracks to a new chunk; commits it (audio, then index) every CHUNK_BYTES."""

    def __init__(self, directory: Path, rate: int) -> None:
        self.directory, self.rate = directory, rate
        self._start()

    def _start(self) -> None:
        self.name = f"chunk-{uuid.uuid4().hex[:16]}"
        self.tmp = self.directory / f"{self.name}.i16.tmp"
        self.f = open(self.tmp, "wb")  # noqa: SIM115 - closed in commit()
        self.tracks: list[tuple[str, int, int, int, int]] = []
        self.offset = 0

    def add(self, key: Key, track: _Track) -> None:
        samples = track.samples
        track.write_to(self.f)
        self.tracks.append((*key, self.offset, samples))
        self.offset += samples
        if 2 * self.offset >= CHUNK_BYTES:
            self.commit()
            self._start()

    def commit(self) -> None:
        self.f.flush()
        os.fsync(self.f.fileno())
        self.f.close()
        if not self.tracks:
            self.tmp.unlink(missing_ok=True)
            return
        os.replace(self.tmp, self.directory / f"{self.name}.i16")
        index = {"format": FORMAT, "rate": self.rate, "tracks": self.tracks}
        atomic_write_bytes(self.directory / f"{self.name}.json", json.dumps(index).encode())


def _fill(directory: Path, files: list[str], keys: dict[str, Key], rate: int, quiet: bool) -> dict[str, str]:
    """Decode ``files`` into new chunks; returns {path: reason} of those that failed."""
    from tqdm import tqdm

    failed: dict[str, str] = {}
    bar = tqdm(total=len(files), unit="file", desc="decoding into the cache", file=sys.stderr,
               disable=quiet or not sys.stderr.isatty())  # fmt: skip
    try:
        writer = _ChunkWriter(directory, rate)
        try:
            in_process = sum(keys[f][1] for f in files) < IN_PROCESS_BYTES
            decoded = (_decode_here if in_process else _decode_in_pool)(files, rate, directory)
            with contextlib.closing(decoded):  # stops the decoder processes on any exception
                for i, track, reason in decoded:
                    if track is None:
                        failed[files[i]] = reason
                    else:
                        writer.add(keys[files[i]], track)
                    bar.update(1)
        finally:
            writer.commit()  # what was decoded stays, even when interrupted
    except OSError as exc:
        raise UsageError(f"cache {directory}: {one_line(exc)}") from None
    finally:
        bar.close()
    return failed


# (file index, the decoded track or None, reason of a failure)
Decoded = Generator[tuple[int, _Track | None, str], None, None]


def _to_int16(block: np.ndarray) -> np.ndarray:
    return np.clip(np.round(block * 32767.0), -32768, 32767).astype(np.int16)


def _decode_here(files: list[str], rate: int, directory: Path) -> Decoded:
    """Decode in this process (small jobs): streamed blocks, resampled as they come."""
    from mclx.audio import decode_blocks
    from mclx.resample import resampled_blocks

    for i, path in enumerate(files):
        track = _Track(directory)
        try:
            for _, _, block in resampled_blocks(decode_blocks(path), rate):
                track.add(_to_int16(block))
        except Exception as exc:  # a decoder bug must not stop the run either: report the file
            track.discard()
            reason = str(exc) if isinstance(exc, DecodeError) else f"{type(exc).__name__}: {one_line(exc)}"
            yield i, None, reason
            continue
        yield i, track, ""


def _decode_in_pool(files: list[str], rate: int, directory: Path) -> Decoded:
    """Decode with the embed pipeline's decoder processes (streamed, resampled in the decoders)."""
    from mclx.decoders import DecoderPool, default_workers

    tracks: dict[int, _Track] = {}
    pool = DecoderPool(files, list(range(len(files))), default_workers(), resample_to=rate)
    try:
        while pool.busy:
            for ev in pool.poll(0.5):
                if ev.kind == "start":
                    tracks[ev.index] = _Track(directory)
                elif ev.kind == "block" and ev.block is not None:
                    tracks[ev.index].add(_to_int16(ev.block))
                elif ev.kind == "end":
                    yield ev.index, tracks.pop(ev.index, None) or _Track(directory), ""
                elif ev.kind == "error":
                    failed = tracks.pop(ev.index, None)
                    if failed is not None:
                        failed.discard()
                    yield ev.index, None, ev.reason
    finally:
        pool.close()
        for track in tracks.values():
            track.discard()
