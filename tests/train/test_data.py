"""The decoded-track cache: per-file reuse, changed and bad files, interrupted fills, segments."""

from __future__ import annotations

import json
import os
import threading
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

import mclx.audio
import mclx.train.data
from mclx.train.data import build_cache

from ..audio_fixtures import WriteAudio

RATE = 16000


def decoded_files(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """Record every path the cache decodes."""
    seen: list[str] = []
    original = mclx.audio.decode_blocks

    def recording(path: str, *args: object) -> object:
        seen.append(Path(path).name)
        return original(path, *args)  # type: ignore[arg-type]

    monkeypatch.setattr(mclx.audio, "decode_blocks", recording)
    return seen


def make(write_audio: WriteAudio, n: int, seconds: float = 1.0) -> list[str]:
    return [
        str(write_audio(f"{i}.wav", seconds=seconds, rate=RATE, freq=200 + 50 * i, seed=i)) for i in range(n)
    ]


def test_tracks_equal_the_files_and_segments_pad_with_zeros(tmp_path: Path, write_audio: WriteAudio) -> None:
    files = make(write_audio, 3)
    cache = build_cache(files, RATE, tmp_path / "cache", 1)
    assert cache.paths == files and cache.lengths.tolist() == [RATE] * 3
    expected = sf.read(files[1], dtype="float32")[0]
    got = cache.segments(np.array([1, 1]), np.array([0, RATE - 100]), 400)
    np.testing.assert_allclose(got[0], expected[:400], atol=1 / 32768)
    np.testing.assert_allclose(got[1, :100], expected[-100:], atol=1 / 32768)
    assert not got[1, 100:].any()  # past the end of the track


def test_later_runs_decode_only_new_or_changed_files(
    tmp_path: Path, write_audio: WriteAudio, monkeypatch: pytest.MonkeyPatch
) -> None:
    seen = decoded_files(monkeypatch)
    files = make(write_audio, 3)
    root = tmp_path / "cache"
    build_cache(files[:2], RATE, root, 1)
    assert seen == ["0.wav", "1.wav"]
    build_cache(files[1:], RATE, root, 1)  # a different set sharing a file: only the new one
    assert seen[2:] == ["2.wav"]
    write_audio("1.wav", seconds=2.0, rate=RATE, freq=900)  # changed: size and mtime differ
    again = build_cache(files, RATE, root, 1)
    assert seen[3:] == ["1.wav"] and again.lengths.tolist() == [RATE, 2 * RATE, RATE]
    build_cache(files, RATE, root, 1)
    assert len(seen) == 4  # everything found
    other_rate = build_cache(files[:1], 8000, root, 1)
    assert seen[4:] == ["0.wav"] and other_rate.lengths.tolist() == [8000]
    assert sorted(p.name for p in root.iterdir()) == ["16000hz", "8000hz"]


def test_bad_and_short_files_are_skipped_with_a_reason(tmp_path: Path, write_audio: WriteAudio) -> None:
    files = make(write_audio, 2)
    bad = tmp_path / "audio" / "bad.wav"
    bad.write_bytes(b"RIFF" + os.urandom(200))
    short = str(write_audio("short.wav", seconds=0.2, rate=RATE))
    cache = build_cache([*files, str(bad), short], RATE, tmp_path / "cache", RATE // 2)
    assert cache.paths == files
    reasons = dict(cache.skipped)
    assert set(reasons) == {str(bad), short} and "shorter than 0.5 s" in reasons[short]
    assert reasons[str(bad)]
    # the short track is cached: a lower minimum uses it without decoding again
    assert short in build_cache([short], RATE, tmp_path / "cache", 1).paths


def test_an_interrupted_fill_keeps_what_it_decoded(
    tmp_path: Path, write_audio: WriteAudio, monkeypatch: pytest.MonkeyPatch
) -> None:
    files = make(write_audio, 4)
    monkeypatch.setattr(mclx.train.data, "CHUNK_BYTES", 4 * RATE)  # a chunk is full after two tracks
    seen = decoded_files(monkeypatch)
    original = mclx.audio.decode_blocks

    def interrupt_at_last(path: str, *args: object) -> object:
        if path == files[3]:
            raise KeyboardInterrupt
        return original(path, *args)  # type: ignore[arg-type]

    monkeypatch.setattr(mclx.audio, "decode_blocks", interrupt_at_last)
    with pytest.raises(KeyboardInterrupt):
        build_cache(files, RATE, tmp_path / "cache", 1)
    assert seen == ["0.wav", "1.wav", "2.wav"]
    monkeypatch.setattr(mclx.audio, "decode_blocks", original)
    directory = tmp_path / "cache" / f"{RATE}hz"
    (directory / "chunk-killed.i16.tmp").write_bytes(b"\0" * 10)  # what a kill -9 leaves
    resumed = decoded_files(monkeypatch)
    cache = build_cache(files, RATE, tmp_path / "cache", 1)
    assert resumed == ["3.wav"] and cache.paths == files
    assert not list(directory.glob("*.tmp"))
    # a full chunk, the part of one committed at the interrupt, the rest
    indexes = [json.loads(p.read_text()) for p in directory.glob("*.json")]
    assert sorted(len(i["tracks"]) for i in indexes) == [1, 1, 2]


def test_concurrent_builders_decode_each_file_once(
    tmp_path: Path, write_audio: WriteAudio, monkeypatch: pytest.MonkeyPatch
) -> None:
    files = make(write_audio, 4)
    seen = decoded_files(monkeypatch)
    results: list[list[str]] = []
    threads = [
        threading.Thread(
            target=lambda: results.append(build_cache(files, RATE, tmp_path / "c", 1, True).paths)
        )
        for _ in range(2)
    ]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert results == [files, files] and sorted(seen) == ["0.wav", "1.wav", "2.wav", "3.wav"]


def test_decoder_processes_give_the_same_tracks(
    tmp_path: Path, write_audio: WriteAudio, monkeypatch: pytest.MonkeyPatch
) -> None:
    files = [str(write_audio(f"{i}.flac", seconds=1.5, rate=44100, freq=300 + 100 * i)) for i in range(2)]
    here = build_cache(files, RATE, tmp_path / "a", 1)
    monkeypatch.setattr(mclx.train.data, "IN_PROCESS_BYTES", 0)
    pool = build_cache(files, RATE, tmp_path / "b", 1)
    assert here.lengths.tolist() == pool.lengths.tolist() == [round(1.5 * RATE)] * 2
    for t in range(2):
        a = here.segments(np.array([t]), np.array([0]), int(here.lengths[t]))
        b = pool.segments(np.array([t]), np.array([0]), int(pool.lengths[t]))
        np.testing.assert_allclose(a, b, atol=2 / 32768)


@pytest.mark.parametrize("in_pool", [False, True])
def test_a_long_track_is_spilled_to_disk_while_decoded_and_cached_the_same(
    tmp_path: Path, write_audio: WriteAudio, monkeypatch: pytest.MonkeyPatch, in_pool: bool
) -> None:
    import tracemalloc

    files = [str(write_audio("long.flac", seconds=240, rate=RATE, freq=330)), *make(write_audio, 2)]
    if in_pool:
        monkeypatch.setattr(mclx.train.data, "IN_PROCESS_BYTES", 0)
    reference = build_cache(files, RATE, tmp_path / "ref", 1)  # in memory: 7.7 MB of int16 for 240 s
    monkeypatch.setattr(mclx.train.data, "SPILL_BYTES", 1 << 20)
    tracemalloc.start()
    spilled = build_cache(files, RATE, tmp_path / "spilled", 1)
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    assert spilled.lengths.tolist() == reference.lengths.tolist() == [240 * RATE, RATE, RATE]
    for t in range(3):
        n = int(reference.lengths[t])
        a, b = (c.segments(np.array([t]), np.array([0]), n) for c in (reference, spilled))
        assert np.array_equal(a, b)
    if not in_pool:  # the decoding is in this process, where tracemalloc sees it
        assert peak < 5 << 20, peak  # the whole track in memory (twice, to join it) would be 15 MB
    assert not list((tmp_path / "spilled").rglob("*.tmp"))  # the spill files are gone
