"""Which tracks a batch holds: the labelled share per batch (SemiSupCon), intra-track groups."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from mclx.batching import draw_tracks, make_batch
from mclx.config import load_config
from mclx.distributed import Rank
from mclx.labels import build_labels
from mclx.targets import target_matrix
from mclx.traindata import TrackCache

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
