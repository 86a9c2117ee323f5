"""The README's development-corpus row, from one command: `mclx embed` on `music/` against decoding alone.

    python -m benchmarks.corpus --out docs/benchmarks/corpus.json      # needs MCLX_DATA

Over the same files, side by side in one run: (1) the decoder pool alone, doing the decoders'
whole job of an embed run on this device (decode, down-mix, resample to the model's rate);
(2) the encoder alone on as many windows; (3) `mclx embed` through the CLI, timed from outside.
Writes the figures as JSON and prints the README's table.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

from benchmarks.embed import bench_decode, bench_model, duration_s


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--inputs", default=None, help="default: $MCLX_DATA/music")
    ap.add_argument("--model", default="mfcc")
    ap.add_argument("--out", default=None, help="write the figures here as JSON")
    args = ap.parse_args()

    from mclx.decoders import default_workers
    from mclx.inputs import walk_audio
    from mclx.models.registry import load_model

    data = os.environ.get("MCLX_DATA")
    inputs = args.inputs or (str(Path(data) / "music") if data else None)
    if inputs is None:
        sys.exit("benchmarks.corpus: give --inputs or set MCLX_DATA")
    paths = walk_audio(inputs)
    durations = [duration_s(p) for p in paths]
    audio_s = float(sum(durations))
    kinds = Counter(Path(p).suffix.lower().lstrip(".") for p in paths)
    workers = default_workers()
    rate = load_model(args.model).encoder.spec.sample_rate
    decode_wall = bench_decode(paths, workers, rate)[1]
    model_wall = bench_model(args.model, "cpu", "auto", 32, audio_s, durations)
    with tempfile.TemporaryDirectory() as tmp:
        cmd = [sys.executable, "-m", "mclx", "embed", inputs, str(Path(tmp) / "music.h5"),
               "--model", args.model, "--device", "cpu", "--json", "-q"]  # fmt: skip
        t0 = time.perf_counter()
        done = subprocess.run(cmd, capture_output=True, text=True, check=True)
        embed_wall = time.perf_counter() - t0
        summary = json.loads(done.stdout)
    result = {
        "inputs": "music/" if args.inputs is None else inputs,
        "files": len(paths),
        "kinds": dict(kinds.most_common()),
        "audio_h": round(audio_s / 3600, 2),
        "model": args.model,
        "workers": workers,
        "cores": os.cpu_count(),
        "embed_wall_s": round(embed_wall, 1),
        "embed_xrt": round(audio_s / embed_wall, 1),
        "embed_failed": summary["failed"],
        "decode_xrt": round(audio_s / decode_wall, 1),
        "model_xrt": round(audio_s / model_wall, 1),
        "embed_over_decode": round(decode_wall / embed_wall, 3),
    }
    # Decoders and encoder share the CPU: the best an overlapped run can do is 1 / (1/decode + 1/model).
    bound = audio_s / (decode_wall + model_wall)
    result |= {"bound_xrt": round(bound, 1), "efficiency": round(audio_s / embed_wall / bound, 3)}
    if args.out:
        Path(args.out).parent.mkdir(parents=True, exist_ok=True)
        Path(args.out).write_text(json.dumps(result, indent=1) + "\n")
    kinds_text = ", ".join(f"{k} {n}" for k, n in kinds.most_common())
    print("| files | audio | `mclx embed` (CLI, end to end) | decoding alone (same decoders, same work) "
          "| encoder alone |")  # fmt: skip
    print("|---|---|---|---|---|")
    print(f"| {len(paths)} tracks of `{result['inputs']}` ({kinds_text}) | {result['audio_h']} h | "
          f"{embed_wall:.1f} s, **{result['embed_xrt']:,.0f}x** realtime | "
          f"**{result['decode_xrt']:,.0f}x** | {result['model_xrt']:,.0f}x |")  # fmt: skip
    print(f"bound 1 / (1/decode + 1/encoder): {bound:,.0f}x; the run is at {result['efficiency']:.2f} of it")
    print(json.dumps(result))


if __name__ == "__main__":
    main()
