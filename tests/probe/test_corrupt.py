"""`--corrupt`: the spec, what each corruption does to a signal, determinism, and the probe's rows."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest

import mclx.embed.run
from mclx.errors import UsageError
from mclx.probe.corrupt import Codec, Lowpass, Noise, Reverb, clip_seed, parse, write_copy

from ..audio_fixtures import music_like, tone
from .helpers import write_csv_task, write_features
from .test_run import pitch_task, run_in_process

RATE = 16000


def test_a_spec_parses_to_canonical_names_each_once() -> None:
    spec = "noise:10db, lowpass:2k,aac:24k,MP3:64K,reverb:0.5,noise:10,lowpass:2000hz"
    assert [c.name for c in parse(spec)] == ["noise:10db", "lowpass:2000", "aac:24k", "mp3:64k", "reverb:0.5"]
    assert parse("noise:-5db") == (Noise(-5.0),) and parse("reverb:.25s") == (Reverb(0.25),)


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        ("", "expected KIND:LEVEL"),
        ("noise", "noise: expected KIND:LEVEL"),
        ("hiss:3", "unknown kind 'hiss'"),
        ("noise:loud", "expected an SNR in dB"),
        ("noise:10db,lowpass:", "lowpass:: expected a cutoff"),
        ("lowpass:5", "5 Hz is out of range"),
        ("aac:24.5k", "whole number of kbit/s"),
        ("mp3:1000k", "1000 kbit/s is out of range"),
        ("reverb:0", "0 s is out of range"),
        ("reverb:20", "20 s is out of range"),
    ],
)
def test_a_bad_spec_is_a_usage_error_naming_the_flag(spec: str, message: str) -> None:
    with pytest.raises(UsageError, match=r"^--corrupt .*" + message.replace("(", r"\(")):
        parse(spec)


def test_a_missing_encoder_is_named(monkeypatch: pytest.MonkeyPatch) -> None:
    import av.codec

    monkeypatch.setattr(av.codec, "codecs_available", {"aac"})
    assert parse("aac:24k") == (Codec("aac", 24),)
    with pytest.raises(UsageError, match="--corrupt mp3:64k: this PyAV build has no libmp3lame encoder"):
        parse("aac:24k,mp3:64k")


def test_the_cli_refuses_a_bad_spec_with_exit_2_before_any_work(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    import mclx.probe.run

    clips = write_csv_task(tmp_path / "t", ["a", "b"] * 6)
    store = write_features(tmp_path / "x.h5", clips, np.zeros((12, 2)))
    monkeypatch.setattr(mclx.probe.run, "_embedded", lambda *a: pytest.fail("embedded before the check"))
    monkeypatch.setattr(mclx.probe.run, "load_task", lambda *a, **k: pytest.fail("task read before check"))
    code, _, err = run_in_process(
        capsys, "probe", "--task", "t", "--data", str(tmp_path / "t"), "--baseline", "mfcc",
        "--corrupt", "noise:10db,lowpass:loud",
    )  # fmt: skip
    assert code == 2 and err.strip().splitlines() == [
        "mclx: error: --corrupt lowpass:loud: expected a cutoff in Hz such as lowpass:2000 or lowpass:2k"
    ]
    code, _, err = run_in_process(
        capsys, "probe", "--task", "t", "--data", str(tmp_path / "t"), "--embeddings", store,
        "--corrupt", "noise:10db",
    )  # fmt: skip
    assert code == 2 and "--corrupt noise:10db: needs features mclx can embed" in err
    assert "Traceback" not in err


def _power(x: np.ndarray) -> float:
    return float(np.mean(np.asarray(x, dtype=np.float64) ** 2))


@pytest.mark.parametrize("snr", [10.0, 0.0, -5.0])
def test_noise_is_added_at_the_asked_snr(snr: float) -> None:
    x = tone(2.0, RATE, 440.0)[:, 0]
    y = Noise(snr).apply(x, RATE, seed=3)
    assert len(y) == len(x) and y.dtype == np.float32
    assert 10 * np.log10(_power(x) / _power(y - x)) == pytest.approx(snr, abs=0.1)


def _amplitude(x: np.ndarray, freq: float) -> float:
    """The amplitude of the sinusoid at ``freq`` (an integer number of cycles in x)."""
    spec = np.abs(np.fft.rfft(x)) * 2 / len(x)
    return float(spec[round(freq * len(x) / RATE)])


def test_lowpass_removes_a_5khz_tone_and_keeps_a_500hz_one() -> None:
    t = np.arange(RATE) / RATE
    x = (0.3 * np.sin(2 * np.pi * 500 * t) + 0.3 * np.sin(2 * np.pi * 5000 * t)).astype(np.float32)
    y = Lowpass(2000.0).apply(x, RATE, seed=0)
    assert _amplitude(x, 5000) == pytest.approx(0.3, rel=1e-3) and _amplitude(y, 5000) < 1e-5
    assert _amplitude(y, 500) == pytest.approx(0.3, rel=1e-3)


def _t60(x: np.ndarray) -> float:
    """Reverberation time in seconds from the Schroeder decay curve's slope between -5 and -25 dB."""
    edc = np.cumsum((x.astype(np.float64) ** 2)[::-1])[::-1]
    db = 10 * np.log10(edc / edc[0])
    t = np.arange(len(x)) / RATE
    fit = (db <= -5) & (db >= -25)
    slope = np.polyfit(t[fit], db[fit], 1)[0]
    return -60.0 / slope


@pytest.mark.parametrize("rt60", [0.2, 0.6])
def test_reverb_gives_a_click_the_asked_decay_time(rt60: float) -> None:
    x = np.zeros(2 * RATE, dtype=np.float32)
    x[1000] = 1.0  # a click: its decay is the room's
    y = Reverb(rt60).apply(x, RATE, seed=5)
    assert len(y) == len(x) and np.max(np.abs(y[:1000])) < 1e-9  # causal: nothing before the click
    assert y[1000] == pytest.approx(1 / np.sqrt(2), rel=1e-5)  # the dry click, at -3 dB
    tail = y[1001:]
    assert _power(tail[int(0.05 * RATE) :]) > 0  # sound where the click had long ended
    assert _t60(tail) == pytest.approx(rt60, rel=0.15)
    assert np.sum(tail.astype(np.float64) ** 2) == pytest.approx(0.5, rel=0.01)  # 0 dB direct/reverberant


@pytest.mark.parametrize("codec", ["aac", "mp3"])
@pytest.mark.parametrize("rate", [16000, 44100, 96000])  # 96 kHz: no MP3 at that rate, resampled
def test_a_codec_round_trip_keeps_length_and_alignment(codec: str, rate: int) -> None:
    x = music_like(1.0, rate, seed=1)[:, 0]
    y = Codec(codec, 64).apply(x, rate, seed=0)
    assert len(y) == len(x) and y.dtype == np.float32
    assert np.corrcoef(x, y)[0, 1] > 0.9  # aligned: a lag of one AAC frame would ruin this
    assert np.max(np.abs(y - x)) > 1e-4  # yet lossy
    # a lower bit rate loses more
    worse = Codec(codec, 8 if codec == "aac" else 16).apply(x, rate, seed=0)
    assert _power(worse - x) > _power(y - x)


def test_every_corruption_is_deterministic_per_clip(tmp_path: Path) -> None:
    import soundfile as sf

    x = music_like(0.5, RATE, seed=2)[:, 0]
    for c in parse("noise:10db,lowpass:2000,aac:24k,mp3:64k,reverb:0.5"):
        seed = clip_seed(c.name, "blues/00.wav")
        assert c.apply(x, RATE, seed).tobytes() == c.apply(x, RATE, seed).tobytes(), c.name
    assert clip_seed("noise:10db", "a.wav") != clip_seed("noise:10db", "b.wav")
    assert clip_seed("noise:10db", "a.wav") != clip_seed("noise:0db", "a.wav")
    source = tmp_path / "in.wav"
    sf.write(source, x, RATE)
    for target in (tmp_path / "1.wav", tmp_path / "2.wav"):
        write_copy(Reverb(0.5), str(source), "in.wav", target)
    assert (tmp_path / "1.wav").read_bytes() == (tmp_path / "2.wav").read_bytes()
    write_copy(Reverb(0.5), str(source), "other.wav", tmp_path / "3.wav")
    assert (tmp_path / "3.wav").read_bytes() != (tmp_path / "1.wav").read_bytes()


def _rows(report: dict[str, Any], corrupted: bool) -> list[dict[str, Any]]:
    return [r for r in report["results"] if ("corruption" in r) == corrupted]


def test_probe_scores_clean_heads_on_corrupted_test_clips(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    data = pitch_task(tmp_path / "pitch")  # 150-2400 Hz tones; the high class is all above 2 kHz
    summaries = []
    real_embed = mclx.embed.run.embed

    def counting_embed(*args: Any, **kwargs: Any) -> Any:
        summaries.append(real_embed(*args, **kwargs))
        return summaries[-1]

    monkeypatch.setattr(mclx.embed.run, "embed", counting_embed)
    flags = ["probe", "--task", "pitch", "--data", str(data), "--baseline", "mfcc", "--head", "linear"]
    flags += ["--seeds", "2"]
    clean_out, out = tmp_path / "clean.json", tmp_path / "robust.json"
    code, _, err = run_in_process(capsys, *flags, "--out", str(clean_out))
    assert code == 0, err
    code, _, err = run_in_process(capsys, *flags, "--out", str(out), "--corrupt", "noise:0db,lowpass:2000")
    assert code == 0, err
    clean, report = json.loads(clean_out.read_text()), json.loads(out.read_text())
    assert _rows(report, corrupted=False) == clean["results"]  # the clean rows are untouched
    assert [c for c in report["comparisons"] if "corruption" not in c] == clean["comparisons"]
    corrupted = _rows(report, corrupted=True)
    keys = {(r["head"], r["metric"]) for r in clean["results"]}
    assert {(r["corruption"], r["head"], r["metric"]) for r in corrupted} == {
        (c, *k) for c in ("noise:0db", "lowpass:2000") for k in keys
    }
    assert report["corruptions"] == ["noise:0db", "lowpass:2000"]

    def mean(rows: list[dict[str, Any]], metric: str, corruption: str | None = None) -> float:
        return next(r["mean"] for r in rows if r["metric"] == metric and r.get("corruption") == corruption)

    assert mean(clean["results"], "accuracy") >= 0.95
    assert mean(corrupted, "accuracy", "lowpass:2000") <= 2 / 3  # the high tones are gone
    diffs = {(c["corruption"], c["head"], c["metric"]): c for c in report["comparisons"] if "corruption" in c}
    assert diffs.keys() == {(r["corruption"], r["head"], r["metric"]) for r in corrupted}
    low = diffs[("lowpass:2000", "linear", "accuracy")]
    assert low["a"] == low["b"] == "mfcc"
    lost = mean(corrupted, "accuracy", "lowpass:2000") - mean(clean["results"], "accuracy")
    assert low["diff"] == pytest.approx(lost)
    assert low["ci95"][1] < 0  # paired on the same clips and seeds: a clear loss
    assert "lowpass:2000" in err and "noise:0db" in err and "corrupted test clips" in err  # the table

    # a second run reuses the corrupted copies and their embeddings
    copies = sorted((tmp_path / "robust.corrupt").rglob("*.wav"))
    assert len(copies) == 2 * 6
    stamps = [p.stat().st_mtime_ns for p in copies]
    summaries.clear()
    code, _, err = run_in_process(capsys, *flags, "--out", str(out), "--corrupt", "noise:0db,lowpass:2000")
    assert code == 0, err
    assert [p.stat().st_mtime_ns for p in copies] == stamps
    assert [(s.skipped, s.audio_s) for s in summaries] == [(24, 0.0), (6, 0.0), (6, 0.0)]
    assert json.loads(out.read_text())["results"] == report["results"]


def test_with_kfold_every_clip_is_corrupted_and_a_clip_that_cannot_be_is_left_out(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import mclx.probe.robustness
    from mclx.errors import DecodeError
    from mclx.probe import ProbeSettings, run_probe

    data = pitch_task(tmp_path / "pitch")
    for split in ("train", "valid", "test"):
        (data / f"{split}.txt").unlink()  # no split lists: 5-fold, every clip is some seed's test clip
    real_write = mclx.probe.robustness.write_copy

    def write_copy_but_one(c: Any, source: str, key: str, target: Path) -> None:
        if key == "high/03.wav":
            raise DecodeError("cannot encode")
        real_write(c, source, key, target)

    monkeypatch.setattr(mclx.probe.robustness, "write_copy", write_copy_but_one)
    out = tmp_path / "r.json"
    settings = ProbeSettings("pitch", str(data), baseline="mfcc", head="linear", seeds=2, out=str(out),
                             quiet=True, corrupt="reverb:0.3")  # fmt: skip
    report = run_probe(settings)
    assert len(list((tmp_path / "r.corrupt" / "reverb-0.3").glob("*.wav"))) == 23
    assert report["failed"] == [f"reverb:0.3: {data / 'high' / '03.wav'}: cannot encode"]  # exit 1
    assert sum(report["splits"].values()) == 23  # left out of the clean rows too: same clips for both
    assert {r["corruption"] for r in _rows(report, corrupted=True)} == {"reverb:0.3"}
    assert all(len(r["per_seed"]) == 2 for r in report["results"])
