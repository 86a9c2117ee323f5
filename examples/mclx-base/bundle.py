"""Bundle a trained encoder as a named model: copy it into mclx/weights/ and list it in both
copies of weights_manifest.json (the repository's and the package's, which must stay equal).

    MCLX_DATA=~/mclx-data python examples/mclx-base/bundle.py RUN/snapshots/step-NNNNNN.safetensors \
        --name mclx-base --file mclx-base-2 --run RUN --config examples/mclx-base/v2-games.toml \
        --data "..." --default
    python examples/mclx-base/bundle.py --name mclx-base --probe docs/mclx-base-2/probe   # fill `probe`

The licence text lists the licences of the pool's tracks (``$MCLX_DATA/music/manifest.csv``). A
new checkpoint under a name starts with an empty ``probe`` (the old one described other weights).
Version 1 was bundled as ``mclx-base`` from ``runs/base-semi/snapshots/step-001800.safetensors``;
its file is now ``mclx-base-1.safetensors``, listed under both names.

The `probe` field lists the linear-head test accuracy (mean and 95% interval) of the model and
the paired differences against the other feature sets, from the probe_table JSON files.
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import shutil
from pathlib import Path
from typing import Any

from mclx.fileio import sha256_file
from mclx.models.checkpoint import read_metadata

ROOT = Path(__file__).resolve().parents[2]
MANIFESTS = (ROOT / "weights_manifest.json", ROOT / "mclx" / "weights" / "weights_manifest.json")


def licence_text(data: Path) -> str:
    """The manifest's licence line: the licences of the pool's tracks and of the rendered clips."""
    with open(data / "music" / "manifest.csv", newline="") as f:
        licences = sorted({row["licence"] for row in csv.DictReader(f)})
    return (
        f"weights trained on game soundtracks under {', '.join(licences)} and on renderings of "
        "public-domain scores (FluidR3 GM, MIT); attribution in the corpus's music/LICENCES and MODEL_CARD.md"
    )


def probe_summary(probe_dir: Path, name: str) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for path in sorted(probe_dir.glob("*.json")):
        report = json.loads(path.read_text())
        row = next(
            r
            for r in report["results"]
            if r["features"] == name and r["head"] == "linear" and r["metric"] == "accuracy"
        )
        diffs = {
            c["b"]: {"diff": c["diff"], "ci95": c["ci95"], "p": c["p"]}
            for c in report["comparisons"]
            if c["a"] == name and c["head"] == "linear" and c["metric"] == "accuracy"
        }
        out[report["task"]] = {
            "linear_accuracy": row["mean"],
            "ci95": row["ci95"],
            "versus": diffs,
            "results": os.path.relpath(path.resolve(), ROOT),
        }
    return out


def _portable(path: str) -> str:
    """``path`` with this machine's home folded to ``~``: the manifest ships with the package."""
    home = str(Path.home())
    return "~" + path[len(home) :] if path == home or path.startswith(home + os.sep) else path


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("checkpoint", nargs="?", help="the encoder to bundle (omit to update `probe` only)")
    ap.add_argument("--name", default="mclx-base")
    ap.add_argument("--file", default="", help="weight file stem under mclx/weights/ (default: --name)")
    ap.add_argument("--run", default="", help="the training run it came from (recorded in trained_on)")
    ap.add_argument("--config", default="examples/mclx-base/semi.toml", help="recorded in trained_on")
    ap.add_argument("--data", default="music/ pool (unlabelled) + train splits of notes, genre, gamesrc")
    ap.add_argument("--default", action="store_true", help="make it the default model")
    ap.add_argument("--probe", default="", help="probe_table output folder to summarise in `probe`")
    args = ap.parse_args()
    manifest = json.loads(MANIFESTS[0].read_text())
    models = {m["name"]: m for m in manifest["models"]}
    if args.checkpoint:
        data = os.environ.get("MCLX_DATA", "")
        if not data:
            raise SystemExit(
                "set MCLX_DATA (the corpus the model was trained on: its licences go into the manifest)"
            )
        target = ROOT / "mclx" / "weights" / f"{args.file or args.name}.safetensors"
        shutil.copyfile(args.checkpoint, target)
        meta = read_metadata(target)
        stem = Path(args.checkpoint).stem
        step = int(stem.split("-")[-1]) if stem.startswith("step-") else None
        models[args.name] = {
            "name": args.name,
            "file": f"weights/{target.name}",
            "sha256": sha256_file(target),
            "bytes": target.stat().st_size,
            "architecture": meta["architecture"],
            "sample_rate": int(meta["sample_rate"]),
            "window_s": float(meta["window_s"]),
            "embedding_dim": int(meta["embedding_dim"]),
            "licence": licence_text(Path(data)),
            "trained_on": {
                "run": _portable(args.run),
                "step": step,
                "config": args.config,
                "data": args.data,
            },
            "probe": {},  # filled by --probe from this checkpoint's own results
        }
    if args.probe:
        models[args.name]["probe"] = probe_summary(Path(args.probe), args.name)
    manifest["models"] = list(models.values())
    if args.default:
        manifest["default"] = args.name
    text = json.dumps(manifest, indent=1) + "\n"
    for path in MANIFESTS:
        path.write_text(text)
    print(
        f"{args.name}: {models[args.name]['sha256']} ({models[args.name]['bytes']:,} bytes); default "
        f"{manifest['default']}"
    )


if __name__ == "__main__":
    main()
