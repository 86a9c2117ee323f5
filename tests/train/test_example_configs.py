"""Every example configuration runs as it is (scaled down) on a small corpus in the dev layout."""

from __future__ import annotations

from pathlib import Path

import pytest

from mclx.train import run_training

from ..audio_fixtures import WriteAudio

CONFIGS = sorted((Path(__file__).parents[2] / "examples" / "configs").glob("*.toml"))
SMALL = ["train.steps=2", "train.batch_size=4", "model.embedding_dim=16", "model.projection_dim=8",
         "model.channels=[4, 8, 8]"]  # fmt: skip


@pytest.fixture
def dev_corpus(tmp_path: Path, write_audio: WriteAudio, monkeypatch: pytest.MonkeyPatch) -> Path:
    music, games = tmp_path / "music", tmp_path / "gamesrc"
    rows = ["path,game"]
    for i in range(4):
        write_audio(f"g{i}/t{i}.ogg", seconds=8, rate=44100, channels=2, freq=150 + 80 * i, directory=music)
        rows.append(f"g{i}/t{i}.ogg,g{i}")
    (music / "manifest.csv").write_text("\n".join(rows) + "\n")
    labels = ["path,label,split"]
    for i in range(8):
        write_audio(f"clips/c{i}.flac", seconds=10, freq=300 + 40 * i, directory=games)
        labels.append(f"clips/c{i}.flac,game{i % 2},{'train' if i < 6 else 'test'}")
    (games / "labels.csv").write_text("\n".join(labels) + "\n")
    monkeypatch.setenv("MCLX_DATA", str(tmp_path))
    monkeypatch.setenv("MCLX_CACHE", str(tmp_path / "cache"))
    return tmp_path


def test_there_is_a_config_per_seed_setting() -> None:
    names = {p.stem for p in CONFIGS}
    assert {
        "smoke",
        "clmr_ssl",
        "supcon",
        "semisupcon_10pct",
        "choi_regional_adjacent",
        "choi_global_track",
        "semisupcon_share",
        "choi_regional_intra",
        "choi_cpc",
        "choi_global_transformer",
    } <= names


@pytest.mark.parametrize("config", [c for c in CONFIGS if c.stem != "smoke"], ids=lambda p: p.stem)
def test_example_config_runs(config: Path, dev_corpus: Path, tmp_path: Path) -> None:
    summary = run_training(str(config), str(tmp_path / "run"), False, SMALL, quiet=True)
    assert summary["trained_steps"] == 2
    assert (tmp_path / "run" / "encoder.safetensors").exists()


def test_smoke_config_runs_on_the_example_clips(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MCLX_CACHE", str(tmp_path / "cache"))
    smoke = CONFIGS[[p.stem for p in CONFIGS].index("smoke")]
    summary = run_training(str(smoke), str(tmp_path / "run"), False, [], quiet=True)
    assert summary["trained_steps"] == 50


@pytest.mark.parametrize("name", ["semi", "ssl", "v2-tasks", "v2-games"])
def test_the_default_models_recipe_runs(name: str, dev_corpus: Path, tmp_path: Path) -> None:
    """examples/mclx-base/*.toml, scaled down, with the label files build_labels.py writes
    (labels-games.csv: the pool's tracks labelled with their game as well)."""
    (dev_corpus / "mclx-base").mkdir()
    clips = [f"{dev_corpus / 'gamesrc' / 'clips' / f'c{i}.flac'},{{}}:game{i % 2},train" for i in range(6)]
    pool = [f"{dev_corpus / 'music' / f'g{i}' / f't{i}.ogg'},game:g{i},train" for i in range(4)]
    header = ["path,label,split"]
    tasks_only = header + [c.format("gamesrc") for c in clips]
    (dev_corpus / "mclx-base" / "labels.csv").write_text("\n".join(tasks_only) + "\n")
    (dev_corpus / "mclx-base" / "labels-games.csv").write_text(
        "\n".join(header + [c.format("game") for c in clips] + pool) + "\n"
    )
    config = Path(__file__).parents[2] / "examples" / "mclx-base" / f"{name}.toml"
    small = [*SMALL[:-1], "model.channels=[4, 8]", "train.snapshot_every=1"]
    summary = run_training(str(config), str(tmp_path / "run"), False, small, quiet=True)
    assert summary["trained_steps"] == 2 and summary["tracks"] == (4 if name == "ssl" else 10)
    assert len(list((tmp_path / "run" / "snapshots").glob("*.safetensors"))) == 3
