"""Metrics of the probes and their confidence intervals (numpy only)."""

from __future__ import annotations

import math

import numpy as np

# two-sided 95% quantiles of Student's t, by degrees of freedom
T95 = {1: 12.706, 2: 4.303, 3: 3.182, 4: 2.776, 5: 2.571, 6: 2.447, 7: 2.365, 8: 2.306, 9: 2.262,
       10: 2.228, 12: 2.179, 15: 2.131, 20: 2.086, 25: 2.060, 30: 2.042}  # fmt: skip


def ci95(values: list[float]) -> tuple[float, float, float]:
    """(mean, lo, hi): t-interval of the mean over seeds; a single value has a zero-width interval."""
    x = np.asarray(values, dtype=np.float64)
    mean = float(x.mean())
    if len(x) < 2:
        return mean, mean, mean
    df = len(x) - 1
    t = T95.get(df) or T95[max(k for k in T95 if k <= df)] if df <= 30 else 1.96
    half = t * float(x.std(ddof=1)) / math.sqrt(len(x))
    return mean, mean - half, mean + half


def accuracy(y: np.ndarray, pred: np.ndarray) -> float:
    return float((y == pred).mean())


def macro_f1(y: np.ndarray, pred: np.ndarray, n_classes: int) -> float:
    """Mean over the classes present in y or pred of 2 TP / (2 TP + FP + FN)."""
    scores = []
    for c in range(n_classes):
        tp = np.sum((pred == c) & (y == c))
        fp = np.sum((pred == c) & (y != c))
        fn = np.sum((pred != c) & (y == c))
        if tp + fp + fn:
            scores.append(2 * tp / (2 * tp + fp + fn))
    return float(np.mean(scores)) if scores else 0.0


def roc_auc(y: np.ndarray, score: np.ndarray) -> float:
    """Binary ROC-AUC by ranks (ties get their mean rank); NaN if y has one class only."""
    pos, neg = int(y.sum()), int(len(y) - y.sum())
    if pos == 0 or neg == 0:
        return math.nan
    order = np.argsort(score, kind="mergesort")
    ranks = np.empty(len(score))
    sorted_scores = score[order]
    i = 0
    while i < len(score):
        j = i
        while j + 1 < len(score) and sorted_scores[j + 1] == sorted_scores[i]:
            j += 1
        ranks[order[i : j + 1]] = (i + j) / 2 + 1
        i = j + 1
    return float((ranks[y > 0].sum() - pos * (pos + 1) / 2) / (pos * neg))


def average_precision(y: np.ndarray, score: np.ndarray) -> float:
    """Area under the precision-recall curve as the mean precision at each positive (step-wise)."""
    pos = int(y.sum())
    if pos == 0:
        return math.nan
    order = np.argsort(-score, kind="mergesort")
    hits = y[order] > 0
    precision = np.cumsum(hits) / np.arange(1, len(y) + 1)
    return float(precision[hits].sum() / pos)


def macro(metric: object, y: np.ndarray, score: np.ndarray) -> float:
    """Mean of a binary metric over the columns of (N, C) y and scores, skipping undefined ones."""
    values = [metric(y[:, c], score[:, c]) for c in range(y.shape[1])]  # type: ignore[operator]
    values = [v for v in values if not math.isnan(v)]
    return float(np.mean(values)) if values else math.nan


def r2(y: np.ndarray, pred: np.ndarray) -> float:
    ss_res = float(((y - pred) ** 2).sum())
    ss_tot = float(((y - y.mean()) ** 2).sum())
    return 1.0 - ss_res / ss_tot if ss_tot > 0 else math.nan


def retrieval_at_k(
    queries: np.ndarray, database: np.ndarray, relevant: np.ndarray, k: int = 10
) -> tuple[float, float]:
    """(MAP@k, precision@k) of cosine nearest neighbours.

    queries (Q, D), database (M, D); relevant (Q, M) bool. AP@k is the sum of precision at each
    relevant hit in the top k, divided by min(k, number of relevant items).
    """
    k = min(k, database.shape[0])
    q = queries / np.maximum(np.linalg.norm(queries, axis=1, keepdims=True), 1e-12)
    d = database / np.maximum(np.linalg.norm(database, axis=1, keepdims=True), 1e-12)
    top = np.argsort(-(q @ d.T), axis=1, kind="mergesort")[:, :k]  # (Q, k)
    hits = np.take_along_axis(relevant, top, axis=1)  # (Q, k)
    precision_at = np.cumsum(hits, axis=1) / np.arange(1, k + 1)
    n_rel = np.minimum(relevant.sum(axis=1), k)
    ok = n_rel > 0
    ap = (precision_at * hits).sum(axis=1)[ok] / n_rel[ok]
    return float(ap.mean()) if ok.any() else math.nan, float(hits.mean())
