"""One file to its windows, its windows to embeddings, and both to the file's store row.

:class:`FileWindows` decodes and cuts a file exactly as a local run on the CPU does (the Ray
decode tasks use it); :func:`encode` is the one forward pass of every engine; :func:`fill_record`
pools a file's window embeddings into its row; :func:`embed_file` does all three for one file
(``mclx.ray.Embedder``, a search query).
"""

from __future__ import annotations

import math
from collections.abc import Iterator, Sequence
from typing import Any

import numpy as np

from mclx.audio import decode_blocks, one_line
from mclx.devices import autocast_dtype
from mclx.embed.plan import EmbedPlan
from mclx.embed.windows import Window, WindowCutter
from mclx.errors import DecodeError
from mclx.resample import resampled_blocks
from mclx.store.records import FileRecord


class FileWindows:
    """One file decoded and cut into windows exactly as a local run on the CPU does it.

    Iterating yields ``(Window, (window,) float32 samples)`` at the model's rate: streamed
    decoding (:func:`mclx.audio.decode_blocks`), libsoxr resampling as in the decoder processes,
    then :class:`mclx.embed.windows.WindowCutter`. ``duration_s`` is set once iteration ends.
    Raises DecodeError with a one-line reason.
    """

    def __init__(self, path: str, rate: int, window: int, hop: int) -> None:
        self.path, self.rate, self.window, self.hop = path, rate, window, hop
        self.duration_s = math.nan

    def __iter__(self) -> Iterator[tuple[Window, np.ndarray]]:
        cutter = WindowCutter(self.window, self.hop)  # on numpy arrays: no torch in a decode task
        frames, rate = 0, 0
        for native, n, block in resampled_blocks(decode_blocks(self.path), self.rate):
            frames, rate = frames + n, native
            if len(block):
                yield from zip(*cutter.push(np.asarray(block, dtype=np.float32)), strict=True)
        yield from zip(*cutter.finish(), strict=True)
        if frames == 0 or rate <= 0:
            raise DecodeError("no audio frames")
        self.duration_s = frames / rate


def decode_failure(exc: Exception) -> str:
    """The one-line reason a local run records for a file that raised ``exc`` while decoding."""
    if isinstance(exc, DecodeError):
        return str(exc)
    return f"{type(exc).__name__}: {one_line(exc)}"


def encode(plan: EmbedPlan, x: Any) -> Any:
    """(n, window) windows on ``plan.device``, n <= batch size -> (batch size, D) float32 embeddings.

    Always a full batch (zero rows pad a short one): the same shapes every time keep each row's
    result independent of which other windows share its batch. Rows past n embed the padding.
    """
    import torch

    if len(x) < plan.batch_size:
        x = torch.cat([x, x.new_zeros(plan.batch_size - len(x), plan.window)])
    dtype = autocast_dtype(plan.precision)
    with (
        torch.inference_mode(),
        torch.autocast(plan.device.type, dtype=dtype or torch.float32, enabled=dtype is not None),
    ):
        return plan.encoder(x).float()


def fill_record(
    rec: FileRecord, emb: np.ndarray, windows: Sequence[Window], duration_s: float, plan: EmbedPlan
) -> str:
    """Fill ``rec`` from its file's (k, D) window embeddings; returns "" or why the file failed.

    The global row is the mean of the windows (or the encoder's aggregator over them, in time
    order: :meth:`mclx.models.Encoder.aggregate_windows`); with segments, each window's span in seconds
    (a zero-padded short file's one window ends at the file's end).
    """
    if not np.isfinite(emb).all():
        return "encoder produced non-finite values"
    rec.status, rec.error = "ok", ""
    rec.duration_s = duration_s
    rec.segment_count = len(windows)
    rec.global_ = plan.encoder.aggregate_windows(emb)
    if plan.keep_segments:
        rec.segments = emb
        rec.starts = np.array([w.start / plan.rate for w in windows], dtype=np.float64)
        rec.ends = np.array([min(w.end / plan.rate, duration_s) for w in windows], dtype=np.float64)
        if rec.segment_count == 1 and windows[0].end < plan.window:
            rec.ends[0] = duration_s
    return ""


def embed_file(plan: EmbedPlan, path: str) -> FileRecord:
    """One file decoded, windowed, encoded and pooled as a local run on the CPU does it: its
    store row ("failed" with the one-line reason a local run records when it cannot be read).
    Size and mtime are not taken (-1): the row is not resumed from."""
    import torch

    rec = FileRecord(path, "failed", "", math.nan, -1, -1)
    file = FileWindows(path, plan.rate, plan.window, plan.hop)
    try:
        items = list(file)
    except Exception as exc:
        rec.error = decode_failure(exc)
        return rec
    parts = []
    for lo in range(0, len(items), plan.batch_size):
        x = torch.from_numpy(np.stack([s for _, s in items[lo : lo + plan.batch_size]])).to(plan.device)
        parts.append(encode(plan, x)[: len(x)].cpu().numpy())
    windows = [w for w, _ in items]
    error = fill_record(rec, np.concatenate(parts).astype(np.float32), windows, file.duration_s, plan)
    if error:
        rec.status, rec.error, rec.global_, rec.segments = "failed", error, None, None
    return rec
