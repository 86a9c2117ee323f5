"""The HEAR API wrapper agrees with the embed pipeline."""

from __future__ import annotations

import numpy as np
import soundfile as sf
import torch

from mclx import hear
from mclx.pipeline import EmbedSettings, embed
from mclx.store import read_store

from .conftest import tone


def test_hear_api_shapes_and_agreement_with_embed(tmp_path) -> None:
    model = hear.load_model("mfcc")
    assert (model.sample_rate, model.scene_embedding_size, model.timestamp_embedding_size) == (16000, 80, 80)
    audio = torch.from_numpy(np.stack([tone(4.5, 16000, 440)[:, 0], tone(4.5, 16000, 880)[:, 0]]))
    emb, ts = hear.get_timestamp_embeddings(audio, model)
    assert emb.shape[:2] == ts.shape and emb.shape[0] == 2 and emb.shape[2] == 80
    assert torch.all(ts[:, 1:] > ts[:, :-1])
    scene = hear.get_scene_embeddings(audio, model)
    assert scene.shape == (2, 80)
    path = tmp_path / "a.wav"
    sf.write(path, audio[0].numpy(), 16000, subtype="FLOAT")
    embed([str(path)], str(tmp_path / "o.h5"), EmbedSettings(model="mfcc", quiet=True, workers=1))
    stored = read_store(tmp_path / "o.h5").global_matrix()[0]
    np.testing.assert_allclose(stored, scene[0].numpy(), rtol=1e-4, atol=1e-3)
