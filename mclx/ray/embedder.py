"""``mclx.ray.Embedder``: audio files -> mclx embeddings inside a user's Ray Data pipeline."""

from __future__ import annotations

import contextlib
import os
import tempfile
from collections.abc import Iterator

import numpy as np

from mclx.embed.file import embed_file
from mclx.embed.plan import EmbedSettings, make_plan
from mclx.store.records import FileRecord


class Embedder:
    """A callable class for ``ray.data.Dataset.map_batches``: audio files -> mclx embeddings.

    ::

        ds = ray.data.from_items([{"path": p} for p in paths])  # or: read_binary_files(include_paths=True)
        out = ds.map_batches(mclx.ray.Embedder, fn_constructor_kwargs={"model": "mclx-base"},
                             batch_size=8, compute=ray.data.ActorPoolStrategy(size=4), num_gpus=1)

    The model is loaded and checked once per actor. In: a batch with a ``path`` column (read
    where the actor runs: give absolute paths that every node can reach), and optionally
    ``bytes`` (the file's content, decoded instead of reading ``path``). Out, one row
    per input file: ``path``, ``status`` ("ok" | "failed"), ``error`` ("" or the one-line reason
    a local run records), ``duration_s``, ``global`` (D,) float32 (NaN when failed). With level
    ``segment`` or ``both``, also per file: ``segment_count`` (k), ``start_s`` and ``end_s``
    (k,) float64 and ``segments`` (k, D) float32 (empty when failed), rows as in a store's
    ``/segments``. The vectors equal ``mclx embed``'s with the same model and settings on the CPU
    (the same decoding, resampling, windows, batch padding and encoder).
    """

    def __init__(
        self,
        model: str | None = None,
        level: str = "global",
        window: float | None = None,
        hop: float | None = None,
        batch_size: int | None = None,
        device: str = "auto",
        precision: str = "auto",
    ) -> None:
        settings = EmbedSettings(
            model=model,
            level=level,
            window_s=window,
            hop_s=hop,
            batch_size=batch_size,
            device=device,
            precision=precision,
            quiet=True,
        )
        self.plan = make_plan(settings)

    def __call__(self, batch: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        paths = [str(p) for p in batch["path"]]
        contents = batch.get("bytes")
        records = [
            self._embed_one(path, None if contents is None else bytes(contents[i]))
            for i, path in enumerate(paths)
        ]
        dim = self.plan.dim
        out: dict[str, np.ndarray] = {
            "path": np.array(paths, dtype=object),
            "status": np.array([r.status for r in records], dtype=object),
            "error": np.array([r.error for r in records], dtype=object),
            "duration_s": np.array([r.duration_s for r in records], np.float64),
            "global": np.stack(
                [r.global_ if r.global_ is not None else np.full(dim, np.nan, np.float32) for r in records]
            ).astype(np.float32),
        }
        if self.plan.keep_segments:
            out["segment_count"] = np.array([r.segment_count for r in records], np.int64)
            out["start_s"] = _ragged([r.starts.astype(np.float64) for r in records])
            out["end_s"] = _ragged([r.ends.astype(np.float64) for r in records])
            out["segments"] = _ragged(
                [r.segments if r.segments is not None else np.zeros((0, dim), np.float32) for r in records]
            )
        return out

    def _embed_one(self, path: str, content: bytes | None) -> FileRecord:
        """One file decoded, windowed, encoded and pooled as a local run does it."""
        with _readable(path, content) as source:
            rec = embed_file(self.plan, source)
        rec.path = path
        return rec


def _ragged(arrays: list[np.ndarray]) -> np.ndarray:
    """An object column of per-row arrays of different lengths (a variable-shaped tensor in Ray)."""
    out = np.empty(len(arrays), dtype=object)
    for i, a in enumerate(arrays):
        out[i] = a
    return out


@contextlib.contextmanager
def _readable(path: str, content: bytes | None) -> Iterator[str]:
    """``path``, or a temporary file holding ``content`` under the same extension (the decoder
    is chosen by extension)."""
    if content is None:
        yield path
        return
    with tempfile.NamedTemporaryFile(suffix=os.path.splitext(path)[1]) as tmp:
        tmp.write(content)
        tmp.flush()
        yield tmp.name
