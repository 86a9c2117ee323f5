"""Training configuration: TOML, --set overrides, clear errors, paths, the resolved copy."""

from __future__ import annotations

from pathlib import Path

import pytest

from mclx.config import expand_path, load_config, parse_override, to_toml
from mclx.errors import ConfigError


def test_a_file_with_overrides(tmp_path: Path) -> None:
    path = tmp_path / "c.toml"
    path.write_text('[model]\narchitecture = "samplecnn"\n[train]\nsteps = 7\nlr = 1\n')
    c = load_config(
        path, ["train.steps=9", "views.augment=['gain']", "data.labels=tags.csv", "loss.kind=supcon"]
    )
    assert c.model.architecture == "samplecnn" and c.train.steps == 9
    assert c.train.lr == 1.0 and isinstance(c.train.lr, float)  # an integer where a number is expected
    assert c.views.augment == ["gain"]
    assert c.data.labels == "tags.csv"  # not TOML: taken as a bare string
    assert load_config(None).views.positive == "adjacent"  # the contract's defaults


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("[train]\nstesp = 3\n", r"train\.stesp \(did you mean 'steps'\?\)"),
        ("[trian]\nsteps = 3\n", r"\[trian\] \(did you mean 'train'\?\)"),
        ("[train]\nsteps = 2.5\n", r"train\.steps: expected an integer"),
        ("[train]\ncompile = 1\n", r"train\.compile: expected true or false"),
        ("[data]\naudio = 'x/'\n", r"data\.audio: expected a list"),
        ("[loss]\nkind = 'infonce'\n", r"loss\.kind = 'infonce': choose one of ntxent, supcon, semisupcon"),
        ("[views]\nn_views = 1\n", r"views\.n_views must be at least 2"),
        ("[data]\nlabelled_fraction = 1.5\n", r"data\.labelled_fraction must be in \[0, 1\]"),
        ("[loss]\nkind = 'supcon'\n", r"needs data\.labels"),
        ("[views]\npositive = 'track'\nn_views = 4\n", r"views\.n_views = 2"),
        ("[views]\npositive = 'same'\naugment = []\n", r"needs augmentations"),
        ("[train]\nsteps = 3\n[train\n", r"not valid TOML"),
        ("[train]\nlr = nan\n", r"train\.lr: expected a finite number"),
        ("[views]\nsegment_s = inf\n", r"views\.segment_s: expected a finite number"),
        ("[train]\nseed = -1\n", r"train\.seed must be 0 or positive"),
        ("[loss]\nregression_scale = 0\n", r"loss\.regression_scale must be positive"),
        ("[loss]\nsupervised_weight = -1\n", r"loss\.supervised_weight must be 0 or positive"),
        ("[data]\nlabels = 'l.csv'\n", r"data\.labels is set but loss\.kind = 'ntxent'"),
        (
            "[data]\nlabels = 'l.csv'\n[loss]\nkind = 'supcon'\ntarget = 'multilabel'\n",
            r"needs loss\.kind = 'semisupcon'",
        ),
    ],
)
def test_bad_configurations_name_the_key(tmp_path: Path, text: str, message: str) -> None:
    path = tmp_path / "bad.toml"
    path.write_text(text)
    with pytest.raises(ConfigError, match=message) as err:
        load_config(path)
    assert "\n" not in str(err.value)  # one line


def test_overrides_are_checked_like_the_file() -> None:
    with pytest.raises(ConfigError, match=r"expected section\.key=value"):
        load_config(None, ["steps=3"])
    with pytest.raises(ConfigError, match=r"model\.embeding_dim \(did you mean 'embedding_dim'\?\)"):
        load_config(None, ["model.embeding_dim=64"])
    assert parse_override("loss.temperature=0.07") == ("loss", "temperature", 0.07)
    assert parse_override("data.audio=['a', 'b']") == ("data", "audio", ["a", "b"])
    with pytest.raises(ConfigError, match="no such config file"):
        load_config("nowhere.toml")


def test_paths_expand_variables_and_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MCLX_DATA", "/data/set")
    monkeypatch.setenv("HOME", str(tmp_path))
    assert expand_path("${MCLX_DATA}/music", tmp_path) == Path("/data/set/music")
    assert expand_path("~/x.csv") == tmp_path / "x.csv"
    assert expand_path("rel/dir", Path("/base")) == Path("/base/rel/dir")
    monkeypatch.delenv("MCLX_DATA")
    with pytest.raises(ConfigError, match="not set"):
        expand_path("${MCLX_DATA}/music")


def test_the_resolved_copy_loads_back_to_the_same_config(tmp_path: Path) -> None:
    c = load_config(
        None,
        [
            "data.labels='a \"quoted\" path.csv'",
            "loss.kind='semisupcon'",
            "model.channels=[4, 8]",
            "train.compile=true",
        ],
    )
    path = tmp_path / "resolved.toml"
    path.write_text(to_toml(c))
    assert load_config(path) == c


def test_pitch_and_reverb_are_opt_in_augmentations() -> None:
    c = load_config(None, ["views.augment=['pitch', 'reverb']"])
    assert c.views.augment == ["pitch", "reverb"]
    # Not in the default chain: a config that names no augmentations trains as it did before them.
    assert load_config(None).views.augment == ["gain", "polarity", "noise", "filter", "delay"]
    typo = r"views\.augment: unknown augmentation 'pich' \(did you mean 'pitch'\?\)"
    with pytest.raises(ConfigError, match=typo):
        load_config(None, ["views.augment=['pich']"])


def test_the_reference_page_names_every_key_with_its_default() -> None:
    """docs/training-config.md is the config reference: every key, with the default the code has."""
    import re

    from mclx.config import Config, _toml_value

    page = (Path(__file__).parents[1] / "docs" / "training-config.md").read_text()
    rows = dict(re.findall(r"^\| `([a-z_]+\.[a-z_0-9]+)` \| `(.*?)` \|", page, flags=re.M))
    defaults = {
        f"{section}.{key}": _toml_value(value) for section, values in Config().to_dict().items()
        for key, value in values.items()
    }  # fmt: skip
    assert set(rows) == set(defaults)
    for key, default in defaults.items():
        assert rows[key] == default, key
