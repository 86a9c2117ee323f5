"""Probe metrics against slow, obviously-correct references and hand-computed values."""

from __future__ import annotations

import itertools
import math

import numpy as np
import pytest

from mclx.probe import metrics, stats


def slow_auc(y: np.ndarray, s: np.ndarray) -> float:
    """Probability that a random positive outscores a random negative (ties count half)."""
    pos, neg = s[y > 0], s[y == 0]
    return float(np.mean([(p > n) + 0.5 * (p == n) for p, n in itertools.product(pos, neg)]))


def slow_ap(y: np.ndarray, s: np.ndarray) -> float:
    """Walk the thresholds from high to low: AP = sum of (recall gain) x precision."""
    total, last_recall = 0.0, 0.0
    for threshold in sorted(set(s.tolist()), reverse=True):
        chosen = s >= threshold
        tp = int(np.sum(chosen & (y > 0)))
        recall = tp / int(np.sum(y > 0))
        total += (recall - last_recall) * tp / int(np.sum(chosen))
        last_recall = recall
    return total


def slow_f1(y: list[int], p: list[int]) -> float:
    scores = []
    for c in sorted(set(y) | set(p)):
        tp = sum(1 for a, b in zip(y, p, strict=True) if a == c and b == c)
        fp = sum(1 for a, b in zip(y, p, strict=True) if a != c and b == c)
        fn = sum(1 for a, b in zip(y, p, strict=True) if a == c and b != c)
        scores.append(2 * tp / (2 * tp + fp + fn))
    return sum(scores) / len(scores)


def slow_retrieval(q: np.ndarray, db: np.ndarray, rel: np.ndarray, k: int) -> tuple[float, float]:
    aps, precisions = [], []
    for i in range(len(q)):
        sims = [float(q[i] @ d / (np.linalg.norm(q[i]) * np.linalg.norm(d))) for d in db]
        ranked = sorted(range(len(db)), key=lambda j: (-sims[j], j))[:k]
        hits, ap = 0, 0.0
        for rank, j in enumerate(ranked, start=1):
            if rel[i, j]:
                hits += 1
                ap += hits / rank
        precisions.append(hits / k)
        if rel[i].sum():
            aps.append(ap / min(k, int(rel[i].sum())))
    return float(np.mean(aps)), float(np.mean(precisions))


# A hand-made multi-label example: 6 clips, 3 tags; tag 2 ties a positive and a negative at 0.7.
Y = np.array([[1, 0, 1], [0, 1, 1], [1, 1, 0], [0, 0, 1], [1, 0, 0], [0, 1, 0]], dtype=np.float32)
S = np.array(
    [[0.9, 0.2, 0.7], [0.3, 0.8, 0.6], [0.6, 0.4, 0.2], [0.1, 0.1, 0.9], [0.6, 0.3, 0.7], [0.2, 0.9, 0.1]]
)


def test_multilabel_metrics_equal_slow_references_and_hand_values() -> None:
    auc = np.mean([slow_auc(Y[:, c], S[:, c]) for c in range(3)])
    ap = np.mean([slow_ap(Y[:, c], S[:, c]) for c in range(3)])
    assert metrics.macro(metrics.roc_auc, Y, S) == pytest.approx(auc)
    assert metrics.macro(metrics.average_precision, Y, S) == pytest.approx(ap)
    # by hand, tag 0: positives 0.9, 0.6, 0.6 vs negatives 0.3, 0.1, 0.2: every pair ordered
    assert metrics.roc_auc(Y[:, 0], S[:, 0]) == 1.0
    # tag 1: ranking 0.9 (+), 0.8 (+), 0.4 (+) first: AP 1
    assert metrics.average_precision(Y[:, 1], S[:, 1]) == 1.0
    # tag 2: 0.9 (+) P 1; 0.7 (+ and -) enter together: P 2/3; 0.6 (+) P 3/4; each adds recall 1/3
    assert metrics.average_precision(Y[:, 2], S[:, 2]) == pytest.approx((1 + 2 / 3 + 3 / 4) / 3)
    # positives 0.7, 0.6, 0.9 against negatives 0.2, 0.7, 0.1: 2.5 + 2 + 3 pairs won of 9
    assert metrics.roc_auc(Y[:, 2], S[:, 2]) == pytest.approx(7.5 / 9)
    assert metrics.roc_auc(np.array([1, 0, 1, 0]), np.array([0.5, 0.5, 0.9, 0.1])) == pytest.approx(0.875)


@pytest.mark.parametrize("seed", range(5))
def test_binary_metrics_with_ties_equal_slow_references_in_any_row_order(seed: int) -> None:
    rng = np.random.default_rng(seed)
    y = (rng.random(40) < 0.3).astype(np.float32)
    y[0], y[1] = 1, 0
    s = np.round(rng.random(40), 1)  # many ties
    assert metrics.roc_auc(y, s) == pytest.approx(slow_auc(y, s))
    assert metrics.average_precision(y, s) == pytest.approx(slow_ap(y, s))
    perm = rng.permutation(40)
    assert metrics.average_precision(y[perm], s[perm]) == pytest.approx(metrics.average_precision(y, s))


def test_undefined_tags_are_left_out_of_the_macro_mean_and_named() -> None:
    y = np.array([[1, 0], [0, 0], [1, 0]], dtype=np.float32)  # tag 1 never positive
    s = np.array([[0.9, 0.1], [0.2, 0.5], [0.8, 0.3]])
    assert metrics.macro(metrics.roc_auc, y, s) == 1.0
    assert metrics.undefined_columns(y) == [1]
    assert math.isnan(metrics.roc_auc(np.ones(3), np.arange(3.0)))
    assert math.isnan(metrics.average_precision(np.zeros(3), np.arange(3.0)))
    # A tag positive on every clip: AP would be 1 for any ranking; left out like its ROC-AUC.
    assert math.isnan(metrics.average_precision(np.ones(3), np.arange(3.0)))
    y = np.array([[1, 1], [1, 0], [1, 1], [1, 0]], dtype=np.float32)  # tag 0 always positive
    s = np.array([[0.1, 0.2], [0.9, 0.8], [0.3, 0.7], [0.5, 0.1]])
    assert metrics.undefined_columns(y) == [0]
    assert metrics.macro(metrics.average_precision, y, s) == metrics.average_precision(y[:, 1], s[:, 1])


def test_classification_and_regression_metrics() -> None:
    y, p = np.array([0, 0, 1, 1, 2, 2, 3]), np.array([0, 1, 1, 1, 2, 0, 1])
    assert metrics.accuracy(y, p) == pytest.approx(4 / 7)
    assert metrics.macro_f1(y, p) == pytest.approx(slow_f1(y.tolist(), p.tolist()))
    assert metrics.macro_f1(y, p) == pytest.approx((2 / 4 + 4 / 6 + 2 / 3 + 0) / 4)
    assert metrics.confusion(y, p, 4)[0].tolist() == [1, 1, 0, 0]
    assert metrics.r2(np.array([1.0, 2, 3]), np.array([1.0, 2, 3])) == 1.0
    assert metrics.r2(np.array([1.0, 2, 3]), np.full(3, 2.0)) == 0.0
    assert math.isnan(metrics.r2(np.ones(3), np.ones(3)))


def retrieval_at_k(q: np.ndarray, db: np.ndarray, rel: np.ndarray, k: int) -> tuple[float, float]:
    """(MAP@k, precision@k) as the probe reports them: its metrics over the per-query values."""
    ap, precision = metrics.retrieval_per_query(q, db, rel, k)
    return stats.METRICS["map_at_10"](rel, ap), stats.METRICS["precision_at_10"](rel, precision)


def test_retrieval_equals_slow_reference() -> None:
    rng = np.random.default_rng(3)
    q, db = rng.standard_normal((7, 5)), rng.standard_normal((30, 5))
    rel = rng.random((7, 30)) < 0.25
    rel[3] = False  # a query with nothing relevant: out of MAP, in precision
    got = retrieval_at_k(q, db, rel, k=10)
    assert got == pytest.approx(slow_retrieval(q, db, rel, 10))
    # by hand: ranking 0 (hit), 1 (miss) with k = 2 and two relevant items
    db2 = np.array([[1.0, 0], [0.9, 0.1], [0, 1], [0.1, 0.9]])
    rel2 = np.array([[True, False, False, True]])
    m_ap, p_at = retrieval_at_k(np.array([[1.0, 0.05]]), db2, rel2, 2)
    assert m_ap == pytest.approx(0.5) and p_at == pytest.approx(0.5)
