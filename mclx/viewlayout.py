"""How one training step's segments are laid out, in one place.

A step's batch is B tracks, each seen as V views of K_v segments (``mclx.views``). Its segments
are cut (``mclx.batching.make_batch``) view-major, then track, then segment within the view;
with several ranks each holds b = B / world tracks of every view. This object knows that order:
the matrix that pools segments into views, the view each segment row belongs to (augmentations
drawn per view), the rows of the global batch that are this rank's anchors, and the gather that
puts every rank's views back into the global view-major order.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor

from mclx.augment import Groups
from mclx.config import ViewsConfig
from mclx.distributed import Rank, gather
from mclx.views import view_sizes


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
