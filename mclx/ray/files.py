"""The Ray decode task: files -> their windows, cut as a local run on the CPU cuts them, packed
into chunks of one encoder batch."""

from __future__ import annotations

import math
from collections.abc import Iterator

import numpy as np

from mclx.embed.file import FileWindows, decode_failure
from mclx.embed.windows import Window

# Files per decode task at most: a task's last chunk is its only one short of a full batch (the
# encoder pads it), so more files per task waste less; fewer keep more decoders busy.
MAX_FILES_PER_TASK = 16


def files_per_task(files: int, decoders: int) -> int:
    """Files each decode task takes: at least two tasks per decoding slot while there are files
    enough, at most :data:`MAX_FILES_PER_TASK`."""
    return max(1, min(MAX_FILES_PER_TASK, files // max(1, 2 * decoders)))


def decode_task(
    batch: dict[str, np.ndarray], rate: int, window: int, hop: int, chunk: int
) -> Iterator[dict[str, np.ndarray]]:
    """Ray Data task: the files of ``batch`` -> their windows, in chunks of ``chunk`` rows.

    Consecutive files share chunks, so every chunk but the task's last is a full encoder batch.
    Columns: ``index``, ``window`` (its number in the file; -1 on an error row), ``start``/``end``
    (samples), ``count`` and ``duration_s`` (on a file's last window only; -1 and NaN on the
    others), ``error`` ("" when ok) and ``samples`` (rows, window) float32. A file's last window
    is held back until the file ends, to carry its count; a file that cannot be decoded becomes
    one row with its error (zero samples), and its windows not yet sent are dropped.
    """
    pending = _Pending(window)
    for index, path in zip(batch["index"], batch["path"], strict=True):
        index = int(index)
        file = FileWindows(str(path), rate, window, hop)
        held: tuple[Window, np.ndarray] | None = None  # the file's latest window
        number = 0
        try:
            for item in file:
                if held is not None:
                    pending.add(index, number - 1, *held)
                    if len(pending) == chunk:
                        yield pending.take()
                held, number = item, number + 1
        except Exception as exc:  # recorded like a local run's decoder failure, never fatal
            pending.fail(index, decode_failure(exc))
        else:
            if held is None:  # frames that resampled to nothing
                pending.fail(index, "no audio frames")
            else:
                pending.add(index, number - 1, *held, count=number, duration_s=file.duration_s)
        if len(pending) == chunk:
            yield pending.take()
    if len(pending):
        yield pending.take()


class _Pending:
    """Window rows not yet sent, column by column."""

    def __init__(self, window: int) -> None:
        self.window = window
        self.rows: list[tuple[int, int, int, int, int, float, str]] = []  # index .. error
        self.samples: list[np.ndarray] = []  # (window,) each, or None-like zeros on error rows

    def __len__(self) -> int:
        return len(self.rows)

    def add(
        self, index: int, number: int, win: Window, samples: np.ndarray, count: int = -1,
        duration_s: float = math.nan,
    ) -> None:  # fmt: skip
        self.rows.append((index, number, win.start, win.end, count, duration_s, ""))
        self.samples.append(samples)

    def fail(self, index: int, error: str) -> None:
        """File ``index`` failed: its rows still here go, one error row comes in."""
        keep = [i for i, row in enumerate(self.rows) if row[0] != index]
        self.rows = [self.rows[i] for i in keep]
        self.samples = [self.samples[i] for i in keep]
        self.rows.append((index, -1, 0, 0, -1, math.nan, error))
        self.samples.append(np.zeros(self.window, np.float32))

    def take(self) -> dict[str, np.ndarray]:
        """The rows as one chunk (``samples`` stacked into one (rows, window) array); then empty."""
        index, number, start, end, count, duration_s, error = zip(*self.rows, strict=True)
        out = {
            "index": np.array(index, np.int64),
            "window": np.array(number, np.int64),
            "start": np.array(start, np.int64),
            "end": np.array(end, np.int64),
            "count": np.array(count, np.int64),
            "duration_s": np.array(duration_s, np.float64),
            "error": np.array(error, dtype=object),
            "samples": np.stack(self.samples).astype(np.float32, copy=False),
        }
        self.rows, self.samples = [], []
        return out
