"""Synthetic audio for the tests and the benchmarks: signals, and files written in every format.

Nothing encoded is committed: every file a test or a benchmark reads is made on the fly, with
libsndfile (``FORMATS``) or PyAV's encoders for the FFmpeg formats (:func:`write_encoded`).
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np

FORMATS = {
    "wav": ("WAV", "PCM_16"),
    "flac": ("FLAC", "PCM_16"),
    "ogg": ("OGG", "VORBIS"),
    "opus": ("OGG", "OPUS"),
    "mp3": ("MP3", "MPEG_LAYER_III"),
    "aiff": ("AIFF", "PCM_16"),
}


def tone(seconds: float, rate: int, freq: float = 440.0, channels: int = 1, seed: int = 0) -> np.ndarray:
    """(frames, channels) float32: a sine plus a little noise, a different gain per channel."""
    rng = np.random.default_rng(seed)
    t = np.arange(round(seconds * rate)) / rate
    x = 0.4 * np.sin(2 * np.pi * freq * t) + 0.01 * rng.standard_normal(len(t))
    return np.stack([x * (1.0 - 0.2 * c) for c in range(channels)], axis=1).astype(np.float32)


WriteAudio = Callable[..., Path]

# (file name, codec): every kind of file the FFmpeg decoder is there for.
ENCODED = [
    ("aac.m4a", None),
    ("alac.m4a", "alac"),
    ("aac.mp4", None),
    ("opus.webm", None),
    ("wma2.wma", None),
]
RATE = 44100


def music_like(seconds: float, rate: int = RATE, seed: int = 0) -> np.ndarray:
    """(frames, 2) float32: a few notes with harmonics, their onsets and some noise."""
    rng = np.random.default_rng(seed)
    t = np.arange(int(seconds * rate)) / rate
    left = np.zeros_like(t)
    for k, f0 in enumerate(rng.uniform(110, 880, size=6)):
        envelope = np.exp(-3 * ((t - k * seconds / 6) % (seconds / 3)))
        left += envelope * sum(np.sin(2 * np.pi * f0 * h * t) / h for h in range(1, 5))
    left = 0.15 * left + 0.01 * rng.standard_normal(len(t))
    return np.stack([left, 0.8 * left], axis=1).astype(np.float32)


# extension -> (container format, default codec)
CONTAINERS = {
    ".m4a": ("ipod", "aac"),
    ".m4b": ("ipod", "aac"),
    ".mp4": ("mp4", "aac"),
    ".webm": ("webm", "libopus"),
    ".wma": ("asf", "wmav2"),
}
OPUS_RATE = 48000  # the only input rate every Opus encoder accepts


def write_encoded(
    path: str | Path, audio: np.ndarray, rate: int, codec: str | None = None, bitrate: int = 192_000
) -> Path:
    """Encode ``audio``, (frames, channels) float32 in [-1, 1], into ``path`` by its extension.

    ``codec`` overrides the container's default (e.g. "alac" in an .m4a). Opus is encoded
    at 48 kHz (resampled by FFmpeg); every other codec keeps ``rate``.
    """
    import av

    path = Path(path)
    container_format, default_codec = CONTAINERS[path.suffix.lower()]
    codec = codec or default_codec
    frames, channels = audio.shape
    layout = {1: "mono", 2: "stereo"}.get(channels)
    if layout is None:
        raise ValueError(f"write_encoded: {channels} channels; use 1 or 2")
    with av.open(str(path), "w", format=container_format) as out:
        stream_rate = OPUS_RATE if codec in ("libopus", "opus") else rate
        stream = out.add_stream(codec, rate=stream_rate, layout=layout)
        if codec != "alac":  # a lossless codec takes no bit rate
            stream.bit_rate = bitrate
        ctx = stream.codec_context
        convert = av.AudioResampler(
            format=ctx.codec.audio_formats[0].name,
            layout=layout,
            rate=stream_rate,
            frame_size=ctx.frame_size or None,
        )
        block = 1 << 14
        for start in range(0, frames, block):
            piece = np.ascontiguousarray(audio[start : start + block], dtype=np.float32)
            frame = av.AudioFrame.from_ndarray(piece.reshape(1, -1), format="flt", layout=layout)
            frame.sample_rate = rate
            for converted in convert.resample(frame):
                out.mux(stream.encode(converted))
        for converted in convert.resample(None):
            out.mux(stream.encode(converted))
        out.mux(stream.encode(None))
    return path
