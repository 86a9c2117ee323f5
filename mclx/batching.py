"""The batches of training: which tracks and segments step k trains on, a pure function of k.

Every random choice of step k is drawn from a generator seeded with (seed, k), so a run resumed
at step k cuts exactly the batches of a run that never stopped.
"""

from __future__ import annotations

from collections.abc import Generator
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import torch
from torch import Tensor

from mclx.config import Config
from mclx.distributed import Rank
from mclx.traindata import TrackCache
from mclx.views import sample_starts


def make_batch(step: int, config: Config, cache: TrackCache, rank: Rank) -> tuple[np.ndarray, np.ndarray]:
    """The global batch of step ``step``: (this rank's segments (M, samples) float32, all tracks (B,)).

    Segments are laid out view-major, then track, then segment within the view
    (:class:`mclx.viewlayout.ViewLayout` pools and gathers them in that order).
    """
    rng = np.random.default_rng([config.train.seed, step])
    n_tracks = len(cache.lengths)
    b = config.train.batch_size
    tracks = rng.choice(n_tracks, size=b, replace=b > n_tracks)
    segment = round(config.views.segment_s * cache.rate)
    starts = sample_starts(cache.lengths[tracks], config.views, segment, rng)
    per_rank = b // rank.world
    mine = slice(rank.rank * per_rank, (rank.rank + 1) * per_rank)
    seg_tracks = np.concatenate([np.repeat(tracks[mine], s.shape[1]) for s in starts])
    seg_starts = np.concatenate([s[mine].reshape(-1) for s in starts])
    return cache.segments(seg_tracks, seg_starts, segment), tracks


def batches(
    start: int,
    end: int,
    config: Config,
    cache: TrackCache,
    rank: Rank,
    gpu: bool,
    prefetch: bool | None = None,
) -> Generator[tuple[Tensor, Tensor], None, None]:
    """(segments (M, samples), all tracks (B,)) of steps start..end-1, on the CPU.

    For a GPU the tensors are pinned (their copies then overlap the kernels) and the next
    batch is cut in a thread while the current one trains (``prefetch``, default: ``gpu``).
    Each batch is a pure function of its step, so prefetching changes nothing in what is trained.
    """

    def prepare(step: int) -> tuple[Tensor, Tensor]:
        segments, tracks = make_batch(step, config, cache, rank)
        x, ids = torch.from_numpy(segments), torch.from_numpy(tracks)
        return (x.pin_memory(), ids.pin_memory()) if gpu else (x, ids)

    if not (gpu if prefetch is None else prefetch):
        yield from (prepare(step) for step in range(start, end))
        return
    with ThreadPoolExecutor(1, thread_name_prefix="mclx-batches") as executor:
        upcoming = executor.submit(prepare, start) if start < end else None
        for step in range(start, end):
            assert upcoming is not None
            current = upcoming.result()
            upcoming = executor.submit(prepare, step + 1) if step + 1 < end else None
            yield current
