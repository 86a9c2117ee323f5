"""Intervals and paired comparisons: they find a known margin and stay calibrated under the null."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from mclx.probe import stats
from mclx.probe.run import ProbeSettings, run_probe

from .helpers import blobs, write_csv_task, write_features


def _outcome(y: np.ndarray, right: np.ndarray, classes: int) -> stats.Outcome:
    """Predictions that are right where ``right`` (n,) is true and a wrong class elsewhere."""
    return stats.Outcome(0, y, np.where(right, y, (y + 1) % classes))


def test_identical_features_differ_by_exactly_zero() -> None:
    rng = np.random.default_rng(0)
    y = rng.integers(0, 4, 200)
    a = [_outcome(y, rng.random(200) < 0.7, 4)] * 3
    reps = stats.Replicates.draw([0, 0, 0], {0: 200}, resamples=300)
    diffs = stats.replicate_values(a, "accuracy", reps) * 0
    assert stats.percentile_interval(diffs) == (0.0, 0.0) and stats.p_value(diffs) == 1.0


def test_a_known_margin_is_found() -> None:
    rng = np.random.default_rng(1)
    y = rng.integers(0, 4, 400)
    a = [_outcome(y, rng.random(400) < 0.80, 4)]
    b = [_outcome(y, rng.random(400) < 0.65, 4)]
    reps = stats.Replicates.draw([0], {0: 400}, resamples=1000)
    diffs = stats.replicate_values(a, "accuracy", reps) - stats.replicate_values(b, "accuracy", reps)
    lo, hi = stats.percentile_interval(diffs)
    assert 0 < lo < 0.15 < hi and stats.p_value(diffs) < 0.01


def test_equal_features_cover_zero_in_at_least_90_of_100_trials() -> None:
    """Calibration under the null: A and B equally good (independent errors, same rate)."""
    covered = 0
    for trial in range(100):
        rng = np.random.default_rng(1000 + trial)
        y = rng.integers(0, 3, 150)
        a = [_outcome(y, rng.random(150) < 0.7, 3)]
        b = [_outcome(y, rng.random(150) < 0.7, 3)]
        reps = stats.Replicates.draw([0], {0: 150}, resamples=200, seed=trial)
        fn = "accuracy"
        lo, hi = stats.percentile_interval(
            stats.replicate_values(a, fn, reps) - stats.replicate_values(b, fn, reps)
        )
        covered += lo <= 0 <= hi
    assert covered >= 90


def test_interval_widens_with_fewer_test_clips_and_covers_seed_spread() -> None:
    rng = np.random.default_rng(2)
    widths = []
    for n in (60, 600):
        y = rng.integers(0, 4, n)
        outs = [_outcome(y, rng.random(n) < 0.7, 4)]
        reps = stats.Replicates.draw([0], {0: n}, resamples=500)
        lo, hi = stats.percentile_interval(stats.replicate_values(outs, "accuracy", reps))
        widths.append(hi - lo)
    assert widths[0] > 2 * widths[1]  # sd ~ 1/sqrt(n): about 3x
    # seeds that disagree widely: the interval reaches beyond what the clips alone would give
    y = rng.integers(0, 4, 2000)
    outs = [_outcome(y, rng.random(2000) < rate, 4) for rate in (0.5, 0.6, 0.7, 0.8, 0.9)]
    reps = stats.Replicates.draw([0] * 5, {0: 2000}, resamples=500)
    lo, hi = stats.percentile_interval(stats.replicate_values(outs, "accuracy", reps))
    assert hi - lo > 0.1


def test_kfold_intervals_count_the_clips_once() -> None:
    # 500 clips in 5 folds, each clip right with probability 0.7 and no model variance: the mean
    # accuracy's 95% interval should be about 2 * 1.96 * sqrt(0.21 / 500) = 0.080 wide. Drawing
    # single folds on top of the clips (the earlier scheme) made it about 0.13.
    rng = np.random.default_rng(3)
    widths = []
    for trial in range(10):
        folds = []
        for f in range(5):
            y = rng.integers(0, 3, 100)
            folds.append(stats.Outcome(f, y, np.where(rng.random(100) < 0.7, y, (y + 1) % 3)))
        reps = stats.Replicates.draw(list(range(5)), dict.fromkeys(range(5), 100), resamples=400,
                                     seed=trial, repetitions=[0] * 5)  # fmt: skip
        lo, hi = stats.percentile_interval(stats.replicate_values(folds, "accuracy", reps))
        widths.append(hi - lo)
    assert 0.065 < float(np.mean(widths)) < 0.095
    # Two whole repetitions: repetitions are drawn (each seed of one with all of it), never single folds.
    reps = stats.Replicates.draw(list(range(10)), dict.fromkeys(range(10), 100), resamples=50,
                                 repetitions=[s // 5 for s in range(10)])  # fmt: skip
    halves = {tuple(half) for r in reps.seeds for half in r.reshape(2, 5).tolist()}
    assert halves == {(0, 1, 2, 3, 4), (5, 6, 7, 8, 9)}


def test_probe_compares_feature_sets_on_the_same_clips(tmp_path: Path) -> None:
    x, y = blobs(60, 4, 8, spread=2.5, seed=3)
    noise = np.random.default_rng(4).standard_normal(x.shape) * 6.0
    splits = [("train", "train", "valid", "test")[i % 4] for i in range(len(y))]
    clips = write_csv_task(tmp_path / "t", [f"k{v}" for v in y], splits)
    good = write_features(tmp_path / "good.h5", clips, x)
    poor = write_features(tmp_path / "poor.h5", clips, x + noise)
    report = run_probe(
        ProbeSettings(
            "t",
            str(tmp_path / "t"),
            embeddings=(good, poor),
            head="linear",
            seeds=2,
            quiet=True,
            compare=((good, poor),),
        )
    )
    acc = next(c for c in report["comparisons"] if c["metric"] == "accuracy" and c["head"] == "linear")
    assert (acc["a"], acc["b"]) == (good, poor)
    assert acc["diff"] > 0 and acc["ci95"][0] > 0 and acc["p"] < 0.05
    # the same store named twice is one feature set, not a comparison of a set with itself
    same = run_probe(
        ProbeSettings("t", str(tmp_path / "t"), embeddings=(good, good), head="linear", seeds=1, quiet=True)
    )
    assert len(same["features"]) == 1


def test_vectorised_replicates_equal_the_metric_applied_to_each_resample() -> None:
    rng = np.random.default_rng(7)
    y = rng.integers(0, 5, 120)
    p = np.where(rng.random(120) < 0.6, y, rng.integers(0, 6, 120))  # predicts a class absent from y too
    ap = np.where(rng.random(120) < 0.1, np.nan, rng.random(120))
    outs = {"accuracy": [stats.Outcome(0, y, p)], "macro_f1": [stats.Outcome(0, y, p)],
            "map_at_10": [stats.Outcome(0, y, ap)]}  # fmt: skip
    reps = stats.Replicates.draw([0], {0: 120}, resamples=50)
    for metric, o in outs.items():
        fast = stats.replicate_values(o, metric, reps)
        slow = [stats.METRICS[metric](o[0].y[r], o[0].p[r]) for r in reps.clips[0]]
        np.testing.assert_allclose(fast, slow, rtol=1e-12, atol=1e-12)
