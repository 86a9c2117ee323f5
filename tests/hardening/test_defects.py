"""Defects found by an outside review, each behind a test named after it."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from mclx.store import FileRecord, write_store

from ..helpers import run_cli

ODD_NAMES = ["Artist [feat. Y].wav", "Live [live] [2019].wav", "Bold [/b] close.wav", "[red]x[/red].wav"]


def _store(path: Path, names: list[str], model: str = "mfcc") -> Path:
    attrs = {"format": "mclx-embeddings", "format_version": 1, "mclx_version": "test", "model": model,
             "model_sha256": "0" * 64, "model_config": "{}", "sample_rate": 16000, "window_s": 1.0,
             "hop_s": 1.0, "dim": 2, "level": "global", "pooling": "mean", "precision": "fp32",
             "created_utc": "", "argv": "[]"}  # fmt: skip
    records = [FileRecord(f"./{n}", "failed", f"cannot decode {n}", 0.0, 0, 0) for n in names]
    records.append(FileRecord("./ok.wav", "ok", "", 1.0, 1, 1, global_=np.zeros(2, np.float32)))
    write_store(path, attrs, records)
    return path


def test_defect_1_paths_with_brackets_print_verbatim_in_mclx_info(tmp_path: Path) -> None:
    store = _store(tmp_path / "odd [v2].h5", ODD_NAMES, model="runs/[x]/encoder.safetensors")
    done = run_cli("info", str(store))
    assert done.returncode == 0, done.stderr
    for name in ODD_NAMES:
        assert f"./{name}: cannot decode {name}" in done.stdout
    assert "odd [v2].h5" in done.stdout and "runs/[x]/encoder.safetensors" in done.stdout


@pytest.mark.parametrize("task", ["odd[/b]", "t[live]"])
def test_defect_1_task_names_and_feature_paths_print_verbatim_in_the_probe_table(
    tmp_path: Path, task: str, capsys: pytest.CaptureFixture[str]
) -> None:
    from mclx.probe import ProbeSettings, run_probe

    from ..probe.helpers import blobs, write_csv_task, write_features

    x, y = blobs(8, 2, 4, spread=0.5, seed=0)
    data = tmp_path / task
    clips = write_csv_task(
        data, [f"k{v}" for v in y], [("train", "valid", "test", "train")[i % 4] for i in range(16)]
    )
    store = write_features(tmp_path / "f [feat. Y].h5", clips, x)
    run_probe(ProbeSettings(task, str(data), embeddings=(store,), head="linear", seeds=1))
    err = capsys.readouterr().err
    assert f"probe {task}" in err and "f [feat. Y].h5" in err


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
def test_defect_3_zero_window_or_hop_is_a_usage_error_before_any_work(
    tmp_path: Path, write_audio, flags: list[str], message: str
) -> None:
    wav = write_audio("a.wav", seconds=1.0)
    done = run_cli("embed", str(wav), str(tmp_path / "o.h5"), "--model", "mfcc", *flags)
    assert done.returncode == 2 and message in done.stderr
    assert not (tmp_path / "o.h5").exists() and not (tmp_path / "o.h5.journal").exists()


def test_defect_5_a_diverged_run_writes_no_non_finite_checkpoint_and_exits_1(
    tmp_path: Path, write_audio, monkeypatch: pytest.MonkeyPatch
) -> None:
    import torch
    from safetensors.torch import load_file

    import mclx.train
    from mclx.errors import TrainingDiverged

    from ..helpers import write_config

    config = write_config(tmp_path, write_audio)  # 12 steps, checkpoints every 4, logs every 2
    real = mclx.train.losses.contrastive_loss
    calls = {"n": 0}

    def nan_from_step_7(*args, **kwargs):  # type: ignore[no-untyped-def]
        calls["n"] += 1
        loss = real(*args, **kwargs)
        return loss * float("nan") if calls["n"] >= 7 else loss

    monkeypatch.setattr(mclx.train.losses, "contrastive_loss", nan_from_step_7)
    out = tmp_path / "run"
    with pytest.raises(TrainingDiverged, match=r"non-finite at step 7 .*train\.lr") as err:
        mclx.train.run_training(str(config), str(out), False, ["train.snapshot_every=1"], quiet=True)
    assert err.value.exit_code == 1
    state = torch.load(out / "state.pt", weights_only=True)
    assert state["step"] == 4  # the checkpoint at step 8 was never written
    for path in [out / "encoder.safetensors", *(out / "snapshots").glob("*.safetensors")]:
        assert all(torch.isfinite(t).all() for t in load_file(path).values()), path
    assert sorted(p.name for p in (out / "snapshots").glob("*"))[-1] == "step-000006.safetensors"


def test_defect_7_mfcc_is_computed_in_fp32_under_autocast() -> None:
    """The embed pipeline runs encoders under bf16 autocast on CUDA; CPU autocast shows the same path."""
    import torch

    from mclx.models.registry import load_model

    from ..audio_fixtures import tone

    encoder = load_model("mfcc").encoder
    x = torch.from_numpy(np.stack([tone(3.0, 16000, 440)[:, 0], tone(3.0, 16000, 97, seed=1)[:, 0]]))
    plain = encoder(x)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        cast = encoder(x)
    assert cast.dtype == torch.float32
    torch.testing.assert_close(cast, plain, rtol=1e-6, atol=1e-6)


@pytest.mark.parametrize("again_with_flag", [False, True])
def test_defect_2_an_interrupted_overwrite_run_resumes_with_or_without_the_flag(
    tmp_path: Path, write_audio, again_with_flag: bool
) -> None:
    import os
    import signal

    from mclx.errors import Interrupted
    from mclx.pipeline import embed
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


def test_defect_8_a_store_holds_this_runs_inputs_in_order_then_earlier_rows(
    tmp_path: Path, write_audio
) -> None:
    from mclx.pipeline import embed
    from mclx.store import read_store

    from ..helpers import settings

    paths = {n: str(write_audio(f"{n}.wav", seconds=1.0, freq=300 + 40 * i)) for i, n in enumerate("abcde")}
    out = str(tmp_path / "o.h5")
    embed([paths["c"], paths["a"], paths["b"]], out, settings())
    embed([paths["e"], paths["b"], paths["d"]], out, settings())
    assert [Path(p).stem for p in read_store(out).paths] == ["e", "b", "d", "c", "a"]
    embed([paths["d"]], out, settings(overwrite=True))  # --overwrite: only this run's inputs
    assert [Path(p).stem for p in read_store(out).paths] == ["d"]


def test_defect_4_sigterm_at_random_instants_then_resume_is_bit_identical(
    tmp_path: Path, write_audio
) -> None:
    import os
    import random
    import signal
    import threading
    import time

    import torch
    from safetensors.torch import load_file

    from mclx.errors import Interrupted
    from mclx.train import run_training

    from ..helpers import write_config

    config = str(write_config(tmp_path, write_audio))
    steps = ["train.steps=30", "train.checkpoint_every=7"]
    t0 = time.monotonic()
    run_training(config, str(tmp_path / "full"), False, steps, quiet=True)
    span = time.monotonic() - t0
    part = tmp_path / "part"
    rng = random.Random(4)
    kills = runs = 0
    previous = signal.signal(signal.SIGTERM, lambda *_: None)  # a late signal must not end pytest
    try:
        while runs < 20:
            runs += 1
            # The first two signals come within the first 40% of the full run's time, so that they
            # land inside a run even when the machine has sped up since it was timed.
            late = rng.uniform(0.0, span) if kills >= 2 else rng.uniform(0.05, 0.4) * span
            timer = threading.Timer(late, os.kill, (os.getpid(), signal.SIGTERM))
            timer.start()
            try:
                run_training(config, str(part), (part / "state.pt").exists(), steps, quiet=True)
                break
            except Interrupted:
                kills += 1
            finally:
                timer.cancel()
                timer.join()
    finally:
        signal.signal(signal.SIGTERM, previous)
    assert kills >= 2, f"{kills} of {runs} signals landed inside a run: the test proves too little"
    a, b = load_file(tmp_path / "full" / "encoder.safetensors"), load_file(part / "encoder.safetensors")
    for key in a:
        assert torch.equal(a[key], b[key]), key
