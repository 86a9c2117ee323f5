"""Intervals that cover the training seed as well as the test clips: a two-level bootstrap.

A cell of a study is trained R times; each training is probed on the same N test clips, giving a
per-clip score (a 0/1 correct answer averaged over probe seeds, or a query's AP@10). The cell's
score is the mean over its trainings of the mean over clips. One bootstrap replicate redraws the
trainings (R with replacement), then the clips (N with replacement, the same clips for every
training), and takes that mean again; the 95% interval is the 2.5th and 97.5th percentiles of
the replicates. A difference between two cells is paired on the clips (one clip draw for both)
and redraws each cell's trainings independently. With one training the interval covers the
clips only, and the tables say so.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

REPLICATES = 2000


@dataclass(frozen=True)
class Interval:
    mean: float
    lo: float
    hi: float
    trainings: int  # R: 1 means the interval covers the test clips only

    @property
    def excludes_zero(self) -> bool:
        return self.lo > 0 or self.hi < 0


def _clip_weights(rng: np.random.Generator, n: int, replicates: int) -> np.ndarray:
    """(replicates, N) weights of each clip in a replicate's clip draw (counts / N)."""
    draws = rng.integers(n, size=(replicates, n))
    weights = np.zeros((replicates, n))
    np.add.at(weights, (np.arange(replicates)[:, None], draws), 1.0)
    return weights / n


def _run_means(scores: np.ndarray, weights: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """(replicates,) the mean over a redraw of the R trainings of their weighted clip means."""
    r = scores.shape[0]
    per_run = weights @ scores.T  # (replicates, R): each training's mean over the clip draw
    picks = rng.integers(r, size=(len(weights), r))
    return np.take_along_axis(per_run, picks, axis=1).mean(axis=1)


def cell_interval(scores: np.ndarray, replicates: int = REPLICATES, seed: int = 0) -> Interval:
    """scores: (R, N) per-clip scores of R trainings on the same N clips."""
    scores = np.asarray(scores, dtype=np.float64)
    rng = np.random.default_rng(seed)
    reps = _run_means(scores, _clip_weights(rng, scores.shape[1], replicates), rng)
    lo, hi = np.percentile(reps, [2.5, 97.5])
    return Interval(float(scores.mean()), float(lo), float(hi), scores.shape[0])


def paired_difference(a: np.ndarray, b: np.ndarray, replicates: int = REPLICATES, seed: int = 0) -> Interval:
    """Cell a minus cell b: a (Ra, N), b (Rb, N) per-clip scores on the same N clips."""
    a, b = np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64)
    if a.shape[1] != b.shape[1]:
        raise ValueError(f"the cells were scored on different clips ({a.shape[1]} and {b.shape[1]})")
    rng = np.random.default_rng(seed)
    weights = _clip_weights(rng, a.shape[1], replicates)
    reps = _run_means(a, weights, rng) - _run_means(b, weights, rng)
    lo, hi = np.percentile(reps, [2.5, 97.5])
    return Interval(float(a.mean() - b.mean()), float(lo), float(hi), min(a.shape[0], b.shape[0]))
