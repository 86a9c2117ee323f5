"""One step's batch: which tracks and segments step k trains on, how they are laid out, and which
of their views are positives of each other.

Every random choice of step k is drawn from a generator seeded with (seed, k), so a run resumed
at step k cuts exactly the batches of a run that never stopped.

Views (Choi et al.'s strategies, SemiSupCon's chunks). A view is K segments of one track whose
encoder embeddings are mean-pooled: K = 1 for a regional (segment) input, K = ``track_segments``
for a global (track) input. Every view of a track is a positive of every other view of it.

- positive "same": all views start at the same place (they differ by augmentation only);
- "adjacent": view v follows view v-1 directly (SemiSupCon: N adjacent chunks of an excerpt);
- "random": each view starts anywhere in the track;
- "track": a segment (view 0) against the whole track, ``track_segments`` segments spread
  over it and pooled (view 1).

``views.adjacent_gap_s`` spaces adjacent segments (Choi et al. leave 0.5 s between them). CPC
(``loss.kind = "cpc"``) reads ``cpc_context + cpc_predictions`` adjacent segments of a track: one
view per time step (:func:`effective_views`). With intra-track negatives, the
``loss.intra_track_segments`` pairs a track gives to a batch are each drawn from their own
stretch of the track (:func:`stratified_starts`), so that two anchors of a track rarely overlap.

Layout. A step's batch is B tracks, each seen as V views of K_v segments. Its segments are cut
(:func:`make_batch`) view-major, then track, then segment within the view; with several ranks
each holds b = B / world tracks of every view. :class:`ViewLayout` knows that order: the matrix
that pools segments into views, the view each segment row belongs to (augmentations drawn per
view), the rows of the global batch that are this rank's anchors, and the gather that puts every
rank's views back into the global view-major order.

Targets: which pairs of a batch's views are positives, and how strongly. Chosen once from the
configuration (:func:`make_target`), then applied at every step to the batch's track ids.
Self-supervised: the views of one track. With labels (SupCon, SemiSupCon), the label target
(classes, tags, a regression value or a similarity) is mixed in. With intra-track negatives a
batch holds several segment pairs of each track: the positives are the views of one pair (one
slot of the batch) and the softmax runs over the track's own segments only
(:func:`make_candidates`).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Generator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

import numpy as np
import torch
from torch import Tensor

from mclx.config import Config, ViewsConfig
from mclx.distributed import Rank, gather
from mclx.train import losses
from mclx.train.augment import Groups
from mclx.train.data import TrackCache


def effective_views(config: Config) -> ViewsConfig:
    """The views a step cuts: ``config.views``, or for CPC one adjacent segment per time step."""
    if config.loss.kind == "cpc":
        steps = config.loss.cpc_context + config.loss.cpc_predictions
        return dataclasses.replace(config.views, n_views=steps, input="segment", positive="adjacent")
    return config.views


def view_sizes(cfg: ViewsConfig) -> list[int]:
    """Segments per view (K_v) for each of the views."""
    if cfg.positive == "track":
        return [1, cfg.track_segments]
    k = cfg.track_segments if cfg.input == "track" else 1
    return [k] * cfg.n_views


def sample_starts(
    lengths: np.ndarray, cfg: ViewsConfig, segment: int, rng: np.random.Generator, gap: int = 0
) -> list[np.ndarray]:
    """Start offsets (samples) of every segment: one (B, K_v) int64 array per view.

    lengths: (B,) track lengths in samples; gap: samples between adjacent segments. Only a track
    shorter than one segment is padded with zeros by the loader; adjacent chunks of a track
    shorter than all of them (gaps included) overlap.
    """
    lengths = np.asarray(lengths, dtype=np.int64)
    b = len(lengths)
    sizes = view_sizes(cfg)

    def anywhere(span: np.ndarray, shape: tuple[int, ...]) -> np.ndarray:
        room = np.maximum(lengths - span, 0) + 1  # (B,)
        return (rng.random(shape) * room.reshape(-1, *([1] * (len(shape) - 1)))).astype(np.int64)

    if cfg.positive == "track":
        anchor = anywhere(np.full(b, segment), (b, 1))
        k = sizes[1]
        spread = np.maximum(lengths - segment, 0)[:, None] * (np.arange(k) + 0.5)[None, :] / k
        return [anchor, spread.astype(np.int64)]
    if cfg.positive == "adjacent":
        k, n = sizes[0], sizes[0] * len(sizes)  # segments per view, segments in all
        # Chunks follow each other; in a track shorter than n chunks they overlap instead (stride
        # below a segment), so that no view runs past the end into silence.
        stride = np.minimum(segment + gap, np.maximum(lengths - segment, 0) // max(n - 1, 1))  # (B,)
        base = anywhere(stride * (n - 1) + segment, (b, 1))
        return [base + stride[:, None] * (v * k + np.arange(k))[None, :] for v in range(len(sizes))]
    if cfg.positive == "same":
        first = anywhere(np.full(b, segment), (b, sizes[0]))
        return [first.copy() for _ in sizes]
    return [anywhere(np.full(b, segment), (b, k)) for k in sizes]  # "random"


def stratified_starts(
    lengths: np.ndarray, pairs: int, cfg: ViewsConfig, segment: int, rng: np.random.Generator, gap: int = 0
) -> list[np.ndarray]:
    """:func:`sample_starts` for B slots that are B / ``pairs`` tracks, each repeated ``pairs``
    times in a row: slot j of a track draws its views inside the j-th of ``pairs`` equal stretches
    of the track. lengths: (B,) -> one (B, K_v) int64 array per view."""
    lengths = np.asarray(lengths, dtype=np.int64)
    stretch = lengths // pairs  # (B,)
    offset = stretch * np.tile(np.arange(pairs), len(lengths) // pairs)  # (B,)
    return [s + offset[:, None] for s in sample_starts(stretch, cfg, segment, rng, gap)]


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
    (:class:`ViewLayout` pools and gathers them in that order). ``labelled``:
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


@dataclass(frozen=True)
class ViewLayout:
    sizes: tuple[int, ...]  # segments per view, (V,)
    batch: int  # tracks of the global batch, B
    rank: Rank
    pool: Tensor  # (V * b, M) averaging matrix of this rank's M segments into its V * b views
    groups: Groups  # the view of each segment row; None when every view is one segment
    anchors: Tensor | slice  # this rank's rows of the global (V * B) view-major batch

    @classmethod
    def build(cls, views: ViewsConfig, batch: int, rank: Rank, device: torch.device) -> ViewLayout:
        sizes = view_sizes(views)
        pool = pool_matrix(batch // rank.world, sizes, device)
        anchors = local_rows(len(sizes), batch, rank)
        if isinstance(anchors, Tensor):
            anchors = anchors.to(device)
        groups = (pool.argmax(dim=0), pool.shape[0]) if max(sizes) > 1 else None
        return cls(tuple(sizes), batch, rank, pool, groups, anchors)

    @property
    def n_views(self) -> int:
        return len(self.sizes)

    def gather(self, z_local: Tensor) -> Tensor:
        """Every rank's (V * b, P) views into the global view-major (V * B, P) order."""
        return gather_view_major(z_local, self.n_views, self.rank)


def gather_view_major(z_local: Tensor, n_views: int, rank: Rank) -> Tensor:
    """Gather (V * b, P) from every rank into the global view-major (V * B, P) order."""
    if rank.world == 1:
        return z_local
    parts = gather(z_local).reshape(rank.world, n_views, -1, z_local.shape[-1])  # (W, V, b, P)
    return parts.transpose(0, 1).reshape(-1, z_local.shape[-1])


def pool_matrix(n_tracks: int, sizes: list[int], device: torch.device) -> Tensor:
    """(views * n_tracks, segments) matrix averaging each view's segments (view-major layout)."""
    rows, total = [], sum(sizes) * n_tracks
    offset = 0
    for k in sizes:
        for t in range(n_tracks):
            row = torch.zeros(total)
            row[offset + t * k : offset + (t + 1) * k] = 1.0 / k
            rows.append(row)
        offset += n_tracks * k
    return torch.stack(rows).to(device)


def local_rows(n_views: int, batch: int, rank: Rank) -> Tensor | slice:
    """Rows of the global view-major batch that are this rank's anchors."""
    if rank.world == 1:
        return slice(None)
    b = batch // rank.world
    return torch.cat(
        [torch.arange(v * batch + rank.rank * b, v * batch + (rank.rank + 1) * b) for v in range(n_views)]
    )


Target = Callable[[Tensor], Tensor]  # tracks (B,) -> (V * B, V * B) target, view-major


def make_target(config: Config, labels: Tensor | None, n_views: int) -> Target:
    """The target of the loss for the global tracks (B,) of a step, in view-major order.

    ``labels``: every cached track's label (rows as in :class:`mclx.train.labels.Labels`), or None."""
    kind = config.loss.kind
    if config.loss.negatives == "intra-track":
        return lambda tracks: losses.same_clip_target(
            torch.arange(len(tracks), device=tracks.device).repeat(n_views)
        )
    if kind == "ntxent" or labels is None:
        return lambda tracks: losses.same_clip_target(tracks.repeat(n_views))
    lab = labels
    if kind == "supcon" or config.loss.target == "multiclass":
        sup: Callable[[Tensor], Tensor] = losses.multiclass_target
    elif config.loss.target == "multilabel":
        mode, least = config.loss.multilabel, config.loss.multilabel_min_shared
        sup = lambda v: losses.multilabel_target(v, mode, least)  # noqa: E731
    elif config.loss.target == "regression":
        scale = config.loss.regression_scale
        sup = lambda v: losses.regression_target(v, scale)  # noqa: E731
    else:
        sup = losses.similarity_target
    weight = config.loss.supervised_weight

    def target(tracks: Tensor) -> Tensor:
        ids = tracks.repeat(n_views)
        ssl, labelled = losses.same_clip_target(ids), sup(lab[ids])
        if kind == "supcon":
            return torch.maximum(ssl, labelled)  # an unlabelled track is still a positive of itself
        return losses.semisup_target(ssl, labelled, weight)

    return target


def make_candidates(config: Config, n_views: int) -> Callable[[Tensor], Tensor] | None:
    """Tracks (B,) -> (V * B, V * B) bool: which items each anchor's softmax runs over; None: all.

    Intra-track negatives: the views of every slot of the anchor's own track."""
    if config.loss.negatives != "intra-track":
        return None
    return lambda tracks: losses.same_clip_target(tracks.repeat(n_views)) > 0


def target_matrix(config: Config, tracks: Tensor, labels: Tensor | None, n_views: int) -> Tensor:
    """(V * B, V * B) target for the tracks (B,) of one step: :func:`make_target` applied once."""
    return make_target(config, labels, n_views)(tracks)
