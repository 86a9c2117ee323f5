"""The Ray decode task: files -> chunks of their windows, as a local run on the CPU cuts them."""

from __future__ import annotations

import math
from collections.abc import Iterator

import numpy as np

from mclx.embed.file import FileWindows, decode_failure
from mclx.embed.windows import Window


def decode_task(
    batch: dict[str, np.ndarray], rate: int, window: int, hop: int, chunk: int
) -> Iterator[dict[str, np.ndarray]]:
    """Ray Data task: each file of ``batch`` -> chunks of its windows, or one row with its error.

    Columns: ``index``, ``window`` (its number in the file), ``start``/``end`` (samples),
    ``count`` and ``duration_s`` (on the last chunk's rows only; -1 and NaN before),
    ``error`` ("" when ok) and ``samples`` (rows, window) float32. The last window is held back
    until the file ends, so the last chunk is never empty.
    """
    for index, path in zip(batch["index"], batch["path"], strict=True):
        file = FileWindows(str(path), rate, window, hop)
        held: list[tuple[Window, np.ndarray]] = []
        sent = 0
        try:
            for item in file:
                held.append(item)
                if len(held) > chunk:
                    yield _chunk(int(index), sent, held[:-1], window)
                    sent += len(held) - 1
                    held = held[-1:]
        except Exception as exc:  # recorded like a local run's decoder failure, never fatal
            yield _chunk(int(index), -1, [], window, error=decode_failure(exc))
            continue
        if not sent + len(held):  # frames that resampled to nothing
            yield _chunk(int(index), -1, [], window, error="no audio frames")
            continue
        yield _chunk(int(index), sent, held, window, count=sent + len(held), duration_s=file.duration_s)


def _chunk(
    index: int,
    first: int,
    items: list[tuple[Window, np.ndarray]],
    window: int,
    count: int = -1,
    duration_s: float = math.nan,
    error: str = "",
) -> dict[str, np.ndarray]:
    n = max(1, len(items))  # an error is one row with zero samples
    samples = np.zeros((n, window), np.float32)
    for row, (_, x) in enumerate(items):
        samples[row] = x
    return {
        "index": np.full(n, index, np.int64),
        "window": np.arange(first, first + n, dtype=np.int64),
        "start": np.array([w.start for w, _ in items] or [0], np.int64),
        "end": np.array([w.end for w, _ in items] or [0], np.int64),
        "count": np.full(n, count, np.int64),
        "duration_s": np.full(n, duration_s, np.float64),
        "error": np.array([error] * n, dtype=object),
        "samples": samples,
    }
