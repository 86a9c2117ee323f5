"""The studies' corrupted tasks apply the probe's corruptions under their own names."""

from __future__ import annotations

import pytest

from mclx.probe.corrupt import Codec, Lowpass, Noise
from studies import derived


def test_study_corruption_names_map_to_the_probes_corruptions() -> None:
    assert [derived.corruption(n) for n in derived.CORRUPTIONS] == [
        Noise(10.0), Noise(0.0), Lowpass(2000.0), Codec("aac", 24)
    ]  # fmt: skip
    with pytest.raises(ValueError, match=r"robustness 'hiss-3': hiss:3: unknown kind 'hiss'"):
        derived.corruption("hiss-3")
