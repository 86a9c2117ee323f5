"""One file decoded and cut into windows on a Ray worker, as a local run on the CPU does it."""

from __future__ import annotations

import math
from collections.abc import Iterator
from typing import Any

import numpy as np

from mclx.audio import decode_blocks, one_line
from mclx.errors import DecodeError
from mclx.resample import resampled_blocks
from mclx.windows import Window, WindowCutter


class FileWindows:
    """One file decoded and cut into windows exactly as a local run on the CPU does it.

    Iterating yields ``(Window, (window,) float32 samples)`` at the model's rate: streamed
    decoding (:func:`mclx.audio.decode_blocks`), libsoxr resampling as in the decoder processes,
    then :class:`mclx.windows.WindowCutter`. ``duration_s`` is set once iteration ends. Raises
    DecodeError with a one-line reason.
    """

    def __init__(self, path: str, rate: int, window: int, hop: int) -> None:
        self.path, self.rate, self.window, self.hop = path, rate, window, hop
        self.duration_s = math.nan

    def __iter__(self) -> Iterator[tuple[Window, np.ndarray]]:
        import torch

        cutter = WindowCutter(self.window, self.hop)
        frames, rate = 0, 0
        for native, n, block in resampled_blocks(decode_blocks(self.path), self.rate):
            frames, rate = frames + n, native
            if len(block):
                yield from _as_numpy(cutter.push(torch.from_numpy(block)))
        yield from _as_numpy(cutter.finish())
        if frames == 0 or rate <= 0:
            raise DecodeError("no audio frames")
        self.duration_s = frames / rate


def _as_numpy(cut: tuple[list[Window], list[Any]]) -> Iterator[tuple[Window, np.ndarray]]:
    for window, chunk in zip(*cut, strict=True):
        yield window, chunk.numpy()


def decode_failure(exc: Exception) -> str:
    """The one-line reason a local run records for a file that raised ``exc`` while decoding."""
    if isinstance(exc, DecodeError):
        return str(exc)
    return f"{type(exc).__name__}: {one_line(exc)}"
