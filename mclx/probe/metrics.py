"""Probe metrics and their confidence intervals, in numpy only (no scikit-learn, no scipy).

Every metric is "higher is better". Ties in scores are handled so that a result never
depends on the order of the rows (saturated sigmoids tie exactly in float32).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence

import numpy as np

K_RETRIEVAL = 10


def t_two_sided_mass(t: float, df: int) -> float:
    """P(|T| < t) for Student's t with integer ``df`` degrees of freedom.

    Finite series in theta = atan(t / sqrt(df)) (Abramowitz & Stegun 26.7.3-4): exact for
    integer df, which is all a mean over seeds needs.
    """
    if df < 1:
        raise ValueError("df must be at least 1")
    theta = math.atan(abs(t) / math.sqrt(df))
    s, c2 = math.sin(theta), math.cos(theta) ** 2
    if df % 2 == 0:  # sin(th) * (1 + 1/2 c^2 + 1*3/(2*4) c^4 + ... up to c^(df-2))
        term, total = 1.0, 1.0
        for k in range(1, df // 2):
            term *= (2 * k - 1) / (2 * k) * c2
            total += term
        return s * total
    if df == 1:
        return 2 * theta / math.pi
    # odd: 2/pi * (th + sin(th) * (c + 2/3 c^3 + 2*4/(3*5) c^5 + ... up to c^(df-2)))
    term = math.cos(theta)
    total = term
    for j in range(2, (df - 1) // 2 + 1):
        term *= (2 * j - 2) / (2 * j - 1) * c2
        total += term
    return 2 / math.pi * (theta + s * total)


def t_quantile(confidence: float, df: int) -> float:
    """The t with P(|T| < t) = ``confidence`` (e.g. 0.95 -> 2.776 for df 4), by bisection."""
    lo, hi = 0.0, 1.0
    while t_two_sided_mass(hi, df) < confidence:
        hi *= 2
    for _ in range(200):
        mid = (lo + hi) / 2
        if t_two_sided_mass(mid, df) < confidence:
            lo = mid
        else:
            hi = mid
        if hi - lo < 1e-12:
            break
    return (lo + hi) / 2


def ci95(values: Sequence[float]) -> tuple[float, float, float]:
    """(mean, lo, hi): Student-t 95% interval of the mean over seeds.

    NaN bounds when there are fewer than two finite values (no interval can be given);
    NaN values (a metric undefined for a seed) make the mean NaN too, never silently dropped.
    """
    x = np.asarray(values, dtype=np.float64)
    if len(x) == 0 or not np.isfinite(x).all():
        return math.nan, math.nan, math.nan
    mean = float(x.mean())
    if len(x) < 2:
        return mean, math.nan, math.nan
    half = t_quantile(0.95, len(x) - 1) * float(x.std(ddof=1)) / math.sqrt(len(x))
    return mean, mean - half, mean + half


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
    (recall gain) * precision, tied scores entering together; NaN if y has no positive."""
    positive = y > 0
    pos = int(positive.sum())
    if pos == 0:
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


def retrieval_at_k(
    queries: np.ndarray, database: np.ndarray, relevant: np.ndarray, k: int = K_RETRIEVAL
) -> tuple[float, float]:
    """(MAP@k, precision@k) over the queries; queries with no relevant item are left out of MAP
    (they still count in precision@k). See :func:`retrieval_per_query`."""
    ap, precision = retrieval_per_query(queries, database, relevant, k)
    ok = np.isfinite(ap)
    return (float(ap[ok].mean()) if ok.any() else math.nan), float(precision.mean())
