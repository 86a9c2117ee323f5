"""Inputs that are legal but unusual: odd names, odd listings, odd audio."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from mclx.embed import EmbedSettings, embed
from mclx.inputs import expand_inputs, walk_audio
from mclx.store import read_store

from ..audio_fixtures import WriteAudio, tone

SETTINGS = EmbedSettings(model="mfcc", workers=1, quiet=True, level="both")


def test_non_utf8_and_very_long_names_round_trip(tmp_path: Path) -> None:
    d = tmp_path / "audio"
    d.mkdir()
    odd = os.fsdecode(bytes(d) + b"/caf\xe9-\xff.wav")
    long = str(d / ("x" * 240 + ".wav"))
    for path in (odd, long):
        sf.write(os.fsencode(path), tone(2, 16000)[:, 0], 16000, format="WAV")
    files = walk_audio(str(d))
    assert sorted(files) == sorted([odd, long])
    summary = embed(files, str(tmp_path / "o.h5"), SETTINGS)
    assert summary.ok == 2
    assert sorted(read_store(tmp_path / "o.h5").paths) == sorted([odd, long])
    again = embed(files, str(tmp_path / "o.h5"), SETTINGS)
    assert again.skipped == 2  # the resume key survives the round trip


def test_directory_symlink_loop_is_listed_once(write_audio: WriteAudio, tmp_path: Path) -> None:
    write_audio("a.wav")
    (tmp_path / "audio" / "loop").symlink_to(tmp_path / "audio", target_is_directory=True)
    assert [Path(p).name for p in walk_audio(str(tmp_path / "audio"))] == ["a.wav"]


def test_wrong_extension_is_decoded_by_content(tmp_path: Path) -> None:
    path = tmp_path / "really_flac.mp3"
    sf.write(path, tone(2, 22050)[:, 0], 22050, format="FLAC")
    assert embed([str(path)], str(tmp_path / "o.h5"), SETTINGS).ok == 1


def test_tiny_wide_and_narrow_audio(tmp_path: Path) -> None:
    cases = {
        "one_sample.wav": (np.array([[0.5]], dtype=np.float32), 16000),
        "ten_ms.wav": (tone(0.01, 16000), 16000),
        "eight_channels_96k.wav": (tone(1.5, 96000, channels=8), 96000),
        "eight_k_mono.wav": (tone(2, 8000), 8000),
    }
    for name, (data, rate) in cases.items():
        sf.write(tmp_path / name, data, rate, subtype="PCM_24")
    files = [str(tmp_path / n) for n in cases]
    embed(files, str(tmp_path / "o.h5"), SETTINGS)
    for rec in read_store(tmp_path / "o.h5").records:
        assert rec.status == "ok", (rec.path, rec.error)
        assert rec.global_ is not None and np.isfinite(rec.global_).all()
        assert rec.segment_count == 1


def test_stdin_listing_with_blanks_comments_and_duplicates(write_audio: WriteAudio) -> None:
    import io

    a, b = str(write_audio("a.wav")), str(write_audio("b.wav"))
    listing = io.StringIO(f"\n# comment\n{a}\n  {b}  \n{a}\n\n")
    assert expand_inputs(["-"], stdin=listing) == [a, b]


def test_stdin_listing_keeps_names_that_look_like_comments_or_padding(
    write_audio: WriteAudio, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import io

    write_audio("#1 hit.wav")
    write_audio(" lead.wav")
    write_audio("c.wav")
    monkeypatch.chdir(tmp_path / "audio")
    listing = io.StringIO("#1 hit.wav\n lead.wav\n# a comment\n  c.wav  \n")
    assert expand_inputs(["-"], stdin=listing) == ["#1 hit.wav", " lead.wav", "c.wav"]
