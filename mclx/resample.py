"""Streaming resampling, output equal to resampling the whole signal at once.

Two implementations of one rule: :class:`SoxrStream` (libsoxr, numpy) runs in the decoder
processes, which then need no torch at all; :class:`TorchStreamResampler` (a sinc kernel)
runs on the encoder's device when decoded blocks are resampled there (the GPU path). Both
emit :func:`resampled_length` samples for a signal. They agree closely, not exactly: the
filters differ (soxr's passband is flatter; the torch kernel starts to roll off earlier,
about -0.7 dB at 0.8 of the output Nyquist); tests state the tolerance.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Iterable, Iterator
from typing import TYPE_CHECKING, Any

import numpy as np

if TYPE_CHECKING:
    import torch

SOXR_QUALITY = "HQ"  # libsoxr's 20-bit "high quality" preset


def resampled_length(frames: int, orig_rate: int, new_rate: int) -> int:
    """Samples that ``frames`` input samples resample to: ceil(frames * new / orig)."""
    return -(-frames * new_rate // orig_rate)


class SoxrStream:
    """(frames,) float32 blocks at ``orig_rate`` -> blocks at ``new_rate`` (libsoxr, streaming)."""

    def __init__(self, orig_rate: int, new_rate: int) -> None:
        self.orig, self.new = orig_rate, new_rate
        self.stream: Any = None
        if orig_rate != new_rate:
            import soxr

            self.stream = soxr.ResampleStream(orig_rate, new_rate, 1, dtype="float32", quality=SOXR_QUALITY)
        self.frames_in = 0
        self.frames_out = 0

    def push(self, block: np.ndarray) -> np.ndarray:
        """(frames,) float32 -> (k,) float32 output samples that are final."""
        self.frames_in += len(block)
        out = block if self.stream is None else self.stream.resample_chunk(block, last=False)
        self.frames_out += len(out)
        return out

    def flush(self) -> np.ndarray:
        """The rest of the output, as if the signal ended here.

        libsoxr emits round(frames * new / orig) samples in all; the tail is padded with zeros
        (at most one sample) to :func:`resampled_length`, the torch resampler's count, so both
        paths cut the same windows.
        """
        empty = np.zeros(0, dtype=np.float32)
        out = empty if self.stream is None else self.stream.resample_chunk(empty, last=True)
        want = resampled_length(self.frames_in, self.orig, self.new) - self.frames_out
        out = out[:want] if len(out) >= want else np.concatenate([out, np.zeros(want - len(out), np.float32)])
        self.frames_out += len(out)
        return np.ascontiguousarray(out, dtype=np.float32)


def resampled_blocks(
    blocks: Iterable[tuple[int, np.ndarray]], rate: int | None
) -> Iterator[tuple[int, int, np.ndarray]]:
    """One file's decoded (native rate, block) pairs -> (native rate, native frames, block at ``rate``).

    The last item is the resampler's flush (0 native frames). ``rate`` None keeps the native rate.
    """
    resampler = None
    native = 0
    for native, block in blocks:
        if resampler is None:
            resampler = SoxrStream(native, rate or native)
        yield native, len(block), resampler.push(block)
    if resampler is not None:
        yield native, 0, resampler.flush()


class TorchStreamResampler:
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
            return _empty(self.device)  # on the blocks' device: it is concatenated with them
        total = self.pending_start + len(self.pending)
        lo = self.emitted - self.context - self.pending_start
        out = self._resample(self.pending[lo:])
        first = self.context * self.new // self.orig
        count = resampled_length(total, self.orig, self.new) - self.emitted * self.new // self.orig
        self.pending = None
        return out[first : first + count]


@functools.lru_cache(maxsize=32)
def _resample_transform(orig_rate: int, new_rate: int, device: str) -> torch.nn.Module:
    """One sinc kernel per (rates, device): building it is slow for rates with a small gcd."""
    import torchaudio

    return torchaudio.transforms.Resample(orig_rate, new_rate).to(device)


def _empty(device: torch.device | str) -> torch.Tensor:
    import torch

    return torch.zeros(0, device=device)
