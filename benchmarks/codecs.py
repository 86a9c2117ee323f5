"""Write synthetic audio in FFmpeg formats (M4A/AAC, M4A/ALAC, MP4, WebM/Opus, WMA) with PyAV.

Used by the benchmarks and the tests to make such files on the fly, so no encoded binary
test data is committed.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

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
