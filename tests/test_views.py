"""View strategies: where each view's segments start."""

from __future__ import annotations

import numpy as np

from mclx.config import load_config
from mclx.views import effective_views, sample_starts, stratified_starts, view_sizes

SEG = 100
LENGTHS = np.array([1000, 5000, 250, 100_000])


def starts(*overrides: str) -> list[np.ndarray]:
    cfg = load_config(None, list(overrides)).views
    return sample_starts(LENGTHS, cfg, SEG, np.random.default_rng(0))


def test_same_views_start_together() -> None:
    a, b = starts("views.positive='same'")
    assert a.shape == (4, 1) and np.array_equal(a, b)


def test_adjacent_chunks_follow_each_other() -> None:
    views = starts("views.positive='adjacent'", "views.n_views=4")
    assert len(views) == 4
    fits = LENGTHS >= 4 * SEG
    for v in range(1, 4):
        assert np.array_equal(views[v][fits], views[v - 1][fits] + SEG)
    assert (views[3][fits] + SEG <= LENGTHS[fits, None]).all()


def test_adjacent_chunks_of_a_short_track_overlap_instead_of_running_into_silence() -> None:
    # 4 chunks of 100 need 400 samples: the 250-sample track gets them every 50 samples.
    views = starts("views.positive='adjacent'", "views.n_views=4")
    short = int(np.flatnonzero(LENGTHS == 250)[0])
    firsts = [int(view[short, 0]) for view in views]
    assert np.diff(firsts).tolist() == [50, 50, 50]
    assert firsts[-1] + SEG <= 250
    # Every chunk of every view inside its track, also with several segments per view.
    cfg = load_config(None, ["views.input='track'", "views.track_segments=3"]).views
    lengths = np.array([2 * SEG, 5 * SEG, 60 * SEG])
    for a in range(20):
        for view in sample_starts(lengths, cfg, SEG, np.random.default_rng(a)):
            assert (view >= 0).all() and (view + SEG <= lengths[:, None]).all()


def test_random_views_stay_inside_the_track() -> None:
    a, b = starts("views.positive='random'")
    assert ((a + SEG <= np.maximum(LENGTHS, SEG)[:, None]) & (a >= 0)).all()
    assert not np.array_equal(a, b)


def test_segment_against_its_track() -> None:
    cfg = load_config(None, ["views.positive='track'", "views.track_segments=5"]).views
    assert view_sizes(cfg) == [1, 5]
    anchor, track = sample_starts(LENGTHS, cfg, SEG, np.random.default_rng(0))
    assert anchor.shape == (4, 1) and track.shape == (4, 5)
    assert (np.diff(track, axis=1) >= 0).all()
    long = track[3]  # spread over the whole 100,000-sample track
    assert long[0] < 20_000 and long[-1] > 80_000


def test_global_input_pools_several_segments_per_view() -> None:
    cfg = load_config(
        None, ["views.input='track'", "views.positive='random'", "views.track_segments=3"]
    ).views
    assert view_sizes(cfg) == [3, 3]
    a, b = sample_starts(LENGTHS, cfg, SEG, np.random.default_rng(1))
    assert a.shape == b.shape == (4, 3)


def test_adjacent_gap_spaces_the_segments() -> None:
    views = sample_starts(
        LENGTHS, load_config(None, ["views.n_views=3"]).views, SEG, np.random.default_rng(0), 40
    )
    fits = LENGTHS >= 3 * SEG + 2 * 40
    for v in range(1, 3):
        assert np.array_equal(views[v][fits], views[v - 1][fits] + SEG + 40)
    assert (views[2] + SEG <= LENGTHS[:, None]).all()  # a short track's segments overlap instead


def test_stratified_pairs_start_in_their_own_stretch_of_the_track() -> None:
    cfg = load_config(None, ["views.positive='adjacent'"]).views
    lengths = np.repeat(np.array([4000, 100_000]), 4)  # two tracks, four pairs each
    a, b = stratified_starts(lengths, 4, cfg, SEG, np.random.default_rng(3))
    stretch = lengths // 4
    slot = np.tile(np.arange(4), 2)
    assert (a[:, 0] >= slot * stretch).all() and (b[:, 0] + SEG <= (slot + 1) * stretch).all()
    assert np.array_equal(b, a + SEG)


def test_cpc_views_are_consecutive_single_segments() -> None:
    config = load_config(None, ["loss.kind='cpc'", "loss.cpc_context=3", "loss.cpc_predictions=2"])
    views = effective_views(config)
    assert view_sizes(views) == [1] * 5
    starts_ = sample_starts(LENGTHS, views, SEG, np.random.default_rng(0), 10)
    assert np.array_equal(starts_[4][3], starts_[0][3] + 4 * (SEG + 10))
