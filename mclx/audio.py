"""Audio in small pieces: streamed decoding, streaming resampling, and the window rule.

Decoding uses soundfile (libsndfile) only, and this module imports torch lazily, so
decoder processes stay light. No function here holds a whole file in memory.
"""

from __future__ import annotations

import functools
import math
import os
from collections.abc import Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

from mclx.errors import DecodeError

if TYPE_CHECKING:
    import torch

BLOCK_FRAMES = 1 << 16
UNSUPPORTED = {".m4a": "AAC", ".aac": "AAC", ".mp4": "AAC", ".wma": "WMA", ".ape": "Monkey's Audio"}


def one_line(exc: BaseException) -> str:
    text = " ".join(str(exc).split()) or type(exc).__name__
    return text[:300]


def decode_blocks(path: str, block_frames: int = BLOCK_FRAMES) -> Iterator[tuple[int, np.ndarray]]:
    """Yield (sample_rate, mono block) pairs; blocks are (frames,) float32, at most ``block_frames``.

    Multi-channel audio is down-mixed by averaging channels. Raises DecodeError with a
    one-line reason for unreadable, empty or non-finite audio.
    """
    import soundfile as sf

    ext = os.path.splitext(path)[1].lower()
    if ext in UNSUPPORTED:
        raise DecodeError(
            f"{ext} ({UNSUPPORTED[ext]}) is not supported by libsndfile; convert to FLAC or WAV"
        )
    try:
        if os.path.getsize(path) == 0:
            raise DecodeError("empty file (0 bytes)")
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
                break
            # A matrix-vector product mixes channels about 2x faster than mean(axis=1), which
            # reduces over the short channel axis element by element.
            mono = block[:, 0] if block.shape[1] == 1 else block @ mix_weights(block.shape[1])
            if not np.isfinite(mono.sum(dtype=np.float64)):  # NaN or Inf anywhere shows in the sum
                raise DecodeError(f"non-finite samples (NaN or Inf) near frame {total}")
            total += len(mono)
            yield rate, np.ascontiguousarray(mono)
    if total == 0:
        raise DecodeError("no audio frames")


@functools.lru_cache(maxsize=16)
def mix_weights(channels: int) -> np.ndarray:
    """(channels,) float32 weights of the mono down-mix (the channel average)."""
    return np.full(channels, 1.0 / channels, dtype=np.float32)


class StreamResampler:
    """Resample a stream of blocks so that the output equals resampling the whole signal.

    Works by overlap: each input chunk is resampled with ``context`` samples of history and
    look-ahead (more than the sinc kernel's half-width) and the edges are cropped. Chunk
    boundaries fall on multiples of the reduced input rate, so output indices stay integral.
    Runs on whatever device the blocks are on.
    """

    def __init__(self, orig_rate: int, new_rate: int, device: torch.device | str = "cpu") -> None:
        g = math.gcd(orig_rate, new_rate)
        self.orig, self.new = orig_rate // g, new_rate // g
        self.identity = self.orig == self.new
        self.device = device
        self.transform: Any = None
        self.context = 0
        if not self.identity:
            self.transform = _resample_transform(orig_rate, new_rate, str(device))
            half_width = int(self.transform.width)  # input samples each side the kernel reaches
            self.context = self.orig * (half_width // self.orig + 2)
        self.pending: torch.Tensor | None = None  # input samples from (emitted - context)
        self.emitted = 0  # input index up to which output has been produced
        self.pending_start = 0  # absolute input index of pending[0] (may be negative: zeros)

    def _resample(self, segment: torch.Tensor) -> torch.Tensor:
        assert self.transform is not None
        return self.transform(segment.unsqueeze(0)).squeeze(0)

    def push(self, block: torch.Tensor) -> torch.Tensor:
        """(frames,) input block -> (k,) output samples that are final."""
        if self.identity:
            return block
        import torch

        if self.pending is None:
            self.pending_start = -self.context
            self.pending = torch.zeros(self.context, dtype=block.dtype, device=block.device)
        self.pending = torch.cat([self.pending, block])
        available = self.pending_start + len(self.pending) - self.context  # needs look-ahead
        end = (available // self.orig) * self.orig
        if end <= self.emitted:
            return block.new_zeros(0)
        lo = self.emitted - self.context - self.pending_start
        hi = end + self.context - self.pending_start
        out = self._resample(self.pending[lo:hi])
        first = self.context * self.new // self.orig
        count = (end - self.emitted) * self.new // self.orig
        result = out[first : first + count]
        self.emitted = end
        keep_from = self.emitted - self.context - self.pending_start
        self.pending = self.pending[keep_from:]
        self.pending_start = self.emitted - self.context
        return result

    def flush(self) -> torch.Tensor:
        """The remaining output, as if the signal ended here (zero-padded like a whole resample)."""
        if self.identity or self.pending is None:
            return self.pending.new_zeros(0) if self.pending is not None else _empty()
        total = self.pending_start + len(self.pending)
        lo = self.emitted - self.context - self.pending_start
        out = self._resample(self.pending[lo:])
        first = self.context * self.new // self.orig
        count = math.ceil(total * self.new / self.orig) - self.emitted * self.new // self.orig
        self.pending = None
        return out[first : first + count]


@functools.lru_cache(maxsize=32)
def _resample_transform(orig_rate: int, new_rate: int, device: str) -> torch.nn.Module:
    """One sinc kernel per (rates, device): building it is slow for rates with a small gcd."""
    import torchaudio

    return torchaudio.transforms.Resample(orig_rate, new_rate).to(device)


def _empty() -> torch.Tensor:
    import torch

    return torch.zeros(0)


@dataclass(frozen=True)
class Window:
    """One window of a file: sample offsets at the model rate, and the valid end."""

    start: int
    end: int  # exclusive; < start + window only for a zero-padded short file


def window_starts(total: int, window: int, hop: int) -> list[Window]:
    """The window rule of the store contract for a signal of ``total`` samples.

    Consecutive windows of ``window`` every ``hop``; when samples remain after the last full
    window, one more window aligned to the end; a signal shorter than a window gives one
    zero-padded window. Reference implementation for :class:`WindowCutter`.
    """
    if total <= 0:
        return []
    if total < window:
        return [Window(0, total)]
    wins = [Window(s, s + window) for s in range(0, total - window + 1, hop)]
    if wins[-1].end < total:
        wins.append(Window(total - window, total))
    return wins


class WindowCutter:
    """Cut a stream of samples into windows by :func:`window_starts`, keeping at most ~2 windows."""

    def __init__(self, window: int, hop: int) -> None:
        self.window, self.hop = window, hop
        self.buffer: torch.Tensor | None = None
        self.buffer_start = 0  # absolute index of buffer[0]
        self.next_start = 0
        self.total = 0
        self.last_end = 0  # end of the last emitted window

    def push(self, samples: torch.Tensor) -> tuple[list[Window], list[torch.Tensor]]:
        """(k,) samples -> windows now complete, each a (window,) tensor."""
        import torch

        self.buffer = samples if self.buffer is None else torch.cat([self.buffer, samples])
        self.total += len(samples)
        wins, chunks = [], []
        while self.next_start + self.window <= self.total:
            lo = self.next_start - self.buffer_start
            chunks.append(self.buffer[lo : lo + self.window])
            wins.append(Window(self.next_start, self.next_start + self.window))
            self.last_end = self.next_start + self.window
            self.next_start += self.hop
        keep = max(self.buffer_start, min(self.next_start, self.total - self.window))
        if keep > self.buffer_start:
            self.buffer = self.buffer[keep - self.buffer_start :].clone()
            self.buffer_start = keep
        return wins, chunks

    def finish(self) -> tuple[list[Window], list[torch.Tensor]]:
        """The final window: aligned to the end, or the zero-padded short file."""
        import torch

        if self.total == 0 or self.buffer is None:
            return [], []
        if self.total < self.window:
            padded = torch.zeros(self.window, dtype=self.buffer.dtype, device=self.buffer.device)
            padded[: self.total] = self.buffer
            return [Window(0, self.total)], [padded]
        if self.last_end < self.total:
            lo = self.total - self.window - self.buffer_start
            return [Window(self.total - self.window, self.total)], [self.buffer[lo : lo + self.window]]
        return [], []
