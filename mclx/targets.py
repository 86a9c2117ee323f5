"""The loss's target: which pairs of a batch's views are positives, and how strongly.

Chosen once from the configuration (:func:`make_target`), then applied at every step to the
batch's track ids. Self-supervised: the views of one track. With labels (SupCon, SemiSupCon), the
label target (classes, tags, a regression value or a similarity) is mixed in. With intra-track
negatives a batch holds several segment pairs of each track: the positives are the views of one
pair (one slot of the batch) and the softmax runs over the track's own segments only
(:func:`make_candidates`).
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import Tensor

from mclx import losses
from mclx.config import Config

Target = Callable[[Tensor], Tensor]  # tracks (B,) -> (V * B, V * B) target, view-major


def make_target(config: Config, labels: Tensor | None, n_views: int) -> Target:
    """The target of the loss for the global tracks (B,) of a step, in view-major order.

    ``labels``: every cached track's label (rows as in :class:`mclx.labels.Labels`), or None."""
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
