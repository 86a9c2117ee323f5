"""Peak memory of `mclx embed`: a 3-minute file versus a 3-hour file, and few files versus many.

    python -m benchmarks.memory [--long-min 180] [--model mfcc] [--device cpu]
    python -m benchmarks.memory --axis files [--few 1000] [--many 20000] [--file-s 1.0]

Streaming means the memory of a run grows neither with the length of a file nor with the
number of files (apart from a few hundred bytes of keys per file). Axis `length` writes one
short and one long file (16 kHz mono FLAC, music-like noise), embeds each in a fresh process at
level `both`, and prints the peak resident memory of the embed process and of its decoder
processes, and the difference. With --device cuda it also prints the peak GPU memory of each
run. Axis `files` writes `--few` and `--many` short WAV files (cached), runs the `mclx embed`
command line on each folder at level `both`, and prints both peaks, the stores' sizes and the
growth of the peak beyond the growth of the store on disk (the target is at most 50 MB), both for
the CLI process (until it has exited) and for the work alone (a fresh process's peak when the
library call returns).
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
        "import sys, json, torch; from mclx.embed import EmbedSettings, embed\n"
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


def write_many(folder: Path, count: int, seconds: float, rate: int = 16000) -> None:
    """``count`` short WAV files (a tone per file) in subfolders of 1,000; kept between runs."""
    import soundfile as sf

    done = folder / f".complete-{count}-{seconds:g}"
    if done.exists():
        return
    t = np.arange(round(seconds * rate)) / rate
    for i in range(count):
        path = folder / f"{i // 1000:03d}" / f"{i:06d}.wav"
        path.parent.mkdir(parents=True, exist_ok=True)
        x = 0.3 * np.sin(2 * np.pi * (110 + i % 800) * t)
        sf.write(path, x.astype(np.float32), rate, subtype="PCM_16")
    done.touch()


def measure_cli(folder: Path, out: Path, model: str, device: str) -> dict[str, float]:
    """Peak RSS of `mclx embed FOLDER OUT --level both` (the main process), and the store's size."""
    cmd = [sys.executable, "-m", "mclx", "embed", str(folder), str(out), "--model", model]
    cmd += ["--device", device, "--level", "both", "--overwrite", "--quiet", "--json"]
    t0 = time.monotonic()
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, text=True)
    peak = 0.0
    while proc.poll() is None:
        peak = max(peak, peak_rss_mib(proc.pid))
        time.sleep(0.05)
    stdout, _ = proc.communicate()
    if proc.returncode != 0:
        raise SystemExit(f"mclx embed {folder} failed (exit {proc.returncode})")
    result = json.loads(stdout)
    return {
        "files": result["files"],
        "wall_s": time.monotonic() - t0,
        "main_peak_mib": peak,
        "store_mib": out.stat().st_size / 2**20,
    }


def measure_library(folder: Path, out: Path, model: str, device: str) -> float:
    """Peak RSS (MiB) of a fresh process when `mclx.embed` over FOLDER returns: the work's peak,
    without what the interpreter's own teardown adds at exit (which the CLI's peak includes)."""
    code = (
        "import json, resource, sys\n"
        "from mclx.inputs import walk_audio\n"
        "from mclx.embed import EmbedSettings, embed\n"
        "if __name__ == '__main__':\n"
        f"    files = walk_audio({str(folder)!r})\n"
        f"    embed(files, {str(out)!r}, EmbedSettings(model={model!r}, device={device!r}, level='both',"
        " overwrite=True, quiet=True))\n"
        "    print(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024)\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    return float(done.stdout.strip().splitlines()[-1])


def files_axis(args: argparse.Namespace, cache: Path) -> None:
    rows = {}
    for label, count in (("few", args.few), ("many", args.many)):
        folder = cache / f"files-{count}-{args.file_s:g}s"
        print(f"writing {count} files under {folder} ...", file=sys.stderr)
        write_many(folder, count, args.file_s)
        rows[label] = measure_cli(folder, cache / f"{label}.h5", args.model, args.device)
        rows[label]["work_peak_mib"] = measure_library(
            folder, cache / f"{label}-lib.h5", args.model, args.device
        )
    print(f"{'run':<6}{'files':>8}{'wall':>9}{'CLI peak':>13}{'work peak':>13}{'store':>11}")
    for label, r in rows.items():
        print(
            f"{label:<6}{r['files']:>8.0f}{r['wall_s']:>8.0f}s{r['main_peak_mib']:>9.0f} MiB"
            f"{r['work_peak_mib']:>9.0f} MiB{r['store_mib']:>7.1f} MiB"
        )
    store_growth = rows["many"]["store_mib"] - rows["few"]["store_mib"]
    summary = {"axis": "files", "model": args.model, "device": args.device, "file_s": args.file_s}
    summary |= {f"{k}_{m}": round(v, 1) for k, r in rows.items() for m, v in r.items()}
    for name, key in (("CLI process", "main_peak_mib"), ("work (library call)", "work_peak_mib")):
        growth = rows["many"][key] - rows["few"][key]
        beyond = growth - store_growth
        print(
            f"{name}: peak grew {growth:.1f} MiB for {store_growth:.1f} MiB more rows on disk: "
            f"{beyond:.1f} MiB beyond the rows' own size (target: at most 50 MB = 47.7 MiB)"
        )
        summary[f"{key.removesuffix('_mib')}_beyond_rows_mib"] = round(beyond, 1)
    print(json.dumps(summary))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--axis", choices=("length", "files"), default="length")
    ap.add_argument("--short-min", type=float, default=3.0)
    ap.add_argument("--long-min", type=float, default=180.0)
    ap.add_argument("--few", type=int, default=1000, help="files in the small run (axis files)")
    ap.add_argument("--many", type=int, default=20000, help="files in the large run (axis files)")
    ap.add_argument("--file-s", type=float, default=1.0, help="seconds per file (axis files)")
    ap.add_argument("--model", default="mfcc")
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--cache", default=os.path.join(tempfile.gettempdir(), "mclx-bench-memory"))
    args = ap.parse_args()
    cache = Path(args.cache)
    cache.mkdir(parents=True, exist_ok=True)
    if args.axis == "files":
        files_axis(args, cache)
        return
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
