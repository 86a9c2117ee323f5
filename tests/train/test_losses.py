"""Each loss equals a slow, obviously correct loop, in value and in gradient."""

from __future__ import annotations

import math

import pytest
import torch

from mclx.train.losses import (
    contrastive_loss,
    cpc_loss,
    multiclass_target,
    multilabel_target,
    nt_xent,
    regression_target,
    same_clip_target,
    semisup_target,
    similarity_target,
    supcon,
)


def cos(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    return (a @ b) / (a.norm() * b.norm())


def slow_loss(z: torch.Tensor, w: list[list[float]], t: float) -> torch.Tensor:
    """The definition, term by term."""
    n = len(z)
    terms = []
    for i in range(n):
        denom = sum(torch.exp(cos(z[i], z[k]) / t) for k in range(n) if k != i)
        total = sum(w[i][j] for j in range(n) if j != i)
        if total == 0:
            continue
        acc = 0.0
        for j in range(n):
            if j != i and w[i][j] > 0:
                acc = acc - w[i][j] * torch.log(torch.exp(cos(z[i], z[j]) / t) / denom)
        terms.append(acc / total)
    return sum(terms) / len(terms)


def slow_simclr(z1: torch.Tensor, z2: torch.Tensor, t: float) -> torch.Tensor:
    """SimCLR as written in the paper: 2B anchors, one positive each."""
    z = torch.cat([z1, z2])
    b = len(z1)
    losses = []
    for i in range(2 * b):
        p = (i + b) % (2 * b)
        denom = sum(torch.exp(cos(z[i], z[k]) / t) for k in range(2 * b) if k != i)
        losses.append(-torch.log(torch.exp(cos(z[i], z[p]) / t) / denom))
    return sum(losses) / len(losses)


def check(fast, slow, *tensors: torch.Tensor) -> None:
    a = [x.clone().requires_grad_(True) for x in tensors]
    b = [x.clone().requires_grad_(True) for x in tensors]
    lf, ls = fast(*a), slow(*b)
    torch.testing.assert_close(lf, ls, rtol=1e-9, atol=1e-9)
    lf.backward()
    ls.backward()
    for x, y in zip(a, b, strict=True):
        torch.testing.assert_close(x.grad, y.grad, rtol=1e-7, atol=1e-9)


def randn(*shape: int, seed: int = 0) -> torch.Tensor:
    return torch.randn(*shape, generator=torch.Generator().manual_seed(seed), dtype=torch.float64)


@pytest.mark.parametrize("t", [0.1, 0.5])
def test_nt_xent_equals_simclr_definition(t: float) -> None:
    check(lambda a, b: nt_xent(a.double(), b.double(), t).double(), lambda a, b: slow_simclr(a, b, t),
          randn(5, 8), randn(5, 8, seed=1))  # fmt: skip


def test_supcon_equals_its_definition() -> None:
    labels = torch.tensor([0, 1, 0, 2, 1, 0])
    w = [[float(labels[i] == labels[j]) for j in range(6)] for i in range(6)]
    check(lambda z: supcon(z, labels, 0.2).double(), lambda z: slow_loss(z, w, 0.2), randn(6, 4))


def test_semisupcon_multiclass_with_unlabelled_items() -> None:
    ids = torch.tensor([0, 1, 2, 3, 0, 1, 2, 3])  # 4 clips, 2 views each
    labels = torch.tensor([5, 5, -1, 7, 5, 5, -1, 7])  # clip 2 unlabelled
    target = semisup_target(same_clip_target(ids), multiclass_target(labels))
    w = [[1.0 if ids[i] == ids[j] or (labels[i] >= 0 and labels[i] == labels[j]) else 0.0 for j in range(8)]
         for i in range(8)]  # fmt: skip
    assert target.tolist() == w
    check(lambda z: contrastive_loss(z, target, 0.1).double(), lambda z: slow_loss(z, w, 0.1), randn(8, 3))
    # the unlabelled clip's anchors have only their own other view as a positive
    assert [j for j in range(8) if w[2][j] and j != 2] == [6]


def test_soft_targets_multilabel_regression_similarity() -> None:
    tags = torch.tensor([[1, 1, 0], [1, 0, 0], [0, 0, 1], [0, 0, 0]], dtype=torch.float64)
    soft = multilabel_target(tags, "soft")
    assert soft[0, 1].item() == pytest.approx(0.5) and soft[0, 2].item() == 0 and soft[3].sum() == 0
    hard = multilabel_target(tags, "hard")
    assert hard[0, 1].item() == 1 and hard[1, 2].item() == 0
    y = torch.tensor([0.0, 1.0, float("nan"), 3.0])
    reg = regression_target(y, scale=2.0)
    assert reg[0, 1].item() == pytest.approx(math.exp(-0.5)) and reg[2].sum() == 0
    sim = similarity_target(torch.tensor([[1.0, 0.0], [1.0, 1.0], [-1.0, 0.0]]))
    assert sim[0, 1].item() == pytest.approx(math.sqrt(0.5)) and sim[0, 2].item() == 0
    ids = torch.arange(4).repeat(2)
    target = semisup_target(same_clip_target(ids), regression_target(y.repeat(2), 2.0))
    w = target.tolist()
    check(lambda z: contrastive_loss(z, target, 0.3).double(), lambda z: slow_loss(z, w, 0.3), randn(8, 5))


def test_anchor_subset_is_a_slice_of_the_full_loss() -> None:
    z = randn(8, 4)
    target = same_clip_target(torch.arange(4).repeat(2))
    full = contrastive_loss(z, target, 0.1)
    halves = [
        contrastive_loss(z, target, 0.1, anchors=slice(0, 4)),
        contrastive_loss(z, target, 0.1, slice(4, 8)),
    ]
    torch.testing.assert_close(full, sum(halves) / 2)


@pytest.mark.parametrize("kind", ["multilabel-soft", "multilabel-hard", "similarity"])
def test_semisupcon_soft_targets_equal_the_definition(kind: str) -> None:
    ids = torch.arange(4).repeat(2)  # 4 clips, 2 views each; clip 3 unlabelled
    if kind == "similarity":
        vectors = torch.tensor([[1.0, 0.0], [1.0, 1.0], [0.0, 1.0], [0.0, 0.0]]).repeat(2, 1)
        sup = similarity_target(vectors)
    else:
        tags = torch.tensor([[1, 1, 0], [1, 0, 0], [0, 1, 1], [0, 0, 0]]).repeat(2, 1)
        sup = multilabel_target(tags, kind.split("-")[1])
    target = semisup_target(same_clip_target(ids), sup, weight=0.5)
    w = target.tolist()
    assert [j for j in range(8) if w[3][j] and j != 3] == [7]  # unlabelled: its own other view only
    check(lambda z: contrastive_loss(z, target, 0.2).double(), lambda z: slow_loss(z, w, 0.2), randn(8, 6))


def test_a_batch_without_positives_gives_zero_loss_and_gradient() -> None:
    z = randn(4, 3).requires_grad_(True)
    loss = contrastive_loss(z, torch.zeros(4, 4), 0.1)
    loss.backward()
    assert loss.item() == 0.0 and z.grad is not None and not z.grad.any()


def test_hard_multilabel_positives_share_at_least_the_threshold_of_tags() -> None:
    tags = torch.tensor([[1, 1, 1, 0], [1, 1, 0, 0], [1, 0, 0, 1], [0, 0, 0, 0]])
    for least in (1, 2, 3):
        hand = [[float(i != 3 and j != 3 and int((tags[i] * tags[j]).sum()) >= least) for j in range(4)]
                for i in range(4)]  # fmt: skip
        assert multilabel_target(tags, "hard", least).tolist() == hand, least
    assert multilabel_target(tags, "hard", 2)[0, 1] == 1 and multilabel_target(tags, "hard", 2)[0, 2] == 0


def slow_intra_track_loss(z: torch.Tensor, tracks: list[int], t: float) -> torch.Tensor:
    """Choi et al.'s intra-track loss by its definition: slot s of a batch is a pair of views of one
    track (rows s and s + B); each row's positive is its pair's other view and its negatives are
    the other segments of its own track (both views of the track's other pairs)."""
    b = len(tracks)
    terms = []
    for i in range(2 * b):
        slot = i % b
        positive = (slot + b) if i < b else slot
        others = [j for j in range(2 * b) if j != i and tracks[j % b] == tracks[slot]]
        denom = sum(torch.exp(cos(z[i], z[j]) / t) for j in others)
        terms.append(-torch.log(torch.exp(cos(z[i], z[positive]) / t) / denom))
    return sum(terms) / len(terms)


def test_intra_track_negatives_equal_a_per_anchor_loop_over_the_tracks_other_segments() -> None:
    tracks = [7, 7, 7, 2, 2, 2]  # two tracks, three pairs each
    ids = torch.tensor(tracks)
    slots = torch.arange(len(tracks)).repeat(2)
    candidates = same_clip_target(ids.repeat(2)) > 0
    check(
        lambda z: contrastive_loss(z, same_clip_target(slots), 0.2, candidates=candidates).double(),
        lambda z: slow_intra_track_loss(z, tracks, 0.2),
        randn(12, 5),
    )
    # through the configured target: the same matrices
    from mclx.config import load_config
    from mclx.train.batch import make_candidates, make_target

    config = load_config(None, ["loss.negatives='intra-track'", "loss.intra_track_segments=3",
                                "train.batch_size=6"])  # fmt: skip
    assert torch.equal(make_target(config, None, 2)(ids), same_clip_target(slots))
    cand = make_candidates(config, 2)
    assert cand is not None and torch.equal(cand(ids), candidates)


def slow_cpc_loss(pred: torch.Tensor, future: torch.Tensor, t: float, anchors: list[int]) -> torch.Tensor:
    """InfoNCE of each prediction against every track's actual embedding at its step."""
    k, b, _ = pred.shape
    terms = []
    for i in range(k):
        for a in range(b):
            scores = [torch.exp(cos(pred[i, a], future[i, c]) / t) for c in range(future.shape[1])]
            terms.append(-torch.log(scores[anchors[a]] / sum(scores)))
    return sum(terms) / len(terms)


def test_cpc_loss_equals_the_definition() -> None:
    pred, future = randn(3, 2, 4), randn(3, 5, 4)
    anchors = torch.tensor([3, 1])
    check(
        lambda p: cpc_loss(p, future, 0.3, anchors).double(),
        lambda p: slow_cpc_loss(p, future, 0.3, [3, 1]),
        pred,
    )
    check(
        lambda f: cpc_loss(pred, f, 0.3, anchors).double(),
        lambda f: slow_cpc_loss(pred, f, 0.3, [3, 1]),
        future,
    )
