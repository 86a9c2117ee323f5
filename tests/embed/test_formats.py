"""FFmpeg formats (M4A/AAC, M4A/ALAC, MP4, WebM, WMA), what a walk reads and skips, and nothing to embed."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from mclx.audio import decode_blocks
from mclx.embed import EmbedSettings, embed
from mclx.errors import DecodeError
from mclx.store import read_store

from ..audio_fixtures import ENCODED, RATE, music_like, write_encoded


def run_cli(*args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).parents[2])}
    return subprocess.run(
        [sys.executable, "-m", "mclx", *args], capture_output=True, text=True, env=env, timeout=300
    )


@pytest.fixture(scope="module")
def library(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The same 6 s of music as WAV and in every FFmpeg format."""
    root = tmp_path_factory.mktemp("library")
    audio = music_like(6.0)
    sf.write(root / "reference.wav", audio, RATE, subtype="FLOAT")
    for name, codec in ENCODED:
        write_encoded(root / name, audio, RATE, codec)
    return root


def test_ffmpeg_formats_embed_like_the_wav(library: Path, tmp_path: Path) -> None:
    names = ["reference.wav"] + [name for name, _ in ENCODED]
    out = tmp_path / "o.h5"
    summary = embed(
        [str(library / n) for n in names], str(out), EmbedSettings(model="mfcc", workers=2, quiet=True)
    )
    assert (summary.ok, summary.failed) == (len(names), 0), summary.failures
    store = read_store(out)
    g = store.global_matrix()
    for name, row, rec in zip(names[1:], g[1:], store.records[1:], strict=True):
        cosine = float(row @ g[0] / (np.linalg.norm(row) * np.linalg.norm(g[0])))
        assert cosine >= 0.99, (name, cosine)
        assert rec.duration_s == pytest.approx(6.0, abs=0.1), name  # codec priming/padding only


def test_ffmpeg_decoding_streams_in_bounded_blocks(tmp_path: Path) -> None:
    path = write_encoded(tmp_path / "long.m4a", music_like(20.0), RATE)
    blocks = list(decode_blocks(str(path), block_frames=10_000))
    sizes = [len(b) for _, b in blocks]
    assert max(sizes) == 10_000 and all(s > 0 for s in sizes)
    assert sum(sizes) == pytest.approx(20 * RATE, abs=4096)  # AAC adds at most a few frames
    assert all(rate == RATE and b.dtype == np.float32 and b.ndim == 1 for rate, b in blocks)


def test_alac_is_lossless_through_the_decoder(tmp_path: Path) -> None:
    audio = music_like(2.0)
    path = write_encoded(tmp_path / "x.m4a", audio, RATE, codec="alac")
    mono = np.concatenate([b for _, b in decode_blocks(str(path))])
    expected = audio.mean(axis=1)
    assert len(mono) == len(expected)
    np.testing.assert_allclose(mono, expected, atol=2e-4)  # ALAC stores 16-bit samples here


def test_file_without_an_audio_stream_is_a_one_line_error(tmp_path: Path) -> None:
    import av

    path = tmp_path / "video-only.mp4"
    with av.open(str(path), "w") as out:
        stream = out.add_stream("mpeg4", rate=10)
        stream.width, stream.height, stream.pix_fmt = 32, 32, "yuv420p"
        for _ in range(3):
            frame = av.VideoFrame.from_ndarray(np.zeros((32, 32, 3), np.uint8), format="rgb24")
            out.mux(stream.encode(frame))
        out.mux(stream.encode(None))
    with pytest.raises(DecodeError, match="no audio stream"):
        list(decode_blocks(str(path)))


def test_protected_and_unknown_files_are_recorded_with_the_reason(tmp_path: Path) -> None:
    drm = tmp_path / "bought.m4p"
    drm.write_bytes(b"\0\0\0\x20ftypM4P " + bytes(200))
    text = tmp_path / "notes.xyz"
    text.write_text("not audio at all\n" * 50)
    summary = embed([str(drm), str(text)], str(tmp_path / "o.h5"), EmbedSettings(model="mfcc", quiet=True))
    reasons = dict(summary.failures)
    assert summary.failed == 2
    assert "FairPlay" in reasons[str(drm)]
    assert "libsndfile or FFmpeg" in reasons[str(text)]


def test_walk_reads_every_audio_kind_and_reports_what_it_skipped(library: Path, tmp_path: Path) -> None:
    folder = tmp_path / "music"
    (folder / "album").mkdir(parents=True)
    for name, _ in ENCODED:
        (folder / "album" / name).write_bytes((library / name).read_bytes())
    for name in ("cover.jpg", "back.jpg", "notes.txt", "._aac.m4a"):
        (folder / "album" / name).write_bytes(b"\0" * 64)
    proc = run_cli("embed", str(folder), str(tmp_path / "o.h5"), "--model", "mfcc", "--json")
    assert proc.returncode == 0, proc.stderr
    store = read_store(tmp_path / "o.h5")
    assert sorted(Path(p).name for p in store.paths) == sorted(name for name, _ in ENCODED)
    assert "4 files skipped: not audio (.jpg 2, " in proc.stderr
    assert ".txt 1" in proc.stderr and "._ (macOS metadata) 1" in proc.stderr


def test_inputs_without_audio_exit_2_and_leave_no_store(tmp_path: Path) -> None:
    folder = tmp_path / "pictures"
    folder.mkdir()
    (folder / "a.jpg").write_bytes(b"\xff\xd8" + bytes(100))
    proc = run_cli("embed", str(folder), str(tmp_path / "o.h5"), "--model", "mfcc")
    assert proc.returncode == 2
    assert "no audio files in the inputs (1 file skipped: not audio (.jpg 1))" in proc.stderr
    assert "m4a" in proc.stderr  # says what it reads
    assert not (tmp_path / "o.h5").exists()
    assert not any(p.name.startswith(".o.h5") for p in tmp_path.iterdir())


def test_help_lists_the_formats() -> None:
    proc = run_cli("embed", "--help")
    assert proc.returncode == 0
    text = " ".join(proc.stdout.split())
    for ext in ("flac", "mp3", "m4a", "webm", "wma"):
        assert ext in text
