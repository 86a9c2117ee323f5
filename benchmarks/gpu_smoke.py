"""One command that checks the GPU path end to end (runs on the CPU too, which is how CI runs it).

    python -m benchmarks.gpu_smoke                 # on a machine with CUDA
    python -m benchmarks.gpu_smoke --device cpu    # the same checks, CPU only

1. `mclx embed` on DEVICE (resampling on the encoder's device, as on CUDA by default) over files
   at the model's rate and at others, in WAV, FLAC and M4A, for every bundled encoder kind;
   compared with the CPU run of the decoder-side path in fp32: same rows, segment counts and
   timestamps; cosine of every segment row at least 0.99 (0.999 with --precision fp32).
2. A few training steps on DEVICE with the default precision, finite loss, an encoder written.
Prints one JSON line; exits 1 on any failed check.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

MODELS = ("mfcc", "mclx-base", "random-samplecnn")

TRAIN_CONFIG = """
[data]
audio = ["{audio}"]
[model]
architecture = "melcnn"
embedding_dim = 32
projection_dim = 16
channels = [8, 16]
[views]
segment_s = 1.0
[loss]
kind = "ntxent"
[train]
steps = {steps}
batch_size = 8
lr = 1e-3
warmup_steps = 1
checkpoint_every = {steps}
log_every = 1
device = "{device}"
"""


def make_files(root: Path) -> list[str]:
    import soundfile as sf

    from tests.audio_fixtures import write_encoded

    rng = np.random.default_rng(0)
    specs = [("at16k.wav", 16000, 1, 7.0), ("cd.flac", 44100, 2, 5.5), ("sr22k.wav", 22050, 1, 4.0),
             ("short.wav", 16000, 1, 0.5), ("aac.m4a", 44100, 2, 4.0)]  # fmt: skip
    paths = []
    for i, (name, rate, channels, seconds) in enumerate(specs):
        t = np.arange(int(seconds * rate)) / rate
        x = 0.2 * np.sin(2 * np.pi * (150 + 90 * i) * t) + 0.03 * rng.standard_normal(len(t))
        data = np.stack([x, 0.7 * x], axis=1)[:, :channels].astype(np.float32)
        path = root / name
        if path.suffix == ".m4a":
            write_encoded(path, data, rate)
        else:
            sf.write(path, data, rate)
        paths.append(str(path))
    return paths


def check_embed(paths: list[str], model: str, device: str, precision: str, tmp: Path) -> dict[str, object]:
    from mclx.embed import EmbedSettings, embed
    from mclx.store import read_store

    runs = {}
    for name, settings in {
        "device": EmbedSettings(model=model, level="both", device=device, precision=precision, quiet=True,
                                resample_in="encoder"),
        "cpu": EmbedSettings(model=model, level="both", device="cpu", precision="fp32", quiet=True,
                             resample_in="decoders"),
    }.items():  # fmt: skip
        t0 = time.perf_counter()
        summary = embed(paths, str(tmp / f"{model}-{name}.h5"), settings)
        runs[name] = (read_store(tmp / f"{model}-{name}.h5"), summary, time.perf_counter() - t0)
    dev, cpu = runs["device"][0], runs["cpu"][0]
    worst = 1.0
    same_layout = dev.paths == cpu.paths
    for a, b in zip(dev.records, cpu.records, strict=True):
        same_layout &= a.status == b.status == "ok" and a.segment_count == b.segment_count
        same_layout &= bool(np.array_equal(a.starts, b.starts) and np.array_equal(a.ends, b.ends))
        if a.segments is not None and b.segments is not None:
            cos = (a.segments * b.segments).sum(1) / (
                np.linalg.norm(a.segments, axis=1) * np.linalg.norm(b.segments, axis=1) + 1e-12
            )
            worst = min(worst, float(cos.min()))
    need = 0.999 if precision == "fp32" else 0.99
    return {
        "model": model,
        "failed": runs["device"][1].failed,
        "same_layout": bool(same_layout),
        "min_cosine": round(worst, 5),
        "ok": bool(same_layout and runs["device"][1].failed == 0 and worst >= need),
        "device_s": round(runs["device"][2], 2),
        "cpu_s": round(runs["cpu"][2], 2),
    }


def check_train(audio_dir: Path, device: str, tmp: Path, steps: int = 6) -> dict[str, object]:
    from mclx.train import run_training

    config_path = tmp / "smoke.toml"
    config_path.write_text(TRAIN_CONFIG.format(audio=audio_dir, steps=steps, device=device))
    out = tmp / "run"
    t0 = time.perf_counter()
    run_training(str(config_path), str(out), resume=False, overrides=[], quiet=True)
    losses = [json.loads(line)["loss"] for line in (out / "metrics.jsonl").read_text().splitlines()]
    finite = bool(losses) and all(np.isfinite(losses))
    written = (out / "encoder.safetensors").exists()
    seconds = round(time.perf_counter() - t0, 2)
    ok = finite and written
    return {"steps": len(losses), "finite": finite, "encoder": written, "ok": ok, "s": seconds}


def main(argv: list[str] | None = None) -> int:
    import torch

    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    ap.add_argument("--precision", default="auto")
    ap.add_argument("--models", default=",".join(MODELS))
    args = ap.parse_args(argv)
    with tempfile.TemporaryDirectory() as tmp_s:
        tmp = Path(tmp_s)
        (tmp / "audio").mkdir()
        paths = make_files(tmp / "audio")
        embeds = [check_embed(paths, m, args.device, args.precision, tmp) for m in args.models.split(",")]
        train = check_train(tmp / "audio", args.device, tmp)
    ok = all(e["ok"] for e in embeds) and bool(train["ok"])
    result = {"device": args.device, "torch": torch.__version__, "ok": ok, "embed": embeds, "train": train}
    print(json.dumps(result))
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
