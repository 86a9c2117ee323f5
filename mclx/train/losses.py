"""Contrastive losses as functions of plain tensors.

All three losses are one computation: a softmax over cosine similarities divided by a
temperature, scored against a *target matrix* ``W`` (N, N) whose row i weighs how much each
other item j is a positive for anchor i:

    loss_i = - sum_j W_ij log p_ij / sum_j W_ij,   p_ij = softmax_{j != i}(z_i . z_j / t)

- NT-Xent (SimCLR, CLMR): W_ij = 1 when i and j are views of the same clip.
- SupCon (Khosla et al., L_out): W_ij = 1 when i and j share a label.
- SemiSupCon (Guinot et al., 2024): W = max(W_ssl, w * W_labels), where W_labels comes from the
  labels where both items have them (class, shared tags, target distance, a given similarity)
  and is zero for unlabelled items, which keep only their self-supervised positives.
Anchors whose row of W is all zero are left out of the mean. An optional *candidate mask* C
(N, N) restricts the softmax of anchor i to the items j with C_ij: with intra-track negatives
(Choi et al.) the candidates of a segment are the other segments of its own track.

CPC (:func:`cpc_loss`) scores predictions of future segments against the batch's actual ones.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor


def contrastive_loss(
    z: Tensor,
    target: Tensor,
    temperature: float,
    anchors: slice | Tensor | None = None,
    candidates: Tensor | None = None,
) -> Tensor:
    """Mean over anchors of the soft-target contrastive loss.

    z: (N, D) embeddings (normalised here); target: (N, N) non-negative weights (diagonal
    ignored). ``anchors`` restricts the rows that are averaged (a rank's own rows when z holds
    the embeddings gathered from every rank). ``candidates``: (N, N) bool, the items each anchor's
    softmax runs over (None: all others); targets outside them are ignored. Returns a scalar.
    """
    if z.dtype in (torch.float16, torch.bfloat16):  # softmax and logs in float32 under AMP
        z = z.float()
    z = F.normalize(z, dim=-1)
    rows = slice(None) if anchors is None else anchors
    logits = z[rows] @ z.T / temperature  # (n, N)
    n = logits.shape[0]
    cols = torch.arange(z.shape[0], device=z.device)[rows]
    self_mask = torch.zeros_like(logits, dtype=torch.bool)
    self_mask[torch.arange(n, device=z.device), cols] = True
    if candidates is not None:
        self_mask = self_mask | ~candidates[rows]
    log_p = torch.log_softmax(logits.masked_fill(self_mask, float("-inf")), dim=-1)
    w = target[rows].to(z.dtype).masked_fill(self_mask, 0.0)
    total = w.sum(dim=-1)
    keep = (total > 0).to(z.dtype)  # a weight, not a boolean index: no device-to-host sync
    per_anchor = -(w * log_p.masked_fill(self_mask, 0.0)).sum(dim=-1) / total.clamp(min=1e-12)
    return (per_anchor * keep).sum() / keep.sum().clamp(min=1.0)


def same_clip_target(clip_ids: Tensor) -> Tensor:
    """(N,) clip index of each view -> (N, N) float: 1 where two views come from one clip."""
    return (clip_ids[:, None] == clip_ids[None, :]).float()


def multiclass_target(labels: Tensor) -> Tensor:
    """(N,) int class (-1: unlabelled) -> (N, N): 1 for the same class, 0 otherwise or unlabelled."""
    known = labels >= 0
    return ((labels[:, None] == labels[None, :]) & known[:, None] & known[None, :]).float()


def multilabel_target(tags: Tensor, mode: str = "soft", min_shared: int = 1) -> Tensor:
    """(N, C) multi-hot tags (an all-zero row: unlabelled) -> (N, N).

    "hard": 1 when two items share at least ``min_shared`` tags; "soft": their Jaccard overlap
    |a & b| / |a | b|.
    """
    tags = tags.float()
    shared = tags @ tags.T
    if mode == "hard":
        return (shared >= max(min_shared, 1) - 0.5).float()
    counts = tags.sum(dim=-1)
    union = counts[:, None] + counts[None, :] - shared
    return torch.where(union > 0, shared / union.clamp(min=1e-12), torch.zeros_like(shared))


def regression_target(values: Tensor, scale: float = 1.0) -> Tensor:
    """(N,) float targets (NaN: unlabelled) -> (N, N) similarity exp(-|y_i - y_j| / scale)."""
    known = ~torch.isnan(values)
    v = torch.nan_to_num(values.float())
    sim = torch.exp(-(v[:, None] - v[None, :]).abs() / scale)
    return sim * (known[:, None] & known[None, :]).float()


def similarity_target(vectors: Tensor) -> Tensor:
    """(N, K) user-given label vectors (an all-zero row: unlabelled) -> (N, N) cosine clipped at 0."""
    v = F.normalize(vectors.float(), dim=-1)
    return (v @ v.T).clamp(min=0.0)


def semisup_target(ssl: Tensor, supervised: Tensor, weight: float = 1.0) -> Tensor:
    """Self-supervised positives kept; label-derived similarities added where they are larger."""
    return torch.maximum(ssl, weight * supervised)


def nt_xent(z1: Tensor, z2: Tensor, temperature: float) -> Tensor:
    """SimCLR's loss for two views: z1, z2 (B, D), row b of each from clip b."""
    z = torch.cat([z1, z2])
    ids = torch.arange(z1.shape[0], device=z1.device).repeat(2)
    return contrastive_loss(z, same_clip_target(ids), temperature)


def supcon(z: Tensor, labels: Tensor, temperature: float) -> Tensor:
    """Supervised contrastive loss: z (N, D), labels (N,) int; positives share a label."""
    return contrastive_loss(z, multiclass_target(labels), temperature)


def cpc_loss(
    predictions: Tensor, future: Tensor, temperature: float, anchors: Tensor | None = None
) -> Tensor:
    """CPC's InfoNCE: each prediction against the actual embeddings of every track at its step.

    predictions: (k, b, D), step i's prediction for b tracks; future: (k, B, D), the actual
    embeddings at each step of all B tracks of the batch (B >= b: gathered from every rank);
    anchors: (b,) the row of each predicted track in ``future`` (None: 0..b-1). Cosine
    similarities over ``temperature``; the mean over steps and tracks. Returns a scalar.
    """
    dtype = torch.promote_types(predictions.dtype, torch.float32)  # float32 at least (AMP)
    p = F.normalize(predictions.to(dtype), dim=-1)
    f = F.normalize(future.to(dtype), dim=-1)
    logits = torch.bmm(p, f.transpose(1, 2)) / temperature  # (k, b, B)
    k, b, _ = logits.shape
    rows = torch.arange(b, device=p.device) if anchors is None else anchors
    return F.cross_entropy(logits.reshape(k * b, -1), rows.repeat(k))
