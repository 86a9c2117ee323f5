"""Peak memory of `mclx embed` on a 3-minute file versus a 3-hour file.

    python -m benchmarks.memory [--long-min 180] [--model mfcc] [--device cpu]

Streaming means the memory of a run does not grow with the length of a file (apart from
its rows in the store): the script writes one short and one long file (16 kHz mono FLAC,
music-like noise), embeds each in a fresh process at level `both`, and prints the peak
resident memory of the embed process and of its decoder processes, and the difference.
With --device cuda it also prints the peak GPU memory of each run.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np


def write_long(path: Path, minutes: float, rate: int = 16000) -> None:
    import soundfile as sf

    if path.exists():
        return
    rng = np.random.default_rng(0)
    total = int(minutes * 60 * rate)
    block = rate * 60
    with sf.SoundFile(path, "w", rate, 1, format="FLAC", subtype="PCM_16") as f:
        for start in range(0, total, block):
            n = min(block, total - start)
            t = (start + np.arange(n)) / rate
            x = 0.2 * np.sin(2 * np.pi * 220 * t) + 0.05 * rng.standard_normal(n)
            f.write(x.astype(np.float32))


def peak_rss_mib(pid: int) -> float:
    """VmHWM of a live process (its peak resident set), MiB; 0 if it is gone."""
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    return 0.0


def children(pid: int) -> list[int]:
    out = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                if int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1]) == pid:
                    out.append(int(entry.name))
            except OSError:
                continue
    return out


def measure(path: Path, out: Path, model: str, device: str) -> dict[str, float]:
    code = (
        "import sys, json, torch; from mclx.pipeline import EmbedSettings, embed\n"
        f"s = embed([{str(path)!r}], {str(out)!r}, EmbedSettings(model={model!r}, device={device!r}, "
        "level='both', quiet=True, overwrite=True))\n"
        "gpu = torch.cuda.max_memory_allocated() / 2**20 if torch.cuda.is_available() else 0.0\n"
        "print(json.dumps({'audio_s': s.audio_s, 'wall_s': s.wall_s, 'gpu_peak_mib': gpu}))\n"
    )
    proc = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True)
    main_peak = worker_peak = 0.0
    while proc.poll() is None:
        main_peak = max(main_peak, peak_rss_mib(proc.pid))
        for child in children(proc.pid):
            worker_peak = max(worker_peak, peak_rss_mib(child))
        time.sleep(0.05)
    stdout, _ = proc.communicate()
    result = json.loads(stdout.strip().splitlines()[-1])
    return {**result, "main_peak_mib": main_peak, "decoder_peak_mib": worker_peak}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--short-min", type=float, default=3.0)
    ap.add_argument("--long-min", type=float, default=180.0)
    ap.add_argument("--model", default="mfcc")
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--cache", default=os.path.join(tempfile.gettempdir(), "mclx-bench-memory"))
    args = ap.parse_args()
    cache = Path(args.cache)
    cache.mkdir(parents=True, exist_ok=True)
    rows = {}
    for label, minutes in (("short", args.short_min), ("long", args.long_min)):
        path = cache / f"{minutes:g}min.flac"
        print(f"writing {path} ...", file=sys.stderr)
        write_long(path, minutes)
        rows[label] = measure(path, cache / f"{label}.h5", args.model, args.device)
    print(f"{'file':<8}{'audio':>10}{'main peak':>12}{'decoder peak':>14}{'gpu peak':>10}")
    for label, r in rows.items():
        minutes, main_mib, dec_mib = r["audio_s"] / 60, r["main_peak_mib"], r["decoder_peak_mib"]
        gpu = r["gpu_peak_mib"]
        print(f"{label:<8}{minutes:>8.0f} m{main_mib:>9.0f} MiB{dec_mib:>10.0f} MiB{gpu:>6.0f} MiB")
    diff = rows["long"]["main_peak_mib"] - rows["short"]["main_peak_mib"]
    flat = {f"{k}_{m}": round(v, 1) for k, r in rows.items() for m, v in r.items()}
    summary = {"model": args.model, "device": args.device, **flat, "main_peak_diff_mib": round(diff, 1)}
    print(json.dumps(summary))


if __name__ == "__main__":
    main()
