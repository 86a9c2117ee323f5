"""Training: runs from a config, resumes bit-identically, writes what the contract says."""

from __future__ import annotations

import itertools
import json
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from mclx.config import load_config
from mclx.errors import ConfigError
from mclx.pipeline import EmbedSettings, embed
from mclx.store import read_store
from mclx.train import lr_at, run_training

from .conftest import WriteAudio
from .test_embed import run_cli

TINY = """
[data]
audio = ["audio"]
cache = "cache"
{labels}
[model]
architecture = "{arch}"
embedding_dim = 16
projection_dim = 8
channels = {channels}
[views]
segment_s = {segment}
positive = "{positive}"
input = "{input}"
[loss]
kind = "{loss}"
target = "{target}"
[train]
steps = 12
batch_size = 6
lr = 1e-3
warmup_steps = 3
checkpoint_every = 4
log_every = 2
"""


def write_config(tmp_path: Path, write_audio: WriteAudio, **kw: str) -> Path:
    for i in range(8):
        write_audio(f"{i}.flac", seconds=3 + i % 3, rate=22050, freq=200 + 60 * i, seed=i)
    values = {"arch": "melcnn", "channels": "[4, 8]", "segment": "0.5", "positive": "adjacent",
              "input": "segment", "loss": "ntxent", "target": "multiclass", "labels": ""} | kw  # fmt: skip
    path = tmp_path / "tiny.toml"
    path.write_text(TINY.format(**values))
    return path


def weights(out: Path) -> dict[str, torch.Tensor]:
    return load_file(out / "encoder.safetensors")


def test_resumed_run_ends_with_bit_identical_weights(tmp_path: Path, write_audio: WriteAudio) -> None:
    config = str(write_config(tmp_path, write_audio))
    full = run_training(config, str(tmp_path / "full"), False, [], quiet=True)
    assert full["trained_steps"] == 12
    part = tmp_path / "part"
    first = run_training(config, str(part), False, [], quiet=True, stop_after=7)
    assert first["trained_steps"] == 7
    assert torch.load(part / "state.pt", weights_only=True)["step"] == 7
    assert not all(torch.equal(v, weights(tmp_path / "full")[k]) for k, v in weights(part).items())
    resumed = run_training(config, str(part), True, [], quiet=True)
    assert resumed["trained_steps"] == 5
    a, b = weights(tmp_path / "full"), weights(part)
    assert a.keys() == b.keys()
    for key in a:
        assert torch.equal(a[key], b[key]), key
    metrics = [json.loads(line)["step"] for line in (part / "metrics.jsonl").read_text().splitlines()]
    assert metrics == [2, 4, 6, 7, 8, 10, 12]


def test_samplecnn_resume_from_a_periodic_checkpoint(tmp_path: Path, write_audio: WriteAudio) -> None:
    config = str(write_config(tmp_path, write_audio, arch="samplecnn", channels="[4, 4, 4, 4, 4, 8]",
                              segment="0.2", positive="random"))  # fmt: skip
    run_training(config, str(tmp_path / "full"), False, [], quiet=True)
    out = tmp_path / "cut"
    run_training(config, str(out), False, [], quiet=True, stop_after=4)
    run_training(config, str(out), True, [], quiet=True)
    assert all(torch.equal(v, weights(tmp_path / "full")[k]) for k, v in weights(out).items())


def test_outputs_follow_the_contract_and_the_encoder_embeds(tmp_path: Path, write_audio: WriteAudio) -> None:
    config = write_config(tmp_path, write_audio)
    out = tmp_path / "run"
    result = run_cli("train", str(config), "--out", str(out), "--json", "-q")
    assert result.returncode == 0, result.stderr
    summary = json.loads(result.stdout)
    assert summary["steps"] == 12 and summary["out_dir"] == str(out)
    rows = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    assert [r["step"] for r in rows] == [2, 4, 6, 8, 10, 12]
    assert all({"step", "loss", "lr", "examples_per_s"} <= r.keys() for r in rows)
    assert load_config(out / "config.toml").train.steps == 12
    files = [str(p) for p in sorted((tmp_path / "audio").iterdir())][:2]
    embed(
        files,
        str(tmp_path / "e.h5"),
        EmbedSettings(model=str(out / "encoder.safetensors"), quiet=True, workers=1),
    )
    store = read_store(tmp_path / "e.h5")
    assert store.attrs["dim"] == 16 and all(r.status == "ok" for r in store.records)


@pytest.mark.parametrize(
    ("loss", "target", "labels"),
    [
        ("supcon", "multiclass", "a;b"),
        ("semisupcon", "multiclass", "a;b"),
        ("semisupcon", "multilabel", "x;y|y|x"),
        ("semisupcon", "regression", "1.0;2.5"),
        ("semisupcon", "similarity", "1;0|0;1"),
    ],
)
def test_supervised_and_semi_supervised_losses_train(
    tmp_path: Path, write_audio: WriteAudio, loss: str, target: str, labels: str
) -> None:
    config = write_config(tmp_path, write_audio, loss=loss, target=target,
                          labels='labels = "labels.csv"\nlabelled_fraction = 0.5')  # fmt: skip
    choices = labels.split("|") if "|" in labels else labels.split(";")
    rows = ["path,label,split"] + [
        f"audio/{i}.flac,{choices[i % len(choices)]},{'train' if i < 7 else 'test'}" for i in range(8)
    ]
    (tmp_path / "labels.csv").write_text("\n".join(rows) + "\n")
    summary = run_training(str(config), str(tmp_path / "run"), False, ["train.steps=4"], quiet=True)
    assert summary["trained_steps"] == 4 and summary["final_loss"] > 0


@pytest.mark.parametrize(
    ("positive", "view_input"), [("same", "segment"), ("random", "track"), ("track", "segment")]
)
def test_choi_view_strategies_train(
    tmp_path: Path, write_audio: WriteAudio, positive: str, view_input: str
) -> None:
    config = write_config(tmp_path, write_audio, positive=positive, input=view_input)
    assert (
        run_training(str(config), str(tmp_path / "r"), False, ["train.steps=3"], quiet=True)["trained_steps"]
        == 3
    )


def test_bad_configurations_are_clear_errors(tmp_path: Path, write_audio: WriteAudio) -> None:
    config = str(write_config(tmp_path, write_audio))
    cases = {
        "train.stesp=3": "did you mean 'steps'",
        "train.steps='many'": "train.steps: expected an integer",
        "loss.kind='infonce'": "loss.kind",
        "data.audio=['nowhere/']": "nowhere/",
        "views.augment=['gain', 'reverb']": "reverb",
        "loss.kind='supcon'": "data.labels",
    }
    for override, message in cases.items():
        with pytest.raises(ConfigError, match=message):
            run_training(config, str(tmp_path / "x"), False, [override], quiet=True)
    (tmp_path / "labels.csv").write_text("path,label\nelsewhere/a.wav,x\n")
    with pytest.raises(ConfigError, match="matches the audio"):
        run_training(
            config, str(tmp_path / "x"), False, ["loss.kind='supcon'", "data.labels='labels.csv'"], quiet=True
        )
    cli = run_cli("train", config, "--set", "model.architecure='melcnn'", "--out", str(tmp_path / "y"))
    assert cli.returncode == 2 and "model.architecure" in cli.stderr and "architecture" in cli.stderr


def test_schedule_is_warmup_then_cosine() -> None:
    c = load_config(None, ["train.steps=100", "train.warmup_steps=10", "train.lr=1.0"])
    lrs = [lr_at(s, c) for s in range(100)]
    assert lrs[0] == pytest.approx(0.1) and lrs[9] == pytest.approx(1.0)
    assert all(a >= b for a, b in itertools.pairwise(lrs[9:]))
    assert lrs[-1] < 0.001
