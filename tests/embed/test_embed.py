"""End-to-end embedding: formats, the store contract, windows, resume, failures, shards."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import h5py
import numpy as np
import pytest
import soundfile as sf

from mclx.embed import EmbedSettings, embed
from mclx.store import merge_stores, read_store

from ..audio_fixtures import FORMATS, WriteAudio
from ..helpers import assert_same_store, run_cli, settings


@pytest.mark.parametrize("ext", sorted(FORMATS))
@pytest.mark.parametrize(("rate", "channels"), [(44100, 2), (22050, 1), (48000, 6), (8000, 1)])
def test_every_format_and_layout_is_embedded(
    write_audio: WriteAudio, tmp_path: Path, ext, rate, channels
) -> None:
    if ext == "opus" and rate not in (8000, 48000):
        rate = 48000  # libsndfile writes Opus only at Opus rates
    if ext == "mp3":
        channels = min(channels, 2)  # MPEG audio holds at most two channels
    path = write_audio(f"x.{ext}", seconds=3.5, rate=rate, channels=channels)
    out = tmp_path / "out.h5"
    summary = embed([str(path)], str(out), settings(level="both"))
    assert (summary.ok, summary.failed) == (1, 0)
    store = read_store(out)
    rec = store.records[0]
    assert rec.status == "ok"
    assert rec.duration_s == pytest.approx(3.5, abs=0.08)  # lossy codecs pad a little
    assert rec.segment_count == 2  # [0, 3) and the end-aligned [0.5, 3.5)
    assert np.isfinite(rec.global_).all()


def test_stereo_file_embeds_like_its_mono_mix(write_audio: WriteAudio, tmp_path: Path) -> None:
    stereo = write_audio("s.wav", seconds=4, rate=16000, channels=2)
    data, rate = sf.read(stereo, dtype="float32")
    mono = tmp_path / "audio" / "m.wav"
    sf.write(mono, data.mean(axis=1), rate, subtype="FLOAT")
    embed([str(stereo), str(mono)], str(tmp_path / "o.h5"), settings())
    g = read_store(tmp_path / "o.h5").global_matrix()
    np.testing.assert_allclose(g[0], g[1], atol=2e-3)


def test_store_matches_the_contract(write_audio: WriteAudio, tmp_path: Path) -> None:
    files = [write_audio("a.wav", seconds=7), write_audio("b.flac", seconds=2, freq=880)]
    bad = tmp_path / "audio" / "c.mp3"
    bad.write_bytes(b"\x00garbage" * 50)
    out = tmp_path / "out.h5"
    embed([str(f) for f in [*files, bad]], str(out), settings(level="both"), argv=["embed", "x"])
    with h5py.File(out, "r") as h:
        a = h.attrs
        assert a["format"] == "mclx-embeddings" and a["format_version"] == 1
        keys = "mclx_version model model_sha256 model_config sample_rate window_s hop_s dim level pooling"
        for key in [*keys.split(), "precision", "created_utc", "argv"]:
            assert key in a, key
        assert json.loads(a["argv"]) == ["embed", "x"]
        assert json.loads(a["model_config"])["architecture"] == "mfcc"
        assert (a["level"], a["pooling"], a["precision"], a["dim"]) == ("both", "mean", "fp32", 80)
        f = h["files"]
        n = 3
        for name, dtype in [("duration_s", np.float64), ("size_bytes", np.int64), ("mtime_ns", np.int64),
                            ("segment_start", np.int64), ("segment_count", np.int64)]:  # fmt: skip
            assert f[name].shape == (n,) and f[name].dtype == dtype, name
        for name in ("path", "status", "error"):
            assert h5py.check_string_dtype(f[name].dtype).encoding == "utf-8"
        assert [s.decode() for s in f["status"][()]] == ["ok", "ok", "failed"]
        assert f["error"][2].decode() and not f["error"][0]
        assert f["size_bytes"][0] == os.path.getsize(files[0])
        assert h["global"].shape == (3, 80) and h["global"].dtype == np.float32
        assert np.isnan(h["global"][2]).all()
        m = int(f["segment_count"][()].sum())
        assert h["segments/embedding"].shape == (m, 80) and h["segments/embedding"].dtype == np.float32
        assert h["segments/file"].dtype == np.int64 and h["segments/start_s"].dtype == np.float64
        np.testing.assert_array_equal(h["segments/file"][()], np.repeat([0, 1, 2], f["segment_count"][()]))
        # a 7 s file: windows [0,3), [3,6), then one aligned to the end [4,7)
        np.testing.assert_allclose(h["segments/start_s"][:3], [0, 3, 4])
        np.testing.assert_allclose(h["segments/end_s"][:3], [3, 6, 7])
        # a 2 s file: one zero-padded window whose end is the file's duration
        np.testing.assert_allclose(h["segments/end_s"][3], 2.0)


@pytest.mark.parametrize(
    ("seconds", "expected"), [(2.0, [(0, 2.0)]), (3.0, [(0, 3.0)]), (3.05, [(0, 3.0), (0.05, 3.05)])]
)
def test_window_rule_around_one_window(write_audio: WriteAudio, tmp_path: Path, seconds, expected) -> None:
    path = write_audio("x.wav", seconds=seconds, rate=16000)
    embed([str(path)], str(tmp_path / "o.h5"), settings(level="segment"))
    rec = read_store(tmp_path / "o.h5").records[0]
    assert rec.segment_count == len(expected)
    np.testing.assert_allclose(rec.starts, [s for s, _ in expected], atol=1e-9)
    np.testing.assert_allclose(rec.ends, [e for _, e in expected], atol=1e-9)


def test_global_is_the_mean_of_segments(write_audio: WriteAudio, tmp_path: Path) -> None:
    files = [str(write_audio(f"{i}.flac", seconds=3 + 2.3 * i, freq=200 + 150 * i)) for i in range(4)]
    embed(files, str(tmp_path / "o.h5"), settings(level="both", hop_s=1.0))
    for rec in read_store(tmp_path / "o.h5").records:
        assert rec.segments is not None and len(rec.segments) == rec.segment_count > 0
        np.testing.assert_allclose(rec.global_, rec.segments.mean(axis=0), rtol=1e-6, atol=1e-6)


def test_a_run_times_its_stages_and_json_leaves_them_out(write_audio: WriteAudio, tmp_path: Path) -> None:
    files = [str(write_audio(f"{i}.wav", seconds=2 + i, freq=300 + 70 * i)) for i in range(3)]
    summary = embed(files, str(tmp_path / "o.h5"), settings())
    stages = summary.stage_s
    assert {"plan", "resume", "start", "wait", "forward", "engine", "journal", "store"} <= stages.keys()
    assert min(stages.values()) >= 0 and stages["forward"] > 0
    assert stages["plan"] + stages["resume"] + stages["engine"] + stages["store"] <= summary.wall_s
    assert stages["start"] + stages["wait"] + stages["forward"] <= stages["engine"]
    assert not any("stage" in key for key in summary.as_json())  # --json prints what it printed


def test_same_input_same_output_bit_for_bit(write_audio: WriteAudio, tmp_path: Path) -> None:
    files = [str(write_audio(f"{i}.wav", seconds=2 + i, freq=300 + 70 * i)) for i in range(6)]
    embed(files, str(tmp_path / "a.h5"), settings(level="both", workers=1, model="random-melcnn"))
    embed(
        files, str(tmp_path / "b.h5"), settings(level="both", workers=3, model="random-melcnn", batch_size=8)
    )
    assert_same_store(tmp_path / "a.h5", tmp_path / "b.h5")


def test_bad_files_are_recorded_and_the_run_goes_on(write_audio: WriteAudio, tmp_path: Path) -> None:
    good = write_audio("good.flac", seconds=4)
    d = tmp_path / "audio"
    (d / "empty.wav").write_bytes(b"")
    (d / "noise.mp3").write_bytes(os.urandom(3000))
    full = write_audio("cut.flac", seconds=6, freq=500)
    (d / "truncated.flac").write_bytes(full.read_bytes()[: full.stat().st_size // 3])
    full.unlink()
    summary = embed([str(p) for p in sorted(d.iterdir())], str(tmp_path / "o.h5"), settings())
    rows = {Path(r.path).name: r for r in read_store(tmp_path / "o.h5").records}
    assert rows["good.flac"].status == "ok"
    assert rows["empty.wav"].status == "failed" and rows["empty.wav"].error == "empty file (0 bytes)"
    assert rows["noise.mp3"].status == "failed" and "\n" not in rows["noise.mp3"].error
    truncated = rows["truncated.flac"]  # either decoded up to the cut or recorded as failed
    assert (truncated.status == "ok" and truncated.duration_s < 6) or truncated.error
    assert summary.failed == sum(r.status == "failed" for r in rows.values()) >= 2
    assert str(good) in [r.path for r in read_store(tmp_path / "o.h5").records]


def test_resume_skips_done_files_and_retries_failed(write_audio: WriteAudio, tmp_path: Path) -> None:
    a, b = str(write_audio("a.wav")), str(write_audio("b.wav", freq=300))
    broken = tmp_path / "audio" / "c.wav"
    broken.write_bytes(b"junk")
    out = str(tmp_path / "o.h5")
    first = embed([a, str(broken)], out, settings())
    assert (first.ok, first.failed) == (1, 1)
    write_audio("c.wav", freq=600)  # the user fixes the broken file
    second = embed([a, b, str(broken)], out, settings())
    assert (second.skipped, second.ok, second.failed) == (1, 3, 0)
    assert [Path(p).name for p in read_store(out).paths] == ["a.wav", "b.wav", "c.wav"]


def test_a_store_with_other_settings_is_refused(write_audio: WriteAudio, tmp_path: Path) -> None:
    path = str(write_audio("a.wav"))
    embed([path], str(tmp_path / "o.h5"), settings())
    result = run_cli("embed", path, str(tmp_path / "o.h5"), "--model", "mfcc", "--hop", "1", "-q")
    assert result.returncode == 2 and "hop_s" in result.stderr and "--overwrite" in result.stderr
    result = run_cli(
        "embed", path, str(tmp_path / "o.h5"), "--model", "mfcc", "--hop", "1", "-q", "--overwrite"
    )
    assert result.returncode == 0, result.stderr


def test_usage_errors_exit_2_before_any_work(write_audio: WriteAudio, tmp_path: Path) -> None:
    path = str(write_audio("a.wav"))
    missing = run_cli("embed", path, "nope/missing.wav", str(tmp_path / "o.h5"))
    assert missing.returncode == 2 and "nope/missing.wav" in missing.stderr
    bad_out = run_cli("embed", path, str(tmp_path / "no_dir" / "o.h5"))
    assert bad_out.returncode == 2 and "does not exist" in bad_out.stderr
    bad_level = run_cli("embed", path, str(tmp_path / "o.h5"), "--level", "frames")
    assert bad_level.returncode == 2 and "--level" in bad_level.stderr
    assert not (tmp_path / "o.h5").exists()


def test_stdin_path_list(write_audio: WriteAudio, tmp_path: Path) -> None:
    a, b = str(write_audio("a.ogg")), str(write_audio("b.flac", freq=300))
    listing = f"# my files\n{b}\n\n{a}\n{b}\n"
    result = run_cli("embed", "-", str(tmp_path / "o.h5"), "--model", "mfcc", "--json", "-q", stdin=listing)
    assert result.returncode == 0, result.stderr
    summary = json.loads(result.stdout)
    assert (summary["files"], summary["ok"]) == (2, 2)
    assert read_store(tmp_path / "o.h5").paths == [b, a]
    nul = run_cli(
        "embed", "-", "--null", str(tmp_path / "n.h5"), "--model", "mfcc", "-q", stdin=f"{a}\0{b}\0"
    )
    assert nul.returncode == 0 and read_store(tmp_path / "n.h5").paths == [a, b]


def test_failed_files_give_exit_code_1_and_info_lists_them(write_audio: WriteAudio, tmp_path: Path) -> None:
    write_audio("a.wav")
    (tmp_path / "audio" / "b.wav").write_bytes(b"nothing")
    out = str(tmp_path / "o.h5")
    result = run_cli("embed", str(tmp_path / "audio"), out, "--model", "mfcc", "-q")
    assert result.returncode == 1
    info = json.loads(run_cli("info", out, "--json").stdout)
    assert (info["files"], info["ok"], info["failed"]) == (2, 1, 1)
    assert info["failures"][0]["path"].endswith("b.wav")


def assert_shards_merge_to_a_single_run(src: str, tmp_path: Path, n_shards: int, n_files: int) -> None:
    """`--shard i/N` runs over ``src``, merged, equal the single run array for array.

    ``src`` is relative to the test's directory, so the path hashes, hence the shards, are the
    same in every run (under an absolute temporary path a shard could come out empty)."""
    args = ["--model", "mfcc", "--level", "both", "-q"]
    single = run_cli("embed", src, str(tmp_path / "all.h5"), *args)
    assert single.returncode == 0, single.stderr
    shards = []
    for i in range(n_shards):
        out = str(tmp_path / f"s{i}.h5")
        r = run_cli("embed", src, out, *args, "--shard", f"{i}/{n_shards}")
        assert r.returncode == 0, r.stderr
        shards.append(out)
    sizes = [len(read_store(s).records) for s in shards]
    assert sum(sizes) == n_files and all(0 < n < n_files for n in sizes)
    merged = run_cli("merge", str(tmp_path / "merged.h5"), *shards, "-q")
    assert merged.returncode == 0, merged.stderr
    assert_same_store(tmp_path / "all.h5", tmp_path / "merged.h5")


def test_shards_merged_equal_a_single_run(write_audio: WriteAudio, tmp_path: Path) -> None:
    for i in range(7):
        write_audio(f"{i:02d}.wav", seconds=1.5 + i, freq=200 + 90 * i)
    assert_shards_merge_to_a_single_run("audio", tmp_path, 3, 7)


@pytest.mark.slow  # a kill loop
def test_resume_after_kill_9_equals_an_uninterrupted_run(write_audio: WriteAudio, tmp_path: Path) -> None:
    for i in range(40):
        write_audio(f"{i:02d}.flac", seconds=6, freq=150 + 25 * i, seed=i)
    src = str(tmp_path / "audio")
    args = ["--model", "random-melcnn", "--level", "both", "--workers", "1", "--batch-size", "4", "-q"]
    ref = run_cli("embed", src, str(tmp_path / "ref.h5"), *args)
    assert ref.returncode == 0, ref.stderr
    out = tmp_path / "out.h5"
    journal = tmp_path / "out.h5.journal"
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).parents[2]), "MCLX_JOURNAL_EVERY_S": "0.05"}
    proc = subprocess.Popen([sys.executable, "-m", "mclx", "embed", src, str(out), *args], env=env)
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and not list(journal.glob("chunk-*.npz")):
        time.sleep(0.01)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert not out.exists(), "the run finished before the kill: the test proves nothing"
    assert list(journal.glob("chunk-*.npz"))
    resumed = run_cli("embed", src, str(out), *args, "--json")
    assert resumed.returncode == 0, resumed.stderr
    assert json.loads(resumed.stdout)["skipped"] > 0
    assert_same_store(tmp_path / "ref.h5", out)
    assert not journal.exists()


def test_shards_of_an_explicit_file_list_merge_in_its_order_when_given_it(
    write_audio: WriteAudio, tmp_path: Path
) -> None:
    # Not a directory walk: a merge cannot know this order unless it is given it (torchrun's
    # rank 0 gives it); without it the shards follow each other, each in its own order.
    names = ["z.wav", "k.wav", "m.wav", "a.wav", "b.wav", "c.wav"]
    files = [str(write_audio(n, seconds=1.0 + 0.2 * i, freq=200 + 80 * i)) for i, n in enumerate(names)]
    settings = EmbedSettings(model="mfcc", level="both", quiet=True)
    embed(files, str(tmp_path / "all.h5"), settings)
    halves = [files[0::2], files[1::2]]
    shards = [str(tmp_path / f"s{i}.h5") for i in range(2)]
    for half, shard in zip(halves, shards, strict=True):
        embed(half, shard, settings)
    merge_stores(str(tmp_path / "ordered.h5"), shards, order=files)
    assert_same_store(tmp_path / "all.h5", tmp_path / "ordered.h5")
    merge_stores(str(tmp_path / "plain.h5"), shards)
    assert read_store(tmp_path / "plain.h5").paths == halves[0] + halves[1]


def test_fail_fast_stops_at_an_input_that_cannot_be_read_before_any_work(
    write_audio: WriteAudio, tmp_path: Path
) -> None:
    files = [str(tmp_path / "missing.wav")] + [str(write_audio(f"{i}.wav", seconds=1.0)) for i in range(3)]
    done = run_cli("embed", "-", str(tmp_path / "o.h5"), "--model", "mfcc", "--fail-fast", "--json",
                   stdin="\n".join(files))  # fmt: skip
    assert done.returncode == 1, done.stderr
    summary = json.loads(done.stdout)
    assert summary["ok"] == 0 and summary["failed"] == 1
    again = run_cli("embed", "-", str(tmp_path / "o.h5"), "--model", "mfcc", "--json", stdin="\n".join(files))
    assert json.loads(again.stdout)["ok"] == 3  # the rest, without --fail-fast


def test_shards_of_nested_folders_merged_equal_a_single_run(write_audio: WriteAudio, tmp_path: Path) -> None:
    # A walk lists a folder's files before its subfolders, which is not the paths' sorted order
    # ("a/d.wav" before "a/b/x.wav", "b.wav" before "a/..."): the merge must follow the walk.
    audio = tmp_path / "audio"
    names = ["z.wav", "a/y.wav", "a/b/x.wav", "a/b/c/w.wav", "a/d.wav", "m/n.wav", "b.wav", "m/a/k.wav"]
    for i, name in enumerate(names):
        write_audio(name, seconds=1.0 + 0.3 * i, freq=200 + 70 * i, directory=audio)
    assert_shards_merge_to_a_single_run("audio", tmp_path, 2, len(names))


@pytest.mark.parametrize(
    ("flags", "message"),
    [(["--hop", "0"], "--hop 0: must be at least one sample"),
     (["--hop", "1e-6"], "--hop 1e-06: must be at least one sample"),
     (["--window", "1e-6"], "--window 1e-06: must be at least one sample"),
     (["--window", "0"], "--window 0: must be at least one sample"),
     (["--window", "nan"], "--window nan: expected a number of seconds, at most 600"),
     (["--hop", "inf"], "--hop inf: expected a number of seconds, at most 600"),
     (["--window", "1e6"], "--window 1e+06: expected a number of seconds, at most 600"),
     (["--batch-size", "0"], "--batch-size must be at least 1")],
)  # fmt: skip
def test_zero_tiny_or_huge_window_hop_or_batch_is_a_usage_error_before_any_work(
    tmp_path: Path, write_audio, flags: list[str], message: str
) -> None:
    """A window or hop under one sample, not finite or over 600 s, or a batch of 0, ends with exit 2
    before any work and leaves no store or journal (an outside review's defect 3)."""
    wav = write_audio("a.wav", seconds=1.0)
    done = run_cli("embed", str(wav), str(tmp_path / "o.h5"), "--model", "mfcc", *flags)
    assert done.returncode == 2 and message in done.stderr
    assert not (tmp_path / "o.h5").exists() and not (tmp_path / "o.h5.journal").exists()


@pytest.mark.parametrize("again_with_flag", [False, True])
def test_an_interrupted_overwrite_run_resumes_with_or_without_the_flag(
    tmp_path: Path, write_audio, again_with_flag: bool
) -> None:
    """An interrupted --overwrite run is carried on by the next run, with or without the flag, and the
    old store stays untouched until then (an outside review's defect 2)."""
    import os
    import signal

    from mclx.embed import embed
    from mclx.errors import Interrupted
    from mclx.store import read_attrs

    from ..helpers import assert_same_store, settings

    files = [str(write_audio(f"{i}.wav", seconds=2.0, freq=200 + 50 * i, seed=i)) for i in range(5)]
    out = tmp_path / "o.h5"
    embed(files, str(out), settings())  # an old store, other settings (hop = window)
    new = settings(hop_s=1.0, batch_size=1, workers=1)
    embed(files, str(tmp_path / "ref.h5"), new)  # what the replacing run should give

    def ctrl_c(summary) -> None:  # type: ignore[no-untyped-def]
        os.kill(os.getpid(), signal.SIGINT)

    with pytest.raises(Interrupted):
        embed(
            files, str(out), settings(hop_s=1.0, batch_size=1, workers=1, overwrite=True), on_progress=ctrl_c
        )
    assert list((tmp_path / "o.h5.journal").glob("chunk-*.npz")), "nothing was journaled: proves nothing"
    assert float(read_attrs(out)["hop_s"]) != 1.0  # the old store is still there, untouched
    again = embed(files, str(out), settings(hop_s=1.0, batch_size=1, workers=1, overwrite=again_with_flag))
    assert again.skipped > 0  # carried on from the journal
    assert_same_store(tmp_path / "ref.h5", out)


def test_a_store_holds_this_runs_inputs_in_order_then_earlier_rows(tmp_path: Path, write_audio) -> None:
    """The store's rows: this run's inputs in input order, then an earlier run's other rows; with
    --overwrite, only this run's (an outside review's defect 8)."""
    from mclx.embed import embed
    from mclx.store import read_store

    from ..helpers import settings

    paths = {n: str(write_audio(f"{n}.wav", seconds=1.0, freq=300 + 40 * i)) for i, n in enumerate("abcde")}
    out = str(tmp_path / "o.h5")
    embed([paths["c"], paths["a"], paths["b"]], out, settings())
    embed([paths["e"], paths["b"], paths["d"]], out, settings())
    assert [Path(p).stem for p in read_store(out).paths] == ["e", "b", "d", "c", "a"]
    embed([paths["d"]], out, settings(overwrite=True))  # --overwrite: only this run's inputs
    assert [Path(p).stem for p in read_store(out).paths] == ["d"]
