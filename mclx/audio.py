"""Audio files in small pieces: streamed, down-mixed decoding.

libsndfile (soundfile) reads what it can (WAV, FLAC, Ogg Vorbis/Opus, MP3, AIFF, AU);
FFmpeg through PyAV reads the containers it cannot (M4A/MP4 with AAC or ALAC, WebM/Matroska,
WMA, ...); :mod:`mclx.formats` says which extension goes where. Neither this module nor
its callers in the decoder processes import torch, and no function here holds a whole file
in memory.
"""

from __future__ import annotations

import functools
import os
from collections.abc import Iterator
from typing import Any

import numpy as np

from mclx.errors import DecodeError, one_line
from mclx.formats import DRM_EXTENSIONS, FFMPEG_EXTENSIONS, SNDFILE_EXTENSIONS

BLOCK_FRAMES = 1 << 16


def decode_blocks(path: str, block_frames: int = BLOCK_FRAMES) -> Iterator[tuple[int, np.ndarray]]:
    """Yield (sample_rate, mono block) pairs; blocks are (frames,) float32, at most ``block_frames``.

    Multi-channel audio is down-mixed by averaging channels. The decoder is chosen by
    extension (libsndfile, else FFmpeg); a file whose extension neither claims is tried with
    libsndfile, then FFmpeg. Raises DecodeError with a one-line reason for unreadable, empty,
    protected or non-finite audio.
    """
    ext = os.path.splitext(path)[1].lower()
    if ext in DRM_EXTENSIONS:
        raise DecodeError(f"{ext}: {DRM_EXTENSIONS[ext]} cannot be decoded")
    try:
        if os.path.getsize(path) == 0:
            raise DecodeError("empty file (0 bytes)")
    except OSError as exc:
        raise DecodeError(f"cannot open: {exc.strerror or one_line(exc)}") from None
    if ext in FFMPEG_EXTENSIONS:
        blocks = _ffmpeg_blocks(path, block_frames)
    elif ext in SNDFILE_EXTENSIONS:
        blocks = _sndfile_blocks(path, block_frames)
    else:
        blocks = _any_blocks(path, block_frames)
    total = 0
    for rate, mono in blocks:
        if not np.isfinite(mono.sum(dtype=np.float64)):  # NaN or Inf anywhere shows in the sum
            raise DecodeError(f"non-finite samples (NaN or Inf) near frame {total}")
        total += len(mono)
        yield rate, mono
    if total == 0:
        raise DecodeError("no audio frames")


def _any_blocks(path: str, block_frames: int) -> Iterator[tuple[int, np.ndarray]]:
    """An unknown extension: libsndfile if it recognises the file, else FFmpeg."""
    sndfile = _sndfile_blocks(path, block_frames)
    try:
        head = next(sndfile, None)
    except DecodeError:
        try:
            yield from _ffmpeg_blocks(path, block_frames)
        except DecodeError as exc:
            raise DecodeError(f"not audio that libsndfile or FFmpeg can read ({exc})") from None
        return
    if head is not None:
        yield head
        yield from sndfile


def _sndfile_blocks(path: str, block_frames: int) -> Iterator[tuple[int, np.ndarray]]:
    import soundfile as sf

    try:
        f = sf.SoundFile(os.fsencode(path))  # bytes: names that are not UTF-8 open too
    except sf.LibsndfileError as exc:
        raise DecodeError(f"unreadable audio: {getattr(exc, 'error_string', '') or one_line(exc)}") from None
    except OSError as exc:
        raise DecodeError(f"cannot open: {exc.strerror or one_line(exc)}") from None
    total = 0
    with f:
        rate = int(f.samplerate)
        if rate <= 0:
            raise DecodeError(f"invalid sample rate {rate}")
        while True:
            try:
                block = f.read(block_frames, dtype="float32", always_2d=True)
            except Exception as exc:  # libsndfile reports truncation as various errors
                raise DecodeError(f"decoding failed after {total} frames: {one_line(exc)}") from None
            if len(block) == 0:
                return
            total += len(block)
            yield rate, _downmix(block.T)


def _ffmpeg_blocks(path: str, block_frames: int) -> Iterator[tuple[int, np.ndarray]]:
    """The first audio stream through FFmpeg, regrouped into blocks of ``block_frames``."""
    import av

    try:
        container = av.open(path, metadata_errors="ignore")
    except UnicodeEncodeError:  # a name that is not UTF-8: hand FFmpeg an open file instead
        container = _open_av_file(path)
    except av.FFmpegError as exc:
        raise DecodeError(f"unreadable audio: {_av_reason(exc)}") from None
    except OSError as exc:
        raise DecodeError(f"cannot open: {exc.strerror or one_line(exc)}") from None
    with container:
        if not container.streams.audio:
            raise DecodeError("no audio stream in the file")
        stream = container.streams.audio[0]
        if stream.codec_context is None or stream.codec_context.name in ("none", ""):
            raise DecodeError("the audio stream's codec is not one FFmpeg can decode")
        # Any sample format (s16, s32p, fltp, ...) to planar float32; rate and layout unchanged.
        to_float = av.AudioResampler(format="fltp")
        pending: list[np.ndarray] = []
        held = 0
        rate = 0
        total = 0
        try:
            for packet in container.demux(stream):
                for frame in packet.decode():
                    if rate == 0:
                        rate = int(frame.sample_rate)
                        if rate <= 0:
                            raise DecodeError(f"invalid sample rate {rate}")
                    elif frame.sample_rate != rate:
                        raise DecodeError(f"sample rate changes from {rate} to {frame.sample_rate} Hz")
                    for converted in to_float.resample(frame):
                        mono = _downmix(converted.to_ndarray())
                        pending.append(mono)
                        held += len(mono)
                    while held >= block_frames:
                        block, pending, held = _take(pending, block_frames)
                        total += len(block)
                        yield rate, block
        except av.FFmpegError as exc:
            raise DecodeError(f"decoding failed after {total} frames: {_av_reason(exc)}") from None
        for converted in to_float.resample(None):  # whatever the converter still holds
            pending.append(_downmix(converted.to_ndarray()))
        while pending:
            block, pending, held = _take(pending, block_frames)
            if len(block):
                yield rate, block


def _open_av_file(path: str) -> Any:
    import av

    handle = open(os.fsencode(path), "rb")  # noqa: SIM115 - PyAV closes it with the container
    try:
        return av.open(handle, metadata_errors="ignore")
    except av.FFmpegError as exc:
        handle.close()
        raise DecodeError(f"unreadable audio: {_av_reason(exc)}") from None


def _av_reason(exc: BaseException) -> str:
    """FFmpeg's message without the file name (the caller shows the path as the user gave it)."""
    reason = getattr(exc, "strerror", None) or one_line(exc)
    return " ".join(str(reason).split())[:300]


def _take(parts: list[np.ndarray], frames: int) -> tuple[np.ndarray, list[np.ndarray], int]:
    """The first ``frames`` samples of ``parts`` (fewer at the end) and what remains."""
    joined = parts[0] if len(parts) == 1 else np.concatenate(parts)
    block, rest = joined[:frames], joined[frames:]
    return np.ascontiguousarray(block), ([rest] if len(rest) else []), len(rest)


def _downmix(planar: np.ndarray) -> np.ndarray:
    """(channels, frames) float32 -> (frames,) float32, the channel average."""
    if planar.shape[0] == 1:
        return np.ascontiguousarray(planar[0], dtype=np.float32)
    # A vector-matrix product mixes channels about 2x faster than mean(axis=0).
    return np.ascontiguousarray(mix_weights(planar.shape[0]) @ planar, dtype=np.float32)


@functools.lru_cache(maxsize=16)
def mix_weights(channels: int) -> np.ndarray:
    """(channels,) float32 weights of the mono down-mix (the channel average)."""
    return np.full(channels, 1.0 / channels, dtype=np.float32)
