"""The HEAR API wrapper: regular timestamps, and scene embeddings equal to the stored global rows."""

from __future__ import annotations

import numpy as np
import pytest
import soundfile as sf
import torch

from mclx import hear
from mclx.embed import EmbedSettings, embed
from mclx.store import read_store

from .audio_fixtures import tone


def test_timestamps_are_regular_from_zero_to_the_end() -> None:
    model = hear.load_model("mfcc")
    assert (model.sample_rate, model.scene_embedding_size, model.timestamp_embedding_size) == (16000, 80, 80)
    assert model.hop_s == hear.DEFAULT_HOP_S == 0.05
    audio = torch.from_numpy(np.stack([tone(4.5, 16000, 440)[:, 0], tone(4.5, 16000, 880)[:, 0]]))
    emb, ts = hear.get_timestamp_embeddings(audio, model)
    assert emb.shape == (2, 90, 80) and ts.shape == (2, 90)  # 0, 50, ..., 4450 ms
    assert ts.dtype == torch.float32  # as the HEAR API specifies
    k = 60  # centre 3000 ms of the second sound: its window [1.5 s, 4.5 s)
    direct = model.encoder(audio[1:, 24000:72000])
    np.testing.assert_allclose(emb[1, k].numpy(), direct[0].detach().numpy(), rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(ts[0].numpy(), np.arange(90) * 50.0)
    coarse = hear.load_model("mfcc", hop_s=0.5)
    _, ts2 = hear.get_timestamp_embeddings(audio, coarse)
    np.testing.assert_allclose(ts2[0].numpy(), np.arange(9) * 500.0)
    with pytest.raises(ValueError, match="hop_s"):
        hear.load_model("mfcc", hop_s=0)


def test_a_timestamp_embedding_is_the_window_centred_on_it() -> None:
    model = hear.load_model("mfcc", hop_s=0.25)
    audio = torch.from_numpy(tone(6.0, 16000, 300, seed=3)[:, 0]).unsqueeze(0)
    emb, ts = hear.get_timestamp_embeddings(audio, model)
    k = 12  # centre 3000 ms: the window [1.5 s, 4.5 s) of the 3-s model
    assert float(ts[0, k]) == 3000.0
    direct = model.encoder(audio[:, 24000 : 24000 + 48000])
    np.testing.assert_allclose(emb[0, k].numpy(), direct[0].detach().numpy(), rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("seconds", [4.5, 1.2])  # an end-aligned last window; a zero-padded short sound
def test_scene_embedding_equals_the_global_row_of_mclx_embed(tmp_path, seconds: float) -> None:
    model = hear.load_model("random-melcnn")
    audio = torch.from_numpy(np.stack([tone(seconds, 16000, 440)[:, 0], tone(seconds, 16000, 880)[:, 0]]))
    scene = hear.get_scene_embeddings(audio, model)
    assert scene.shape == (2, model.scene_embedding_size)
    path = tmp_path / "a.wav"
    sf.write(path, audio[0].numpy(), 16000, subtype="FLOAT")
    embed([str(path)], str(tmp_path / "o.h5"), EmbedSettings(model="random-melcnn", quiet=True, workers=1))
    stored = read_store(tmp_path / "o.h5").global_matrix()[0]
    np.testing.assert_allclose(stored, scene[0].numpy(), rtol=1e-4, atol=1e-4)
