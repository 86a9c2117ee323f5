"""Which segments of a track make each view (Choi et al.'s strategies, SemiSupCon's chunks).

A view is K segments of one track whose encoder embeddings are mean-pooled: K = 1 for a
regional (segment) input, K = ``track_segments`` for a global (track) input. Every view of
a track is a positive of every other view of it.

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
"""

from __future__ import annotations

import dataclasses

import numpy as np

from mclx.config import Config, ViewsConfig


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
