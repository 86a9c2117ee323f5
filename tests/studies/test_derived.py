"""A study's robustness list is `mclx probe --corrupt`'s syntax, checked when the study is read."""

from __future__ import annotations

from pathlib import Path

import pytest

from mclx.probe.corrupt import parse
from studies import spec


def test_semisupcon_asks_two_severities_of_each_corruption() -> None:
    study = spec.load_study("semisupcon")
    kinds = [c.name.split(":")[0] for c in parse(",".join(study.robustness))]
    assert len(kinds) == 10 and all(kinds.count(k) == 2 for k in set(kinds))
    assert [r.name for r in study.robust_runs()] == ["ssl-s0", "semi-100-s0"]


def test_a_bad_corruption_in_a_study_names_the_key(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "c.toml").write_text("")
    (tmp_path / "bad.toml").write_text('robustness = ["hiss:3"]\n[[cells]]\nname = "a"\nconfig = "c.toml"\n')
    monkeypatch.setattr(spec, "HERE", tmp_path)
    with pytest.raises(spec.StudyError, match=r"bad\.toml: robustness: hiss:3: unknown kind 'hiss'"):
        spec.load_study("bad")
