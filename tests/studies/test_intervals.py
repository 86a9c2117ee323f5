"""The two-level bootstrap: trainings, then clips, against a slow loop of its definition."""

from __future__ import annotations

import numpy as np
import pytest

from studies.intervals import cell_interval, paired_difference


def slow_cell(scores: np.ndarray, replicates: int, seed: int) -> tuple[float, float]:
    """The definition, one replicate at a time: redraw trainings, then clips, take the mean."""
    rng = np.random.default_rng(seed)
    r, n = scores.shape
    clip_draws = rng.integers(n, size=(replicates, n))
    run_draws = rng.integers(r, size=(replicates, r))
    reps = [scores[run_draws[k]][:, clip_draws[k]].mean() for k in range(replicates)]
    lo, hi = np.percentile(reps, [2.5, 97.5])
    return float(lo), float(hi)


def test_cell_interval_equals_the_definition() -> None:
    scores = np.random.default_rng(1).random((3, 40))
    got = cell_interval(scores, replicates=300, seed=5)
    lo, hi = slow_cell(scores, 300, 5)
    assert got.mean == pytest.approx(scores.mean())
    assert (got.lo, got.hi) == pytest.approx((lo, hi))
    assert got.trainings == 3


def test_the_interval_widens_with_the_spread_between_trainings() -> None:
    """Two cells with the same clip noise; in one the trainings disagree by 0.2. Only the
    two-level interval sees that; with one training it cannot."""
    rng = np.random.default_rng(0)
    clips = (rng.random(200) < 0.6).astype(float)
    agree = np.stack([clips, clips, clips])
    disagree = np.stack([(rng.random(200) < p).astype(float) for p in (0.5, 0.6, 0.7)])
    narrow, wide = cell_interval(agree), cell_interval(disagree)
    assert wide.hi - wide.lo > 1.5 * (narrow.hi - narrow.lo)
    single = cell_interval(disagree[:1])
    assert single.trainings == 1 and single.hi - single.lo < wide.hi - wide.lo


def test_paired_difference_pairs_the_clips() -> None:
    """Trainings that agree, and b = a + 0.1 on every clip: the paired difference is exactly 0.1
    whatever clips are drawn (unpaired, the clip noise would widen it)."""
    rng = np.random.default_rng(2)
    a = np.repeat(rng.random((1, 50)), 2, axis=0)
    d = paired_difference(a + 0.1, a, replicates=200)
    assert d.mean == pytest.approx(0.1)
    assert d.lo == pytest.approx(0.1) and d.hi == pytest.approx(0.1) and d.excludes_zero
    with pytest.raises(ValueError, match="different clips"):
        paired_difference(a, a[:, :10])
