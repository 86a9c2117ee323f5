"""Sequence models over a track's segments: CPC learns what comes next; an aggregator is kept in the
encoder's checkpoint and makes a file's global row; every new batch recipe resumes bit-identically."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import torch
from safetensors.torch import load_file

from mclx.embed import EmbedSettings, embed
from mclx.models.checkpoint import load_encoder, read_metadata
from mclx.store import read_store
from mclx.train import run_training

from ..audio_fixtures import WriteAudio
from ..helpers import write_config

RATE = 16000


def staircase(base: float, steps: int, seconds: float, rng: np.random.Generator) -> np.ndarray:
    """A tone rising by a whole tone every ``seconds``: each segment predicts the next."""
    t = np.arange(int(seconds * RATE)) / RATE
    parts = [0.5 * np.sin(2 * np.pi * base * 2 ** (2 * k / 12) * t + rng.uniform(0, 6)) for k in range(steps)]
    x = np.concatenate(parts)
    return (x + 0.01 * rng.standard_normal(len(x))).astype(np.float32)


CPC_CONFIG = """
[data]
audio = ["audio"]
cache = "cache"
[model]
architecture = "melcnn"
embedding_dim = 16
projection_dim = 8
channels = [8, 16]
[views]
segment_s = 0.5
positive = "adjacent"
augment = []
[loss]
kind = "cpc"
cpc_context = 3
cpc_predictions = 2
temperature = 0.2
[train]
steps = 120
batch_size = 8
lr = 5e-3
log_every = 1
checkpoint_every = 100
"""


def test_cpc_learns_to_predict_a_predictable_sequence(tmp_path: Path) -> None:
    """Sixteen tracks, each a rising staircase of tones from its own base pitch: the futures of a
    track are predictable from its first segments. The loss starts near log(8) (chance among the
    batch's 8 tracks) and falls well below it (measured: 2.08 -> 1.09 over 120 steps; pitches of
    different tracks meet, so the futures are not all unique)."""
    rng = np.random.default_rng(0)
    (tmp_path / "audio").mkdir()
    for i in range(16):
        x = staircase(110 * 2 ** (i / 4), 10, 0.5, rng)
        sf.write(tmp_path / "audio" / f"{i}.wav", x, RATE, subtype="FLOAT")
    (tmp_path / "c.toml").write_text(CPC_CONFIG)
    run_training(str(tmp_path / "c.toml"), str(tmp_path / "run"), False, [], quiet=True)
    losses = [
        json.loads(line)["loss"] for line in (tmp_path / "run" / "metrics.jsonl").read_text().splitlines()
    ]
    first, last = np.mean(losses[:3]), np.mean(losses[-10:])
    assert first > 0.7 * np.log(8), losses[:3]
    assert last < 0.65 * first, (first, last)


@pytest.mark.parametrize("aggregator", ["gru", "transformer"])
def test_an_aggregator_lives_in_the_checkpoint_and_makes_the_global_row(
    tmp_path: Path, write_audio: WriteAudio, aggregator: str
) -> None:
    config = write_config(tmp_path, write_audio, input="track", positive="random")
    run_training(str(config), str(tmp_path / "run"), False, [f"model.aggregator='{aggregator}'",
                 "views.track_segments=3", "train.steps=3"], quiet=True)  # fmt: skip
    ckpt = tmp_path / "run" / "encoder.safetensors"
    assert json.loads(read_metadata(ckpt)["encoder_args"])["aggregator"] == aggregator
    assert any(k.startswith("aggregator.") for k in load_file(ckpt))
    encoder, _ = load_encoder(ckpt)
    files = [str(tmp_path / "audio" / f"{i}.flac") for i in range(3)]
    settings = EmbedSettings(model=str(ckpt), level="both", quiet=True, workers=1)
    embed(files, str(tmp_path / "e.h5"), settings)
    store = read_store(tmp_path / "e.h5")
    for rec in store.records:
        windows, glob = rec.segments, rec.global_
        assert windows is not None and glob is not None and len(windows) >= 6
        np.testing.assert_allclose(glob, encoder.aggregate_windows(windows), rtol=1e-5, atol=1e-6)
        assert not np.allclose(glob, windows.mean(axis=0), atol=1e-4)  # not the mean
    with torch.inference_mode():  # a sequence model: the order of the windows matters
        first = store.records[0].segments
        assert first is not None
        seq = torch.from_numpy(first)[None]
        assert not torch.allclose(encoder.aggregate(seq), encoder.aggregate(seq.flip(1)), atol=1e-5)


NEW_RECIPES = {
    "intra-track": ["loss.negatives='intra-track'", "loss.intra_track_segments=3",
                    "views.adjacent_gap_s=0.1"],
    "cpc": ["loss.kind='cpc'", "loss.cpc_context=2", "loss.cpc_predictions=2"],
    "gru": ["views.input='track'", "views.positive='random'", "views.track_segments=2",
            "model.aggregator='gru'"],
    "transformer": ["views.input='track'", "views.positive='same'", "views.track_segments=2",
                    "model.aggregator='transformer'"],
    "labelled-share": [],  # labelled share: set up below
}  # fmt: skip


@pytest.mark.parametrize("recipe", sorted(NEW_RECIPES))
def test_every_new_recipe_resumes_bit_identically(
    tmp_path: Path, write_audio: WriteAudio, recipe: str
) -> None:
    overrides = [*NEW_RECIPES[recipe], "train.steps=6", "train.checkpoint_every=100"]
    if recipe == "labelled-share":
        config = write_config(tmp_path, write_audio, loss="semisupcon", labels='labels = "labels.csv"')
        rows = ["path,label"] + [f"audio/{i}.flac,{'ab'[i % 2]}" for i in range(8)]
        (tmp_path / "labels.csv").write_text("\n".join(rows) + "\n")
        overrides += ["data.labelled_fraction=0.25", "data.labelled_batch_share=0.5"]
    else:
        config = write_config(tmp_path, write_audio)
    run_training(str(config), str(tmp_path / "full"), False, overrides, quiet=True)
    run_training(str(config), str(tmp_path / "part"), False, overrides, quiet=True, stop_after=3)
    run_training(str(config), str(tmp_path / "part"), True, overrides, quiet=True)
    a, b = (
        load_file(tmp_path / "full" / "encoder.safetensors"),
        load_file(tmp_path / "part" / "encoder.safetensors"),
    )
    assert a.keys() == b.keys()
    for key in a:
        assert torch.equal(a[key], b[key]), key
