"""Encoders, checkpoints and bundled weights."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from mclx.errors import UsageError, WeightsError
from mclx.fileio import sha256_file
from mclx.models import build_encoder
from mclx.models.checkpoint import load_encoder, read_metadata, save_encoder
from mclx.models.registry import load_model, verify_bundled

SMALL = {
    "melcnn": {"channels": [4, 8, 8], "embedding_dim": 16, "n_mels": 32},
    "samplecnn": {"channels": [8, 8, 8, 8, 8, 8, 8, 8, 8, 16], "embedding_dim": 16},
    "mfcc": {},
}


@pytest.mark.parametrize("arch", sorted(SMALL))
def test_encoders_map_windows_to_embeddings(arch: str) -> None:
    enc = build_encoder(arch, SMALL[arch]).eval()
    x = torch.randn(3, enc.spec.window_samples) * 0.1
    with torch.inference_mode():
        y = enc(x)
    assert y.shape == (3, enc.spec.embedding_dim)
    assert torch.isfinite(y).all()


@pytest.mark.parametrize("arch", sorted(SMALL))
def test_a_row_does_not_depend_on_its_batch_neighbours(arch: str) -> None:
    enc = build_encoder(arch, SMALL[arch]).eval()
    x = torch.randn(4, enc.spec.window_samples) * 0.1
    x[1] = 0.0  # a silent (padded) row next to loud ones
    x[2] *= 50
    with torch.inference_mode():
        together = enc(x)
        alone = torch.cat([enc(x[i : i + 1]) for i in range(4)])
    torch.testing.assert_close(together, alone, atol=1e-4, rtol=1e-4)


def test_samplecnn_default_window_is_3_to_the_10th_samples() -> None:
    enc = build_encoder("samplecnn")
    assert enc.spec.window_samples == 59049 and enc.spec.sample_rate == 22050


def test_checkpoint_round_trip_rebuilds_the_same_encoder(tmp_path: Path) -> None:
    torch.manual_seed(1)
    enc = build_encoder("melcnn", SMALL["melcnn"]).eval()
    path = tmp_path / "enc.safetensors"
    digest = save_encoder(path, enc, training_config={"loss": {"kind": "ntxent"}})
    assert digest == sha256_file(path)
    meta = read_metadata(path)
    assert (
        meta["architecture"] == "melcnn" and json.loads(meta["training_config"])["loss"]["kind"] == "ntxent"
    )
    assert int(meta["embedding_dim"]) == 16 and int(meta["sample_rate"]) == 16000
    loaded, loaded_digest = load_encoder(path)
    assert loaded_digest == digest
    x = torch.randn(2, enc.spec.window_samples)
    with torch.inference_mode():
        torch.testing.assert_close(loaded(x), enc(x), rtol=0, atol=0)
    model = load_model(str(path))
    assert model.sha256 == digest and model.encoder.spec == enc.spec


def test_tampered_or_truncated_weights_are_refused(tmp_path: Path) -> None:
    enc = build_encoder("melcnn", SMALL["melcnn"])
    path = tmp_path / "enc.safetensors"
    digest = save_encoder(path, enc)
    data = bytearray(path.read_bytes())
    data[-5] ^= 0xFF
    path.write_bytes(bytes(data))
    with pytest.raises(WeightsError, match=f"{digest}"):
        load_encoder(path, expected_sha256=digest)
    path.write_bytes(bytes(data[:100]))
    with pytest.raises(WeightsError, match=r"enc\.safetensors"):
        load_encoder(path)


def test_bundled_weights_are_checked_against_the_manifest(tmp_path: Path, monkeypatch) -> None:
    import mclx.models.registry as registry

    pkg = tmp_path / "pkg"
    (pkg / "weights").mkdir(parents=True)
    enc = build_encoder("melcnn", SMALL["melcnn"])
    digest = save_encoder(pkg / "weights" / "tiny.safetensors", enc)
    manifest = tmp_path / "weights_manifest.json"
    entry = {"name": "tiny", "file": "weights/tiny.safetensors", "sha256": digest}
    manifest.write_text(json.dumps({"default": "tiny", "models": [entry]}))
    monkeypatch.setattr(registry, "PACKAGE_DIR", pkg)
    assert load_model("tiny", manifest_path=manifest).sha256 == digest
    assert load_model(None, manifest_path=manifest).name == "tiny"
    assert verify_bundled(manifest)[0][1]
    twin = load_model("random-tiny", manifest_path=manifest).encoder  # same architecture, seeded init
    assert twin.spec.args == enc.spec.args
    trained = load_model("tiny", manifest_path=manifest).encoder.state_dict()
    assert any(not torch.equal(v, trained[k]) for k, v in twin.state_dict().items() if v.is_floating_point())
    again = load_model("random-tiny", manifest_path=manifest).encoder.state_dict()
    assert all(torch.equal(v, again[k]) for k, v in twin.state_dict().items())
    manifest.write_text(json.dumps({"models": [{**entry, "sha256": "0" * 64}]}))
    with pytest.raises(WeightsError, match="0000"):
        load_model("tiny", manifest_path=manifest)
    assert not verify_bundled(manifest)[0][1]


def test_unknown_model_names_list_the_known_ones() -> None:
    with pytest.raises(UsageError, match="mfcc"):
        load_model("no-such-model")


def test_random_baselines_are_the_same_network_every_time() -> None:
    a, b = load_model("random-melcnn"), load_model("random-melcnn")
    for (ka, va), (kb, vb) in zip(
        a.encoder.state_dict().items(), b.encoder.state_dict().items(), strict=True
    ):
        assert ka == kb and torch.equal(va, vb)
    assert a.sha256 == b.sha256


def test_mfcc_is_computed_in_fp32_under_autocast() -> None:
    """The embed pipeline runs encoders under bf16 autocast on CUDA; CPU autocast shows the same path
    (an outside review's defect 7)."""
    import torch

    from mclx.models.registry import load_model

    from .audio_fixtures import tone

    encoder = load_model("mfcc").encoder
    x = torch.from_numpy(np.stack([tone(3.0, 16000, 440)[:, 0], tone(3.0, 16000, 97, seed=1)[:, 0]]))
    plain = encoder(x)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        cast = encoder(x)
    assert cast.dtype == torch.float32
    torch.testing.assert_close(cast, plain, rtol=1e-6, atol=1e-6)
