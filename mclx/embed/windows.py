"""The window rule of the store contract: which windows a signal of N samples is cut into."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

if TYPE_CHECKING:
    import torch


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
    """Cut a stream of samples into windows by :func:`window_starts`, keeping at most ~2 windows.

    Samples are torch tensors (the local pipeline's decoders) or numpy arrays (the Ray decode
    tasks, which so never import torch); windows come back as the samples came in."""

    def __init__(self, window: int, hop: int) -> None:
        self.window, self.hop = window, hop
        self.buffer: Any = None  # torch.Tensor | np.ndarray
        self.buffer_start = 0  # absolute index of buffer[0]
        self.next_start = 0
        self.total = 0
        self.last_end = 0  # end of the last emitted window

    def push(self, samples: torch.Tensor | np.ndarray) -> tuple[list[Window], list[Any]]:
        """(k,) samples -> windows now complete, each a (window,) tensor or array."""
        if self.buffer is None:
            self.buffer = samples
        elif isinstance(samples, np.ndarray):
            self.buffer = np.concatenate([self.buffer, samples])
        else:
            import torch

            self.buffer = torch.cat([self.buffer, samples])
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
            rest = self.buffer[keep - self.buffer_start :]
            self.buffer = rest.copy() if isinstance(rest, np.ndarray) else rest.clone()
            self.buffer_start = keep
        return wins, chunks

    def finish(self) -> tuple[list[Window], list[Any]]:
        """The final window: aligned to the end, or the zero-padded short file."""
        if self.total == 0 or self.buffer is None:
            return [], []
        if self.total < self.window:
            padded: Any
            if isinstance(self.buffer, np.ndarray):
                padded = np.zeros(self.window, dtype=self.buffer.dtype)
            else:
                import torch

                padded = torch.zeros(self.window, dtype=self.buffer.dtype, device=self.buffer.device)
            padded[: self.total] = self.buffer
            return [Window(0, self.total)], [padded]
        if self.last_end < self.total:
            lo = self.total - self.window - self.buffer_start
            return [Window(self.total - self.window, self.total)], [self.buffer[lo : lo + self.window]]
        return [], []
