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
from mclx.views import effective_views, sample_starts, stratified_starts


def draw_tracks(
    rng: np.random.Generator, config: Config, n_tracks: int, world: int, labelled: np.ndarray | None = None
) -> np.ndarray:
    """The global batch's B track slots (B,) int64, in rank order (rank r holds slots r*b..(r+1)*b).

    - natural mixing: B tracks drawn uniformly (with replacement only when B exceeds the tracks);
    - ``data.labelled_batch_share`` s > 0 (SemiSupCon's labelled share per batch): each rank's b
      slots are round(s * b) tracks drawn from ``labelled`` (the indices of the tracks that kept a
      label; with replacement when they are fewer) and the rest from the other tracks (from all
      of them when every track is labelled);
    - intra-track negatives: B / P tracks, each repeated P = ``loss.intra_track_segments`` times.
    """
    b = config.train.batch_size
    if config.loss.negatives == "intra-track":
        pairs = config.loss.intra_track_segments
        distinct = rng.choice(n_tracks, size=b // pairs, replace=b // pairs > n_tracks)
        return np.repeat(distinct, pairs)
    share = config.data.labelled_batch_share
    if share > 0 and labelled is not None and len(labelled):
        per_rank = b // world
        n_lab = round(share * per_rank)
        others = np.setdiff1d(np.arange(n_tracks), labelled)
        rest = others if len(others) else np.arange(n_tracks)
        parts = []
        for _ in range(world):
            parts.append(rng.choice(labelled, size=n_lab, replace=n_lab > len(labelled)))
            parts.append(rng.choice(rest, size=per_rank - n_lab, replace=per_rank - n_lab > len(rest)))
        return np.concatenate(parts).astype(np.int64)
    return rng.choice(n_tracks, size=b, replace=b > n_tracks)


def make_batch(
    step: int, config: Config, cache: TrackCache, rank: Rank, labelled: np.ndarray | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """The global batch of step ``step``: (this rank's segments (M, samples) float32, all tracks (B,)).

    Segments are laid out view-major, then track, then segment within the view
    (:class:`mclx.viewlayout.ViewLayout` pools and gathers them in that order). ``labelled``:
    indices of the labelled tracks, for ``data.labelled_batch_share``.
    """
    rng = np.random.default_rng([config.train.seed, step])
    tracks = draw_tracks(rng, config, len(cache.lengths), rank.world, labelled)
    segment = round(config.views.segment_s * cache.rate)
    gap = round(config.views.adjacent_gap_s * cache.rate)
    views, b = effective_views(config), config.train.batch_size
    if config.loss.negatives == "intra-track":
        pairs = config.loss.intra_track_segments
        starts = stratified_starts(cache.lengths[tracks], pairs, views, segment, rng, gap)
    else:
        starts = sample_starts(cache.lengths[tracks], views, segment, rng, gap)
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
    labelled: np.ndarray | None = None,
) -> Generator[tuple[Tensor, Tensor], None, None]:
    """(segments (M, samples), all tracks (B,)) of steps start..end-1, on the CPU.

    For a GPU the tensors are pinned (their copies then overlap the kernels) and the next
    batch is cut in a thread while the current one trains (``prefetch``, default: ``gpu``).
    Each batch is a pure function of its step, so prefetching changes nothing in what is trained.
    """

    def prepare(step: int) -> tuple[Tensor, Tensor]:
        segments, tracks = make_batch(step, config, cache, rank, labelled)
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
