"""Confidence intervals and paired comparisons that cover the test clips *and* the seeds.

A result is the mean over seeds of a metric computed on each seed's test clips. Its 95%
interval comes from a two-level bootstrap: every replicate draws the seeds with replacement
and, for every distinct test set, the test clips with replacement (one draw per test set,
shared by every seed that tests on it), then recomputes the mean. With k-fold splits the seeds
of one repetition test on disjoint folds: whole repetitions are drawn instead of single seeds,
since drawing folds would count the clips' uncertainty twice. A paired comparison of two
feature sets uses the *same* replicates for both (same seeds, same clips) and reports the
percentile interval of the difference and a two-sided bootstrap p-value.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from mclx.probe import metrics

RESAMPLES = 1000
BOOTSTRAP_SEED = 20241
MetricFn = Callable[[np.ndarray, np.ndarray], float]


@dataclass(frozen=True)
class Outcome:
    """One seed's test result of one (features, head), from which any of its metrics follows.

    ``test_set``: which distinct test set the seed used (seeds sharing a test set are resampled
    together); ``y`` (n,) or (n, C) truth; ``p`` (n,) predicted classes, (n, C) tag scores,
    (n,) predicted values, or (n,) per-query retrieval scores (NaN: query left out).
    """

    test_set: int
    y: np.ndarray
    p: np.ndarray


def _nanmean_of_p(y: np.ndarray, p: np.ndarray) -> float:
    kept = p[np.isfinite(p)]
    return float(kept.mean()) if len(kept) else math.nan


METRICS: dict[str, MetricFn] = {
    "accuracy": metrics.accuracy,
    "macro_f1": metrics.macro_f1,
    "roc_auc": lambda y, p: metrics.macro(metrics.roc_auc, y, p),
    "pr_auc": lambda y, p: metrics.macro(metrics.average_precision, y, p),
    "r2": metrics.r2,
    "map_at_10": _nanmean_of_p,  # retrieval: p holds each query's AP@10 (NaN: no relevant item)
    "precision_at_10": _nanmean_of_p,
}


@dataclass(frozen=True)
class Replicates:
    """The bootstrap draws of one probe run, shared by every feature set and head.

    ``seeds`` (R, S) int: the seeds drawn in each replicate; ``clips[t]`` (R, n_t) int: the
    resampled rows of test set t in each replicate.
    """

    seeds: np.ndarray
    clips: dict[int, np.ndarray]

    @classmethod
    def draw(cls, test_sets: list[int], sizes: dict[int, int], resamples: int = RESAMPLES,
             seed: int = BOOTSTRAP_SEED, repetitions: list[int] | None = None) -> Replicates:  # fmt: skip
        """``test_sets`` (S,): the test set of each seed; ``sizes``: clips in each test set.

        ``repetitions`` (S,), for k-fold: which repetition of the folds each seed belongs to. The
        seeds of one repetition test on disjoint folds, so drawing single seeds would resample
        clips a second time, on top of the clip draws: whole repetitions are drawn instead (all
        of equal size), or the seeds are kept as they are (a single or a partial repetition)."""
        rng = np.random.default_rng(seed)
        s = len(test_sets)
        if repetitions is None:
            seeds = rng.integers(0, s, size=(resamples, s))
        else:
            groups = [np.flatnonzero(np.asarray(repetitions) == g) for g in sorted(set(repetitions))]
            if len(groups) > 1 and len({len(g) for g in groups}) == 1:
                drawn = rng.integers(0, len(groups), size=(resamples, len(groups)))
                seeds = np.stack(groups)[drawn].reshape(resamples, -1)
            else:
                seeds = np.tile(np.arange(s), (resamples, 1))
        clips = {t: rng.integers(0, n, size=(resamples, n)) for t, n in sorted(sizes.items())}
        return cls(seeds, clips)


def _accuracy_all(y: np.ndarray, p: np.ndarray, rows: np.ndarray) -> np.ndarray:
    return (y == p).astype(np.float64)[rows].mean(axis=1)


def _nanmean_all(y: np.ndarray, p: np.ndarray, rows: np.ndarray) -> np.ndarray:
    v = p[rows]  # (R, n)
    ok = np.isfinite(v)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(ok, v, 0.0).sum(axis=1) / ok.sum(axis=1)


def _macro_f1_all(y: np.ndarray, p: np.ndarray, rows: np.ndarray) -> np.ndarray:
    """macro_f1 of every replicate at once: class counts by one bincount over (replicate, class)."""
    r, _ = rows.shape
    c = int(max(y.max(), p.max())) + 1
    yr, pr = y[rows], p[rows]  # (R, n)
    offset = (np.arange(r) * c)[:, None]
    true = np.bincount((yr + offset).ravel(), minlength=r * c).reshape(r, c)
    pred = np.bincount((pr + offset).ravel(), minlength=r * c).reshape(r, c)
    tp = np.bincount((yr + offset)[yr == pr], minlength=r * c).reshape(r, c)
    present = (true + pred) > 0
    f1 = np.where(present, 2 * tp / np.maximum(true + pred, 1), 0.0)
    return f1.sum(axis=1) / present.sum(axis=1)


# The same metrics computed for all replicates in one call: (y, p, rows (R, n)) -> (R,).
VECTORISED: dict[str, Callable[[np.ndarray, np.ndarray, np.ndarray], np.ndarray]] = {
    "accuracy": _accuracy_all,
    "macro_f1": _macro_f1_all,
    "map_at_10": _nanmean_all,
    "precision_at_10": _nanmean_all,
}


def replicate_values(outcomes: list[Outcome], metric: str, reps: Replicates) -> np.ndarray:
    """(R,) the metric's mean over the drawn seeds on the drawn clips, per replicate (NaN if undefined)."""
    per_seed = np.empty((len(outcomes), len(reps.seeds)))  # (S, R): seed s on replicate r's clips
    computed: dict[int, int] = {}  # id(outcome) -> the row already holding it (seeds may share one)
    for s, o in enumerate(outcomes):
        if id(o) in computed:
            per_seed[s] = per_seed[computed[id(o)]]
            continue
        computed[id(o)] = s
        rows = reps.clips[o.test_set]
        if metric in VECTORISED:
            per_seed[s] = VECTORISED[metric](o.y, o.p, rows)
        else:
            fn = METRICS[metric]
            per_seed[s] = [fn(o.y[r], o.p[r]) for r in rows]
    return np.take_along_axis(per_seed, reps.seeds.T, axis=0).mean(axis=0)


PER_CLIP = ("accuracy", "map_at_10", "precision_at_10")  # metrics that are a mean over test clips


def per_clip(outcomes: list[Outcome], metric: str) -> np.ndarray | None:
    """(n,) each test clip's score, averaged over the seeds: 1/0 for a correct single-label answer,
    a query's AP@10 or precision@10 (NaN: no relevant item). The metric is their mean, so a study
    can resample clips and trainings itself. None for metrics that are not a mean over clips, and
    when the seeds test on different clips (k-fold)."""
    if metric not in PER_CLIP or len({o.test_set for o in outcomes}) != 1:
        return None
    if metric == "accuracy":
        if outcomes[0].p.ndim != 1:
            return None
        return np.mean([(o.y == o.p).astype(np.float64) for o in outcomes], axis=0)
    return np.mean([o.p.astype(np.float64) for o in outcomes], axis=0)


def point(outcomes: list[Outcome], metric: str) -> list[float]:
    """The metric of every seed on its whole test set."""
    return [METRICS[metric](o.y, o.p) for o in outcomes]


def percentile_interval(values: np.ndarray) -> tuple[float, float]:
    """(lo, hi) 2.5th and 97.5th percentiles of the finite replicates; NaN when too few are finite."""
    finite = values[np.isfinite(values)]
    if len(finite) < 0.9 * len(values) or len(finite) < 2:
        return math.nan, math.nan
    lo, hi = np.percentile(finite, [2.5, 97.5])
    return float(lo), float(hi)


def p_value(diffs: np.ndarray) -> float:
    """Two-sided bootstrap p-value of a difference: twice the smaller tail mass at 0 (at most 1)."""
    finite = diffs[np.isfinite(diffs)]
    if len(finite) == 0:
        return math.nan
    below = (np.sum(finite <= 0) + 1) / (len(finite) + 1)
    above = (np.sum(finite >= 0) + 1) / (len(finite) + 1)
    return float(min(1.0, 2 * min(below, above)))
