"""Probe metrics in numpy only (no scikit-learn, no scipy); their intervals are in ``stats``.

Every metric is "higher is better". Ties in scores are handled so that a result never
depends on the order of the rows (saturated sigmoids tie exactly in float32).
"""

from __future__ import annotations

import math
from collections.abc import Callable

import numpy as np

K_RETRIEVAL = 10


def accuracy(y: np.ndarray, pred: np.ndarray) -> float:
    """y, pred: (N,) class indices."""
    return float((y == pred).mean())


def macro_f1(y: np.ndarray, pred: np.ndarray) -> float:
    """Mean F1 over the classes present in y or pred (a class never seen nor predicted is not scored)."""
    scores = []
    for c in np.union1d(y, pred):
        tp = np.sum((pred == c) & (y == c))
        fp = np.sum((pred == c) & (y != c))
        fn = np.sum((pred != c) & (y == c))
        scores.append(2 * tp / (2 * tp + fp + fn))
    return float(np.mean(scores))


def confusion(y: np.ndarray, pred: np.ndarray, n_classes: int) -> np.ndarray:
    """(C, C) int64 counts, rows = true class, columns = predicted class."""
    out = np.zeros((n_classes, n_classes), dtype=np.int64)
    np.add.at(out, (y, pred), 1)
    return out


def roc_auc(y: np.ndarray, score: np.ndarray) -> float:
    """Binary ROC-AUC (Mann-Whitney: tied scores share their mean rank); NaN if y has one class."""
    positive = y > 0
    pos, neg = int(positive.sum()), int((~positive).sum())
    if pos == 0 or neg == 0:
        return math.nan
    _, inverse, counts = np.unique(score, return_inverse=True, return_counts=True)
    first_rank = np.cumsum(counts) - counts + 1  # 1-based rank of each distinct score's first row
    ranks = (first_rank + (counts - 1) / 2)[inverse]
    return float((ranks[positive].sum() - pos * (pos + 1) / 2) / (pos * neg))


def average_precision(y: np.ndarray, score: np.ndarray) -> float:
    """Area under the step-wise precision-recall curve: sum over distinct thresholds of
    (recall gain) * precision, tied scores entering together. NaN if y has no positive, or no
    negative (every ranking then scores 1: nothing is measured), as for the ROC-AUC."""
    positive = y > 0
    pos = int(positive.sum())
    if pos == 0 or pos == len(positive):
        return math.nan
    order = np.argsort(-score, kind="stable")
    s, hits = score[order], positive[order]
    last = np.flatnonzero(np.append(s[1:] != s[:-1], True))  # last row of each distinct score
    tp = np.cumsum(hits)[last]
    precision, recall = tp / (last + 1), tp / pos
    return float(np.sum(np.diff(recall, prepend=0.0) * precision))


def macro(metric: Callable[[np.ndarray, np.ndarray], float], y: np.ndarray, score: np.ndarray) -> float:
    """Mean of a binary metric over the columns of (N, C) y and (N, C) scores.

    Columns where the metric is undefined (a tag with no positive or no negative in y) are
    left out; ``undefined_columns`` names them so the caller can say so.
    """
    values = [metric(y[:, c], score[:, c]) for c in range(y.shape[1])]
    kept = [v for v in values if not math.isnan(v)]
    return float(np.mean(kept)) if kept else math.nan


def undefined_columns(y: np.ndarray) -> list[int]:
    """Columns of (N, C) multi-hot y with no positive or no negative: no AUC can be computed."""
    n_pos = (y > 0).sum(axis=0)
    return [int(c) for c in np.flatnonzero((n_pos == 0) | (n_pos == len(y)))]


def r2(y: np.ndarray, pred: np.ndarray) -> float:
    """Coefficient of determination of (N,) predictions; NaN when y is constant."""
    ss_res = float(((y - pred) ** 2).sum())
    ss_tot = float(((y - y.mean()) ** 2).sum())
    return 1.0 - ss_res / ss_tot if ss_tot > 0 else math.nan


def retrieval_per_query(
    queries: np.ndarray, database: np.ndarray, relevant: np.ndarray, k: int = K_RETRIEVAL
) -> tuple[np.ndarray, np.ndarray]:
    """Each query's AP@k (NaN for a query with no relevant item) and precision@k, (Q,) each.

    queries (Q, D), database (M, D), relevant (Q, M) bool; cosine nearest neighbours. AP@k is
    the sum of precision@i over the relevant hits i <= k, divided by min(k, the number of
    relevant items). Equal similarities keep database order.
    """
    k = min(k, database.shape[0])
    q = queries / np.maximum(np.linalg.norm(queries, axis=1, keepdims=True), 1e-12)
    d = database / np.maximum(np.linalg.norm(database, axis=1, keepdims=True), 1e-12)
    top = np.argsort(-(q @ d.T), axis=1, kind="stable")[:, :k]  # (Q, k)
    hits = np.take_along_axis(relevant, top, axis=1)  # (Q, k)
    precision_at = np.cumsum(hits, axis=1) / np.arange(1, k + 1)
    n_rel = np.minimum(relevant.sum(axis=1), k)
    with np.errstate(invalid="ignore", divide="ignore"):
        ap = np.where(n_rel > 0, (precision_at * hits).sum(axis=1) / n_rel, np.nan)
    return ap, hits.mean(axis=1)
