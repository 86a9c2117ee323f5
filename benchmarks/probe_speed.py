"""How long `mclx probe` takes once the embeddings exist: heads, seeds, bootstrap and comparisons.

    MCLX_DATA=~/mclx-data python -m benchmarks.probe_speed --task notes --model mfcc --seeds 5

Embeds the task once with ``--model`` (cached in ``--out``), then times run_probe on that store
with both heads, ``--seeds`` seeds and a paired comparison (the store against itself under
another name, so the comparison's work is done too), and prints the seconds of each stage.
"""

from __future__ import annotations

import argparse
import json
import shutil
import tempfile
import time
from pathlib import Path

from mclx.probe import ProbeSettings, run_probe
from mclx.probe.features import cache_path
from mclx.probe.tasks import load_task


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--task", default="notes")
    ap.add_argument("--model", default="mfcc")
    ap.add_argument("--seeds", type=int, default=5)
    ap.add_argument("--out", default=str(Path(tempfile.gettempdir()) / "mclx-probe-speed"))
    args = ap.parse_args()
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    results = str(out / f"{args.task}.json")
    t0 = time.perf_counter()
    run_probe(ProbeSettings(args.task, models=(args.model,), head="linear", seeds=1, out=results, quiet=True))
    embed_s = time.perf_counter() - t0  # embedding (or reading the cache) plus one linear probe
    store = cache_path(args.model, load_task(args.task, None, None), results)
    twin = out / "twin.h5"
    shutil.copyfile(store, twin)
    t0 = time.perf_counter()
    report = run_probe(
        ProbeSettings(args.task, embeddings=(str(store), str(twin)), seeds=args.seeds, quiet=True)
    )
    probe_s = time.perf_counter() - t0
    print(json.dumps({"task": args.task, "features": args.model, "clips": sum(report["splits"].values()),
                      "dim": report["features"][0]["dim"], "seeds": args.seeds, "feature_sets": 2,
                      "first_call_s": round(embed_s, 1), "probe_s": round(probe_s, 1),
                      "probe_s_per_feature_set": round(probe_s / 2, 1)}))  # fmt: skip


if __name__ == "__main__":
    main()
