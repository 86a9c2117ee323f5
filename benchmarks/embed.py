"""Embedding throughput, measured side by side in one run over the same files.

    python -m benchmarks.embed --files 200 --seconds 30 --format flac --model mfcc --device cpu
    python -m benchmarks.embed --inputs ~/mclx-data/music --model mfcc      # real files instead
    python -m benchmarks.embed --files 40 --model mclx-base --versus random-melcnn --stages model,mclx

1. decode only: the decoder pool `mclx embed` uses, same worker count, every file to the end,
   doing the decoders' whole job (decode, down-mix, and on the CPU resample to the model rate);
2. model only: the encoder on windows already in memory on the device (same batch, precision);
3. mclx: the library call and the CLI, end to end;
4. naive: per file load whole, resample, cut windows, one forward, write (the peers' loop);
5. ``--engine ray``: the library call on a local Ray runtime started here (``--ray-address``
   to use a running cluster instead), beside stage 3 on the same files: files/s, x realtime, the
   runtime's start-up, and the ratio to the native pipeline (needs mclx[ray]).
Prints a table, then one JSON line with the x-realtime figures (audio seconds per wall second).
``--engine ray --breakdown`` runs only stage 3 and the Ray engine, on the same files, and prints
where each one's time goes, stage by stage side by side (the runs' own clocks,
``EmbedSummary.stage_s``, and Ray Data's stats: decode tasks, encoder actors, a timeline), the
encoder passes each ran and whether their embeddings are identical, then one JSON line.
``--versus M`` also runs stages 2 and 3 with model M on the same files in the same run and
reports the ratios (the first model's speed over M's); with ``--rounds 2`` (the default) in the
order A B B A, each model's best run counting (a process's first run is the slow one).
"""

from __future__ import annotations

import argparse
import json
import math
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

from tests.audio_fixtures import write_encoded

FORMATS = {
    "flac": ("FLAC", "PCM_16"),
    "wav": ("WAV", "PCM_16"),
    "ogg": ("OGG", "VORBIS"),
    "mp3": ("MP3", None),
    "m4a": ("M4A", "AAC"),  # written with PyAV (tests.audio_fixtures)
}


def make_audio(directory: Path, files: int, seconds: float, fmt: str, rate: int = 44100) -> list[str]:
    """Stereo music-like noise (filtered noise plus tones), written once and reused."""
    import soundfile as sf

    directory.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(0)
    paths = []
    for i in range(files):
        path = directory / f"{i:05d}.{fmt}"
        paths.append(str(path))
        if path.exists():
            continue
        t = np.arange(int(seconds * rate)) / rate
        x = 0.2 * np.sin(2 * np.pi * (110 + 7 * i) * t) + 0.05 * rng.standard_normal(len(t))
        data = np.stack([x, 0.8 * x], axis=1).astype(np.float32)
        if fmt == "m4a":
            write_encoded(path, data, rate)
            continue
        fmt_name, subtype = FORMATS[fmt]
        with sf.SoundFile(path, "w", rate, 2, format=fmt_name, subtype=subtype) as f:
            for j in range(0, len(data), 1 << 20):
                f.write(data[j : j + (1 << 20)])
    return paths


def duration_s(path: str) -> float:
    """A file's duration from its header (libsndfile, else FFmpeg's stream metadata)."""
    import soundfile as sf

    try:
        return float(sf.info(path).duration)
    except sf.LibsndfileError:
        import av

        with av.open(path) as c:
            stream = c.streams.audio[0]
            if stream.duration is not None and stream.time_base is not None:
                return float(stream.duration * stream.time_base)
            return float(c.duration or 0) / 1e6


def load_whole(path: str) -> tuple[np.ndarray, int]:
    """The naive loop's read: the whole file at once, (frames, channels) float32."""
    import soundfile as sf

    try:
        data, rate = sf.read(path, dtype="float32", always_2d=True)
        return data, int(rate)
    except sf.LibsndfileError:  # what libsndfile does not read: every frame through FFmpeg at once
        import av

        to_float = av.AudioResampler(format="fltp")
        with av.open(path) as c:
            planes = [g.to_ndarray() for f in c.decode(audio=0) for g in to_float.resample(f)]
            rate = c.streams.audio[0].rate
        return np.ascontiguousarray(np.concatenate(planes, axis=1).T), int(rate)


def bench_decode(paths: list[str], workers: int, resample_to: int | None) -> tuple[float, float]:
    """(audio seconds, wall seconds) for decoding every file through the pool.

    The same work as `mclx embed`'s decoders: decode, down-mix and (``resample_to``, as the
    embed run on this device does) resample to the model's rate.
    """
    from mclx.decoders import DecoderPool

    t0 = time.perf_counter()
    pool = DecoderPool(paths, list(range(len(paths))), workers, resample_to=resample_to)
    rates: dict[int, int] = {}
    frames = 0.0
    try:
        while pool.busy:
            for ev in pool.poll(0.5):
                if ev.kind == "start":
                    rates[ev.index] = ev.rate
                elif ev.kind == "block" and ev.block is not None:
                    frames += len(ev.block) / rates[ev.index]
    finally:
        pool.close()
    return frames, time.perf_counter() - t0


def bench_model(
    model: str, device: str, precision: str, batch: int, audio_s: float, durations: list[float]
) -> float:
    """Wall seconds for the encoder alone on as many windows as the files produce."""
    import torch

    from mclx.devices import resolve_device, resolve_precision
    from mclx.embed.windows import window_starts
    from mclx.models.registry import load_model

    dev = resolve_device(device)
    prec = resolve_precision(precision, dev.type)
    enc = load_model(model).encoder.to(dev).eval()
    rate, win = enc.spec.sample_rate, enc.spec.window_samples
    n_windows = sum(len(window_starts(round(d * rate), win, win)) for d in durations)
    x = torch.randn(batch, win, device=dev) * 0.1
    dtype = {"bf16": torch.bfloat16, "fp16": torch.float16}.get(prec)
    with (
        torch.inference_mode(),
        torch.autocast(dev.type, dtype=dtype or torch.float32, enabled=dtype is not None),
    ):
        enc(x)  # warm-up
        if dev.type == "cuda":
            torch.cuda.synchronize()
        t0 = time.perf_counter()
        for _ in range(math.ceil(n_windows / batch)):
            enc(x).float().cpu()
        if dev.type == "cuda":
            torch.cuda.synchronize()
    return time.perf_counter() - t0


def bench_naive(paths: list[str], model: str, device: str, out: Path) -> float:
    """The per-file loop: load whole, resample, window, one batch, append to HDF5."""
    import h5py
    import torch
    import torchaudio

    from mclx.audio import mix_weights
    from mclx.devices import resolve_device
    from mclx.embed.windows import window_starts
    from mclx.models.registry import load_model

    dev = resolve_device(device)
    enc = load_model(model).encoder.to(dev).eval()
    rate, win = enc.spec.sample_rate, enc.spec.window_samples
    t0 = time.perf_counter()
    with h5py.File(out, "w") as h:
        for i, p in enumerate(paths):
            data, sr = load_whole(p)
            x = torch.from_numpy(data @ mix_weights(data.shape[1])).to(dev)  # the same fast mix as mclx
            x = torchaudio.functional.resample(x, sr, rate)
            wins = window_starts(len(x), win, win)
            batch = torch.stack(
                [torch.nn.functional.pad(x[w.start : w.end], (0, win - (w.end - w.start))) for w in wins]
            )
            with torch.inference_mode():
                emb = enc(batch).float().cpu().numpy()
            h.create_dataset(str(i), data=emb)
    return time.perf_counter() - t0


def bench_ray(paths: list[str], args: argparse.Namespace, batch: int, workers: int) -> dict[str, float]:
    """The library call on Ray: start-up (connecting, or starting a local runtime) timed apart
    from the run, which includes starting the actors and loading the model in each."""
    import ray

    from mclx.embed import EmbedSettings
    from mclx.ray import RaySettings, embed_on_ray

    t0 = time.perf_counter()
    if args.ray_address:
        ray.init(address=args.ray_address, logging_level="WARNING", log_to_driver=False)
    else:  # a local runtime on this machine's CPUs (and GPUs)
        ray.init(logging_level="WARNING", log_to_driver=False, include_dashboard=False)
    startup = time.perf_counter() - t0
    settings = EmbedSettings(
        model=args.model, device=args.device, precision=args.precision, batch_size=batch,
        workers=workers, quiet=True, overwrite=True,
    )  # fmt: skip
    ray_settings = RaySettings(actors=args.ray_actors)
    try:
        with tempfile.TemporaryDirectory() as tmp:
            summary = embed_on_ray(paths, str(Path(tmp) / "ray.h5"), settings, ray_settings)
    finally:
        ray.shutdown()
    return {
        "xrt": summary.audio_s / summary.wall_s,
        "files_per_s": len(paths) / summary.wall_s,
        "startup_s": startup,
    }


# The breakdown's rows: (label, the native run's stage, the Ray run's stage); "" where a stage has
# no counterpart. Stages are EmbedSummary.stage_s, plus "ray.init", "decode.cpu" (the decoders'
# CPU seconds: the decoder processes' rusage, the decode tasks' Ray stats), "decode.wall" (in
# the decode tasks), "encoder.op" (the encoder operator's remote wall time, Ray's stats) and "wall".
BREAKDOWN = (
    ("ray.init (runtime start-up)", "", "ray.init"),
    ("plan: model load on the driver", "plan", "plan"),
    ("resume: stat files, open journal", "resume", "resume"),
    ("engine start: decoder pool | dataset", "start", "start"),
    ("first embeddings back", "", "first_batch"),
    ("driver waiting (decoders | results)", "wait", "wait"),
    ("driver taking results in", "", "take"),
    ("encoder forward", "forward", "actor.forward"),
    ("encoder actors: construct + load", "", "actor.load"),
    ("encoder actors: in calls", "", "actor.call"),
    ("encoder actors: idle between calls", "", "actor.idle"),
    ("encoder operator (Ray stats)", "", "encoder.op"),
    ("decode: CPU s", "decode.cpu", "decode.cpu"),
    ("decode: task wall s (Ray stats)", "", "decode.wall"),
    ("timeline: first decode task starts at", "", "decode.first"),
    ("timeline: last decode task ends at", "", "decode.last"),
    ("timeline: first encoder call starts at", "", "encoder.first"),
    ("timeline: last encoder call ends at", "", "encoder.last"),
    ("journal writes", "journal", "journal"),
    ("store build", "store", "store"),
    ("engine (decode + encode + driver)", "engine", "engine"),
    ("wall (library call)", "wall", "wall"),
)


def bench_breakdown(paths: list[str], args: argparse.Namespace, batch: int, workers: int) -> dict[str, Any]:
    """Where the time goes: the native library call and the Ray engine on the same files, stage by
    stage (the runs' own clocks, EmbedSummary.stage_s, and Ray Data's stats), and whether the two
    stores hold the same embeddings bit for bit."""
    import resource

    import h5py
    import ray
    import ray.data  # imported before the run, as `mclx embed --engine ray` does (require_ray)

    from mclx.embed import EmbedSettings, embed
    from mclx.ray.engine import RayEngine, RaySettings

    settings = EmbedSettings(
        model=args.model, device=args.device, precision=args.precision, batch_size=batch,
        workers=workers, quiet=True, overwrite=True,
    )  # fmt: skip
    out: dict[str, Any] = {}
    with tempfile.TemporaryDirectory() as tmp:
        children = resource.getrusage(resource.RUSAGE_CHILDREN)
        native = embed(paths, f"{tmp}/native.h5", settings)
        after = resource.getrusage(resource.RUSAGE_CHILDREN)
        out["native"] = {**native.stage_s, "wall": native.wall_s}
        out["native"]["decode.cpu"] = after.ru_utime + after.ru_stime - children.ru_utime - children.ru_stime

        t0 = time.perf_counter()
        if args.ray_address:
            ray.init(address=args.ray_address, logging_level="WARNING", log_to_driver=False)
        else:
            ray.init(logging_level="WARNING", log_to_driver=False, include_dashboard=False)
        try:
            startup = time.perf_counter() - t0
            engine = RayEngine(RaySettings(actors=args.ray_actors))
            began = time.perf_counter()  # Ray Data's clocks are perf_counter's too (one node: comparable)
            on_ray = embed(paths, f"{tmp}/ray.h5", settings, engine=engine)
            stats = _ray_data_stats(engine.dataset, began)
            cluster = engine.cluster
        finally:
            ray.shutdown()
        out["ray"] = {**on_ray.stage_s, **stats, "ray.init": startup, "wall": on_ray.wall_s}
        with h5py.File(f"{tmp}/native.h5") as a, h5py.File(f"{tmp}/ray.h5") as b:
            same = a["global"][()].tobytes() == b["global"][()].tobytes()
            windows = int(a["files/segment_count"][()].sum())
    out.update(
        files=len(paths), windows=windows, batch=batch, identical=same, forwards=engine.forwards,
        native_forwards=-(-windows // batch), actors=cluster.actors if cluster else None,
        native_files_per_s=len(paths) / native.wall_s, ray_files_per_s=len(paths) / on_ray.wall_s,
    )  # fmt: skip
    return out


def _ray_data_stats(dataset: Any, began: float) -> dict[str, float]:
    """From Ray Data's own stats: the decode tasks' CPU and wall seconds, the encoder operator's
    wall seconds (summed over tasks), and when each operator first started and last ended
    (seconds after ``began``, the library call's start)."""
    found: dict[str, float] = {}
    summary = dataset.get_stats_summary()  # what Dataset.stats() prints, as numbers (a DeveloperAPI)
    while summary is not None:
        for op in summary.operators_stats:
            if "decode_task" in op.operator_name:
                key = "decode"
            elif "WindowEncoder" in op.operator_name:
                key = "encoder"
            else:
                continue
            if op.wall_time is not None:
                found[f"{key}.wall" if key == "decode" else "encoder.op"] = op.wall_time.sum
            if op.cpu_time is not None and key == "decode":
                found["decode.cpu"] = op.cpu_time.sum
            if op.earliest_start_time is not None and op.latest_end_time is not None:
                found[f"{key}.first"] = op.earliest_start_time - began
                found[f"{key}.last"] = op.latest_end_time - began
        summary = summary.parents[0] if summary.parents else None
    return found


def print_breakdown(b: dict[str, Any]) -> None:
    """The breakdown as a table, native beside Ray, then one JSON line."""
    print(f"{b['files']} files, {b['windows']} windows, batch {b['batch']}, Ray actors {b['actors']}; "
          f"encoder passes: native {b['native_forwards']}, Ray {b['forwards']} "
          f"({b['windows'] / max(1, b['forwards'] * b['batch']):.0%} of Ray's batch rows are windows); "
          f"embeddings identical: {b['identical']}")  # fmt: skip
    print(f"{'stage (seconds)':<40}{'native':>9}{'Ray':>9}")
    for label, nkey, rkey in BREAKDOWN:
        cells = [
            f"{b[side][key]:9.2f}" if key in b[side] else f"{'-':>9}"
            for side, key in (("native", nkey), ("ray", rkey))
        ]
        print(f"{label:<40}{''.join(cells)}")
    print(f"{'files/s':<40}{b['native_files_per_s']:9.2f}{b['ray_files_per_s']:9.2f}"
          f"   ratio Ray / native {b['ray_files_per_s'] / b['native_files_per_s']:.2f}")  # fmt: skip
    line = {**b, "native": {k: round(v, 3) for k, v in b["native"].items()},
            "ray": {k: round(v, 3) for k, v in b["ray"].items()},
            "native_files_per_s": round(b["native_files_per_s"], 2),
            "ray_files_per_s": round(b["ray_files_per_s"], 2),
            "ray_vs_native": round(b["ray_files_per_s"] / b["native_files_per_s"], 2)}  # fmt: skip
    print(json.dumps(line))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--files", type=int, default=200)
    ap.add_argument("--seconds", type=float, default=30.0)
    ap.add_argument("--format", default="flac", choices=sorted(FORMATS))
    ap.add_argument("--inputs", help="embed the audio files under this directory instead of generated ones")
    ap.add_argument("--model", default="mfcc")
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--precision", default="auto")
    ap.add_argument("--batch-size", type=int, default=None)
    ap.add_argument("--workers", type=int, default=None)
    ap.add_argument("--cache", default=os.path.join(tempfile.gettempdir(), "mclx-bench-audio"))
    ap.add_argument("--stages", default="decode,model,mclx,cli,naive", help="comma-separated subset")
    ap.add_argument("--versus", default="", help="a second model for stages model and mclx, side by side")
    ap.add_argument("--rounds", type=int, default=2, help="with --versus: A B, then B A per further round")
    ap.add_argument("--engine", default="local", choices=["local", "ray"], help="ray: also the Ray engine")
    ap.add_argument("--ray-address", default=None, help="a running Ray cluster (default: start one here)")
    ap.add_argument("--ray-actors", type=int, default=None)
    ap.add_argument(
        "--breakdown", action="store_true",
        help="with --engine ray: only the native and the Ray run, timed stage by stage, side by side",
    )  # fmt: skip
    args = ap.parse_args()
    if args.breakdown and args.engine != "ray":
        ap.error("--breakdown needs --engine ray")

    from mclx.decoders import default_workers
    from mclx.devices import resolve_device
    from mclx.embed import EmbedSettings, embed
    from mclx.inputs import walk_audio

    dev = resolve_device(args.device)
    workers = args.workers or default_workers()
    batch = args.batch_size or (256 if dev.type == "cuda" else 32)
    if args.inputs:
        paths = walk_audio(args.inputs)
    else:
        where = Path(args.cache) / f"{args.format}-{args.seconds:g}s"
        print(f"generating {args.files} x {args.seconds:g} s {args.format} in {where} ...", file=sys.stderr)
        paths = make_audio(where, args.files, args.seconds, args.format)[: args.files]
    durations = [duration_s(p) for p in paths]
    audio_s = float(sum(durations))
    if args.breakdown:
        print(f"model {args.model}, device {args.device}, workers {workers}, cores {os.cpu_count()}, "
              f"{audio_s / 3600:.2f} h audio")  # fmt: skip
        print_breakdown(bench_breakdown(paths, args, batch, workers))
        return

    walls: dict[str, float] = {}  # model -> wall seconds of its fastest library run

    def library(model: str, out: Path) -> float:
        """x realtime of the `mclx embed` library call with ``model``."""
        settings = EmbedSettings(
            model=model, device=args.device, precision=args.precision, batch_size=batch,
            workers=workers, quiet=True, overwrite=True,
        )  # fmt: skip
        summary = embed(paths, str(out), settings)
        walls[model] = min(walls.get(model, math.inf), summary.wall_s)  # the run --versus keeps
        return summary.audio_s / summary.wall_s

    stages = set(args.stages.split(","))
    rows: dict[str, float] = {}
    if "decode" in stages:
        from mclx.models.registry import load_model

        rate = load_model(args.model).encoder.spec.sample_rate
        # The decoders resample on the CPU (`--resample-in auto`), not when the encoder is on CUDA.
        rows["decode only"] = audio_s / bench_decode(paths, workers, rate if dev.type == "cpu" else None)[1]
    if "model" in stages:
        model_wall = bench_model(args.model, args.device, args.precision, batch, audio_s, durations)
        rows["model only"] = audio_s / model_wall
    with tempfile.TemporaryDirectory() as tmp:
        if "mclx" in stages:
            rows["mclx (library)"] = library(args.model, Path(tmp) / "lib.h5")
        if "cli" in stages:
            listing = "\n".join(paths)
            cmd = [sys.executable, "-m", "mclx", "embed", "-", str(Path(tmp) / "cli.h5"), "-q", "--json",
                   "--model", args.model, "--device", args.device, "--precision", args.precision,
                   "--batch-size", str(batch), "--workers", str(workers)]  # fmt: skip
            t0 = time.perf_counter()
            out = subprocess.run(cmd, input=listing, capture_output=True, text=True, check=True)
            rows["mclx (CLI)"] = json.loads(out.stdout)["audio_s"] / (time.perf_counter() - t0)
        if "naive" in stages:
            rows["naive loop"] = audio_s / bench_naive(paths, args.model, args.device, Path(tmp) / "naive.h5")

    ray_row: dict[str, float] = {}
    if args.engine == "ray":
        if "mclx" not in stages:  # the native pipeline it is compared with, on the same files
            with tempfile.TemporaryDirectory() as tmp:
                rows["mclx (library)"] = library(args.model, Path(tmp) / "lib.h5")
        ray_row = bench_ray(paths, args, batch, workers)
        rows["mclx on Ray"] = ray_row["xrt"]

    # --versus: the first model's stages ran above; then B, and per further round B again and A
    # again (A B B A for two rounds), each model keeping its best: in one process the first
    # measurement runs slower, so a single A-then-B pass made even identical networks differ.
    versus: dict[str, float] = {}
    order = [args.versus] + [args.versus, args.model] * (args.rounds - 1) if args.versus else []
    for model in order:
        table = versus if model == args.versus else rows
        if "model" in stages:
            wall = bench_model(model, args.device, args.precision, batch, audio_s, durations)
            table["model only"] = max(table.get("model only", 0.0), audio_s / wall)
        if "mclx" in stages:
            with tempfile.TemporaryDirectory() as tmp:
                xrt = library(model, Path(tmp) / "versus.h5")
                table["mclx (library)"] = max(table.get("mclx (library)", 0.0), xrt)

    nan = float("nan")
    decode, model = rows.get("decode only", nan), rows.get("model only", nan)
    bound = min(decode, model) if dev.type == "cuda" else 1 / (1 / decode + 1 / model)
    print(f"{len(paths)} files, {audio_s / 3600:.2f} h audio, model {args.model}, device {dev}, "
          f"workers {workers}, batch {batch}, cores {os.cpu_count()}")  # fmt: skip
    print(f"{'stage':<16}{'x realtime':>12}")
    for name, xrt in rows.items():
        print(f"{name:<16}{xrt:>12.1f}")
    print(f"{'bound':<16}{bound:>12.1f}")
    if ray_row:
        native = rows.get("mclx (library)", nan)
        print(f"Ray: start-up {ray_row['startup_s']:.1f} s, {ray_row['files_per_s']:.2f} files/s "
              f"({len(paths) / walls[args.model]:.2f} native); "
              f"ratio Ray / native {ray_row['xrt'] / native:.2f}")  # fmt: skip
    for name, xrt in versus.items():
        print(f"{name:<16}{xrt:>12.1f}  ({args.versus}); ratio {rows.get(name, nan) / xrt:.2f}")
    result = {
        "files": len(paths),
        "audio_s": round(audio_s, 1),
        "model": args.model,
        "device": str(dev),
        "workers": workers,
        "decode_xrt": round(decode, 1),
        "model_xrt": round(model, 1),
        "mclx_xrt": round(rows.get("mclx (library)", nan), 1),
        "mclx_cli_xrt": round(rows.get("mclx (CLI)", nan), 1),
        "naive_xrt": round(rows.get("naive loop", nan), 1),
        "bound_xrt": round(bound, 1),
        "efficiency": round(rows.get("mclx (library)", nan) / bound, 3),
        "vs_naive": round(rows.get("mclx (library)", nan) / rows.get("naive loop", nan), 2),
    }
    if ray_row:
        result["ray_xrt"] = round(ray_row["xrt"], 1)
        result["ray_files_per_s"] = round(ray_row["files_per_s"], 2)
        result["ray_startup_s"] = round(ray_row["startup_s"], 2)
        result["ray_vs_native"] = round(ray_row["xrt"] / rows.get("mclx (library)", nan), 2)
    if args.versus:
        result["versus"] = args.versus
        result["versus_model_xrt"] = round(versus.get("model only", nan), 1)
        result["versus_mclx_xrt"] = round(versus.get("mclx (library)", nan), 1)
        result["model_ratio"] = round(model / versus.get("model only", nan), 2)
        result["mclx_ratio"] = round(rows.get("mclx (library)", nan) / versus.get("mclx (library)", nan), 2)
    print(json.dumps({k: (None if isinstance(v, float) and math.isnan(v) else v) for k, v in result.items()}))


if __name__ == "__main__":
    main()
