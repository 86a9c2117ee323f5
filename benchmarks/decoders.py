"""The decoder processes, measured: resampler speed, start time and memory, side by side in one run.

    python -m benchmarks.decoders --files 40 --seconds 30

1. resampling, one core: x realtime of the libsoxr stream the decoders use against the torch
   sinc resampler they used before (the GPU path's), same 44.1 kHz signal to the model rate,
   fed in the decoders' 65,536-frame blocks;
2. decoder start: seconds from starting a pool of one decoder to its first block, against a
   process that imports torch and torchaudio (what every decoder paid before);
3. peak RSS (VmHWM) of each decoder process after decoding FILES x SECONDS of 44.1 kHz stereo
   FLAC (or M4A/AAC with --format m4a) and resampling it to 16 kHz, against the torch-importing
   process.
Prints a table, then one JSON line.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from benchmarks.embed import make_audio

MIB = 1 << 20


def vm_hwm(pid: int) -> int:
    """Peak resident set size of a live process, in bytes (Linux)."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) * 1024
    raise RuntimeError(f"no VmHWM for pid {pid}")


def bench_resamplers(seconds: float, orig: int = 44100, new: int = 16000) -> dict[str, float]:
    """x realtime on one core of each resampler, streamed in the decoders' block size."""
    import torch

    from mclx.audio import BLOCK_FRAMES
    from mclx.resample import SoxrStream, TorchStreamResampler

    torch.set_num_threads(1)
    x = (0.1 * np.random.default_rng(0).standard_normal(int(seconds * orig))).astype(np.float32)
    out: dict[str, float] = {}
    for name in ("soxr", "torch"):
        best = float("inf")
        for _ in range(3):
            t0 = time.perf_counter()
            if name == "soxr":
                s = SoxrStream(orig, new)
                for i in range(0, len(x), BLOCK_FRAMES):
                    s.push(x[i : i + BLOCK_FRAMES])
                s.flush()
            else:
                r = TorchStreamResampler(orig, new)
                xt = torch.from_numpy(x)
                for i in range(0, len(x), BLOCK_FRAMES):
                    r.push(xt[i : i + BLOCK_FRAMES]).numpy()
                r.flush()
            best = min(best, time.perf_counter() - t0)
        out[name] = seconds / best
    return out


def bench_decoders(paths: list[str], workers: int, rate: int) -> dict[str, float]:
    """Start time of a one-decoder pool, and peak RSS of each decoder after the whole run."""
    from mclx.decoders import DecoderPool

    t0 = time.perf_counter()
    pool = DecoderPool(paths[:1], [0], 1, resample_to=rate)
    try:
        while not any(ev.kind == "block" for ev in pool.poll(5.0)):
            pass
        start_s = time.perf_counter() - t0
    finally:
        pool.close()
    pool = DecoderPool(paths, list(range(len(paths))), workers, resample_to=rate)
    peaks: list[int] = []
    try:
        while pool.busy:
            pool.poll(0.5, limit=64)
            if pool.remaining <= workers:  # the last files: every decoder has seen most of the run
                peaks = [vm_hwm(w.process.pid) for w in pool.workers if w.process.is_alive()] or peaks
    finally:
        pool.close()
    return {"start_s": start_s, "peak_rss_mib": max(peaks) / MIB if peaks else float("nan")}


def bench_torch_process() -> dict[str, float]:
    """Start time and peak RSS of a process that imports torch and torchaudio and resamples once."""
    code = (
        "import sys, torch, torchaudio\n"
        "torch.set_num_threads(1)\n"
        "torchaudio.transforms.Resample(44100, 16000)(torch.zeros(1, 65536))\n"
        "print(open('/proc/self/status').read())\n"
    )
    t0 = time.perf_counter()
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    start_s = time.perf_counter() - t0
    hwm = next(line for line in proc.stdout.splitlines() if line.startswith("VmHWM:"))
    return {"start_s": start_s, "peak_rss_mib": int(hwm.split()[1]) * 1024 / MIB}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--files", type=int, default=40)
    ap.add_argument("--seconds", type=float, default=30.0)
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--rate", type=int, default=16000, help="the model rate decoders resample to")
    ap.add_argument("--format", default="flac", choices=["flac", "m4a"])
    ap.add_argument("--cache", default=str(Path(tempfile.gettempdir()) / "mclx-bench-audio"))
    args = ap.parse_args()

    where = Path(args.cache) / f"{args.format}-{args.seconds:g}s"
    print(f"generating {args.files} x {args.seconds:g} s {args.format} in {where} ...", file=sys.stderr)
    paths = make_audio(where, args.files, args.seconds, args.format)[: args.files]
    resample = bench_resamplers(args.seconds, new=args.rate)
    ours = bench_decoders(paths, args.workers, args.rate)
    before = bench_torch_process()
    print(f"{'':<32}{'soxr decoder':>14}{'torch':>10}{'ratio':>8}")
    print(f"{'resample x realtime, 1 core':<32}{resample['soxr']:>14.0f}{resample['torch']:>10.0f}"
          f"{resample['soxr'] / resample['torch']:>8.2f}")  # fmt: skip
    print(f"{'start to first block (s)':<32}{ours['start_s']:>14.2f}{before['start_s']:>10.2f}"
          f"{before['start_s'] / ours['start_s']:>8.2f}")  # fmt: skip
    print(f"{'peak RSS per process (MiB)':<32}{ours['peak_rss_mib']:>14.0f}{before['peak_rss_mib']:>10.0f}"
          f"{before['peak_rss_mib'] / ours['peak_rss_mib']:>8.2f}")  # fmt: skip
    print(json.dumps({
        "files": len(paths), "seconds": args.seconds, "format": args.format, "workers": args.workers,
        "rate": args.rate,
        "soxr_xrt_1core": round(resample["soxr"], 1), "torch_xrt_1core": round(resample["torch"], 1),
        "decoder_start_s": round(ours["start_s"], 3), "torch_process_start_s": round(before["start_s"], 3),
        "decoder_peak_rss_mib": round(ours["peak_rss_mib"], 1),
        "torch_process_peak_rss_mib": round(before["peak_rss_mib"], 1),
    }))  # fmt: skip


if __name__ == "__main__":
    main()
