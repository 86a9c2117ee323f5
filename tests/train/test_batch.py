"""What one step trains on: where each view's segments start (the view strategies); which tracks a
batch holds (the labelled share per batch of SemiSupCon, intra-track groups)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from mclx.config import load_config
from mclx.distributed import Rank
from mclx.train.batch import (
    draw_tracks,
    effective_views,
    make_batch,
    sample_starts,
    stratified_starts,
    target_matrix,
    view_sizes,
)
from mclx.train.data import TrackCache
from mclx.train.labels import build_labels

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


N_TRACKS = 400


def fake_cache(n: int = N_TRACKS, seconds: float = 4.0, rate: int = 1000) -> TrackCache:
    """Tracks of constant value i / n (so a segment tells its track) at a low rate."""
    length = int(seconds * rate)
    audio = np.concatenate([np.full(length, round(32767 * i / n), dtype=np.int16) for i in range(n)])
    zeros = np.zeros(n, dtype=np.int64)
    offsets = np.arange(n, dtype=np.int64) * length
    paths = [f"/music/{i}.wav" for i in range(n)]
    return TrackCache(rate, paths, [audio], zeros, offsets, np.full(n, length, dtype=np.int64), [])


def labels_for(config_overrides: list[str], classes: int = 4) -> tuple[np.ndarray, torch.Tensor]:
    """(labelled track indices, every track's class or -1) for a 400-track pool, all labelled in
    the CSV, ``data.labelled_fraction`` keeping some."""
    config = load_config(None, ["loss.kind='semisupcon'", "data.labels='l.csv'", *config_overrides])
    cache = fake_cache()
    rows = {p: f"c{i % classes}" for i, p in enumerate(cache.paths)}
    built = build_labels(config, rows, cache.paths, "multiclass")
    return built.labelled_tracks(), torch.as_tensor(built.values)


@pytest.mark.parametrize(("share", "world"), [(0.5, 1), (0.25, 2), (0.75, 4)])
def test_the_labelled_share_holds_exactly_in_every_batch_and_on_every_rank(share: float, world: int) -> None:
    overrides = [f"data.labelled_batch_share={share}", "data.labelled_fraction=0.05", "train.batch_size=32"]
    labelled, _ = labels_for(overrides)
    assert len(labelled) == 20
    config = load_config(None, ["loss.kind='semisupcon'", "data.labels='l.csv'", *overrides])
    per_rank = 32 // world
    for step in range(50):
        tracks = draw_tracks(np.random.default_rng([0, step]), config, N_TRACKS, world, labelled)
        assert tracks.shape == (32,)
        for r in range(world):
            mine = tracks[r * per_rank : (r + 1) * per_rank]
            assert np.isin(mine, labelled).sum() == share * per_rank, (step, r)


def test_a_labelled_share_with_few_labelled_tracks_samples_them_with_replacement() -> None:
    overrides = ["data.labelled_batch_share=0.5", "data.labelled_fraction=0.01", "train.batch_size=32"]
    labelled, _ = labels_for(overrides)
    assert len(labelled) == 4  # 1 % of 400
    config = load_config(None, ["loss.kind='semisupcon'", "data.labels='l.csv'", *overrides])
    tracks = draw_tracks(np.random.default_rng(0), config, N_TRACKS, 1, labelled)
    assert np.isin(tracks[:16], labelled).all() and not np.isin(tracks[16:], labelled).any()


def test_at_one_percent_labels_a_half_labelled_batch_always_carries_label_positives() -> None:
    """SemiSupCon's protocol: at 1 % labels and share 0.5, the supervised target differs from the
    self-supervised one in every batch; at the natural rate it almost never does."""
    base = ["data.labelled_fraction=0.01", "train.batch_size=32", "views.n_views=2"]
    labelled, values = labels_for(base, classes=2)
    cache = fake_cache()
    differs = {}
    for share in (0.0, 0.5):
        config = load_config(None, ["loss.kind='semisupcon'", "data.labels='l.csv'", *base,
                                    f"data.labelled_batch_share={share}"])  # fmt: skip
        ssl = load_config(None, base)
        count = 0
        for step in range(40):
            _, tracks = make_batch(step, config, cache, Rank(), labelled)
            t = torch.from_numpy(tracks)
            sup, plain = target_matrix(config, t, values, 2), target_matrix(ssl, t, None, 2)
            count += int(not torch.equal(sup, plain))
        differs[share] = count
    assert differs[0.5] == 40 and differs[0.0] <= 10, differs


def test_share_zero_draws_the_batches_of_before() -> None:
    """The natural-rate draw is unchanged by the new key (runs of earlier versions stay reproducible)."""
    config = load_config(None, ["train.batch_size=32"])
    for step in range(5):
        expected = np.random.default_rng([0, step]).choice(N_TRACKS, size=32, replace=False)
        assert np.array_equal(draw_tracks(np.random.default_rng([0, step]), config, N_TRACKS, 1), expected)


def test_intra_track_batches_hold_each_track_in_a_run_of_pairs() -> None:
    config = load_config(None, ["loss.negatives='intra-track'", "loss.intra_track_segments=4",
                                "train.batch_size=16", "views.segment_s=0.5"])  # fmt: skip
    cache = fake_cache()
    segments, tracks = make_batch(0, config, cache, Rank())
    groups = tracks.reshape(4, 4)
    assert (groups == groups[:, :1]).all() and len(set(groups[:, 0])) == 4
    # every segment comes from its slot's track (tracks are constant i / n)
    slot_tracks = np.tile(tracks, 2)
    np.testing.assert_allclose(segments[:, 0], np.round(32767 * slot_tracks / N_TRACKS) / 32768, atol=1e-6)


def test_bad_share_values_name_the_key(tmp_path: Path) -> None:
    from mclx.errors import ConfigError

    with pytest.raises(ConfigError, match=r"data\.labelled_batch_share must be in \[0, 1\]"):
        load_config(None, ["loss.kind='semisupcon'", "data.labels='l.csv'", "data.labelled_batch_share=1.5"])
    with pytest.raises(ConfigError, match=r"data\.labelled_batch_share needs labels"):
        load_config(None, ["data.labelled_batch_share=0.5"])
