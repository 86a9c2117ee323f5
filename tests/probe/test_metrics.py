"""Probe metrics against slow references on hand-made examples."""

from __future__ import annotations

import itertools
import math

import numpy as np
import pytest

from mclx.probe import metrics


def slow_auc(y: np.ndarray, s: np.ndarray) -> float:
    """Probability that a random positive outscores a random negative (ties count half)."""
    pos, neg = s[y > 0], s[y == 0]
    pairs = [(p > n) + 0.5 * (p == n) for p, n in itertools.product(pos, neg)]
    return float(np.mean(pairs))


def slow_ap(y: np.ndarray, s: np.ndarray) -> float:
    order = sorted(range(len(s)), key=lambda i: -s[i])
    hits, total = 0, 0.0
    for rank, i in enumerate(order, start=1):
        if y[i]:
            hits += 1
            total += hits / rank
    return total / y.sum()


Y = np.array([[1, 0, 1], [0, 1, 1], [1, 1, 0], [0, 0, 1], [1, 0, 0], [0, 1, 0]], dtype=np.float32)
S = np.array(
    [[0.9, 0.2, 0.6], [0.3, 0.8, 0.7], [0.6, 0.4, 0.2], [0.1, 0.1, 0.9], [0.6, 0.3, 0.5], [0.2, 0.9, 0.1]]
)


def test_multilabel_metrics_equal_slow_references() -> None:
    auc = np.mean([slow_auc(Y[:, c], S[:, c]) for c in range(3)])
    ap = np.mean([slow_ap(Y[:, c], S[:, c]) for c in range(3)])
    assert metrics.macro(metrics.roc_auc, Y, S) == pytest.approx(auc)
    assert metrics.macro(metrics.average_precision, Y, S) == pytest.approx(ap)
    assert metrics.roc_auc(np.array([1, 0, 1, 0]), np.array([0.5, 0.5, 0.9, 0.1])) == pytest.approx(0.875)
    assert math.isnan(metrics.roc_auc(np.ones(3), np.arange(3.0)))


def test_classification_and_regression_metrics() -> None:
    y, p = np.array([0, 0, 1, 1, 2, 2]), np.array([0, 1, 1, 1, 2, 0])
    assert metrics.accuracy(y, p) == pytest.approx(4 / 6)
    f1 = [2 * 1 / (2 + 1 + 1), 2 * 2 / (4 + 1 + 0), 2 * 1 / (2 + 0 + 1)]
    assert metrics.macro_f1(y, p, 3) == pytest.approx(np.mean(f1))
    assert metrics.r2(np.array([1.0, 2, 3]), np.array([1.0, 2, 3])) == 1.0
    assert metrics.r2(np.array([1.0, 2, 3]), np.full(3, 2.0)) == 0.0


def test_retrieval_at_k() -> None:
    db = np.array([[1.0, 0], [0.9, 0.1], [0, 1], [0.1, 0.9]])
    q = np.array([[1.0, 0.05]])
    rel = np.array([[True, False, False, True]])
    m_ap, p_at = metrics.retrieval_at_k(q, db, rel, k=2)  # ranking: 0 (hit), 1 (miss)
    assert m_ap == pytest.approx(1.0 / 2) and p_at == pytest.approx(0.5)


def test_ci95_uses_student_t() -> None:
    mean, _, hi = metrics.ci95([1.0, 2.0, 3.0])
    assert mean == 2.0 and hi - mean == pytest.approx(4.303 * 1.0 / math.sqrt(3))
    assert metrics.ci95([0.5]) == (0.5, 0.5, 0.5)
