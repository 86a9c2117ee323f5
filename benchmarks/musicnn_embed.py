"""The musicnn side of `benchmarks.musicnn`: runs inside musicnn's own virtual environment
(TensorFlow, numpy<2), never in mclx's, so it imports nothing but numpy and, when it embeds,
musicnn and TensorFlow.

    VENV/bin/python benchmarks/musicnn_embed.py --cache DIR --models MSD_musicnn,MTT_musicnn < clips.txt

For each model and each clip (one path per line on stdin): musicnn's 3-s patches (its own
`batch_data`: 16 kHz log-mel, 96 bands, no overlap), every layer its extractor returns, pooled
over the whole clip by mean and by max, saved as ``DIR/<model>/<key>.npz``. A clip already
there with the same size and mtime is skipped (the run is resumable); a clip that fails is
saved with its error and tried again on the next run. One JSON summary goes to stdout.

Why not `musicnn.extractor.extractor` itself: in 0.1.0 it feeds one patch per `sess.run` and,
for every patch after the first, concatenates the *first* patch's `cnn1`, `cnn2`, `cnn3` and
`penultimate` (its loop unpacks them under other names), so those layers describe the first 3 s
only; it also rebuilds the graph and reloads the weights for every file and hides a failed
weight restore behind a bare ``except``. This script builds the same graph
(`musicnn.models.define_model`) once per model, restores the weights strictly, and runs a
clip's patches in batches of 32 (batch norm in inference mode: the result does not depend on
the batch). ``--verify N`` compares N clips (evenly spaced in the list) with the extractor on
what it gets right (the taggram, front-end and pool layers of every patch, the others of the first).
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

# Run as a script, this file's folder comes first on sys.path, and there `musicnn.py` (the
# benchmark) would shadow the musicnn package: take the folder off.
if sys.path and Path(sys.path[0] or ".").resolve() == Path(__file__).resolve().parent:
    sys.path.pop(0)

LAYERS = ("taggram", "timbral", "temporal", "cnn1", "cnn2", "cnn3", "mean_pool", "max_pool", "penultimate")
POOLS = ("mean", "max")
PATCH_S = 3.0  # musicnn's input length: the models were trained on 3-s patches
# Patches per `session.run`: all 585 patches of a 29-min track in one run peaked at 20.8 GB
# resident; batch norm runs in inference mode, so the result does not depend on the split.
PATCHES_PER_RUN = 32

Layers = dict[str, np.ndarray]  # layer name -> (patches, C) or (patches, frames, C)
Embed = Callable[[str], Layers]


def pool(layer: np.ndarray) -> dict[str, np.ndarray]:
    """{"mean": (C,), "max": (C,)} float32 over every position of one layer of a clip.

    ``layer`` is (patches, C) for clip-level layers (taggram, penultimate, musicnn's own
    mean_pool/max_pool) or (patches, frames, C) for the frame-level ones (timbral, temporal,
    cnn1-3); all leading axes are positions, so a frame-level layer is pooled over the frames
    of every patch."""
    x = np.asarray(layer, dtype=np.float64).reshape(-1, np.shape(layer)[-1])
    return {"mean": x.mean(axis=0).astype(np.float32), "max": x.max(axis=0).astype(np.float32)}


def unit_axes_dropped(layer: np.ndarray) -> np.ndarray:
    """``layer`` without its size-1 axes except the first (patches): the mid-end layers come as
    (patches, frames, C, 1), which :func:`pool` needs as (patches, frames, C)."""
    return np.squeeze(layer, axis=tuple(i for i in range(1, layer.ndim) if layer.shape[i] == 1))


def cache_key(path: str) -> str:
    """The cache file stem of a clip: a hash of its real path (clip names repeat across folders)."""
    return hashlib.sha256(os.path.realpath(path).encode()).hexdigest()[:24]


def cached_ok(entry: Path, path: str) -> bool:
    """Whether ``entry`` holds this clip's features, made from the file as it is now."""
    if not entry.is_file():
        return False
    st = os.stat(path)
    with np.load(entry) as z:
        return bool(z["status"] == "ok" and z["size_bytes"] == st.st_size and z["mtime_ns"] == st.st_mtime_ns)


def save(entry: Path, path: str, layers: Layers | None, error: str, seconds: float) -> None:
    """Write one clip's cache entry atomically: pooled layers when ``layers`` is given, else the error."""
    st = os.stat(path)
    arrays: dict[str, Any] = {
        "path": np.array(path),
        "status": np.array("ok" if layers is not None else "failed"),
        "error": np.array(error),
        "size_bytes": np.array(st.st_size, dtype=np.int64),
        "mtime_ns": np.array(st.st_mtime_ns, dtype=np.int64),
        "seconds": np.array(seconds),
    }
    if layers is not None:
        arrays["patches"] = np.array(len(layers["taggram"]), dtype=np.int64)
        for name, value in layers.items():
            for how, vector in pool(value).items():
                arrays[f"{name}.{how}"] = vector
    entry.parent.mkdir(parents=True, exist_ok=True)
    tmp = entry.with_name(f".{entry.name}.tmp-{os.getpid()}")
    with open(tmp, "wb") as f:
        np.savez(f, **arrays)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, entry)


def one_line(exc: BaseException) -> str:
    return (" ".join(str(exc).split()) or type(exc).__name__)[:300]


def embed_all(embed: Embed, paths: list[str], folder: Path, log: Callable[[str], None]) -> dict[str, Any]:
    """Embed the clips not cached yet into ``folder``; the counts, the first clip's seconds (it pays
    the start-up) and the wall and CPU seconds of the others."""
    done = skipped = failed = 0
    wall = cpu = first = 0.0
    for i, path in enumerate(paths):
        entry = folder / f"{cache_key(path)}.npz"
        if cached_ok(entry, path):
            skipped += 1
            continue
        t, c = time.perf_counter(), time.process_time()
        try:
            layers: Layers | None = embed(path)
            error = ""
        except Exception as exc:  # a bad clip is recorded, never fatal to the run
            layers, error = None, f"{type(exc).__name__}: {one_line(exc)}"
        seconds = time.perf_counter() - t
        if done + failed == 0:  # the first clip pays for loading librosa's JIT code and TensorFlow's kernels
            first = seconds
        else:
            wall, cpu = wall + seconds, cpu + time.process_time() - c
        save(entry, path, layers, error, seconds)
        done, failed = done + (layers is not None), failed + (layers is None)
        if error:
            log(f"{folder.name}: failed {path}: {error}")
        if (i + 1) % 50 == 0 or i + 1 == len(paths):
            counts = f"{done} embedded, {skipped} cached, {failed} failed"
            log(f"{folder.name}: {i + 1}/{len(paths)} clips ({counts})")
    return {"clips": len(paths), "embedded": done, "cached": skipped, "failed": failed,
            "first_clip_s": first, "wall_s": wall, "cpu_s": cpu}  # fmt: skip


def musicnn_model(name: str, threads: int) -> Embed:
    """A function clip path -> its layers ((patches, C) or (patches, frames, C) float32) for one
    musicnn model: the extractor's graph, built and restored once."""
    import librosa
    import tensorflow as tf
    from musicnn import configuration, extractor, models

    tf.compat.v1.disable_eager_execution()
    n_frames = int(librosa.time_to_frames(PATCH_S, sr=configuration.SR, n_fft=configuration.FFT_SIZE,
                                          hop_length=configuration.FFT_HOP)) + 1  # fmt: skip
    labels = configuration.MTT_LABELS if "MTT" in name else configuration.MSD_LABELS
    graph = tf.Graph()
    with graph.as_default(), tf.name_scope("model"):
        x = tf.compat.v1.placeholder(tf.float32, [None, n_frames, configuration.N_MELS])
        training = tf.compat.v1.placeholder(tf.bool)
        y, *features = models.define_model(x, training, name, len(labels))
        outputs = [tf.nn.sigmoid(y), *features]
        saver = tf.compat.v1.train.Saver()
    config = tf.compat.v1.ConfigProto(
        intra_op_parallelism_threads=threads, inter_op_parallelism_threads=threads
    )
    session = tf.compat.v1.Session(graph=graph, config=config)
    saver.restore(session, os.path.join(os.path.dirname(models.__file__), name) + "/")  # raises if missing

    def embed(path: str) -> Layers:
        batch, _ = extractor.batch_data(path, n_frames, n_frames)  # UnboundLocalError: under 3 s
        runs = [session.run(outputs, feed_dict={x: batch[i : i + PATCHES_PER_RUN], training: False})
                for i in range(0, len(batch), PATCHES_PER_RUN)]  # fmt: skip
        arrays = [unit_axes_dropped(np.concatenate([np.asarray(r[k], dtype=np.float32) for r in runs]))
                  for k in range(len(outputs))]  # fmt: skip
        return dict(zip(LAYERS, arrays, strict=True))

    return embed


def verify(embed: Embed, name: str, paths: list[str]) -> float:
    """Largest absolute difference from `musicnn.extractor.extractor` on what it computes right:
    every patch of the taggram, timbral, temporal, mean_pool and max_pool; the first patch of
    cnn1-3 and penultimate (the extractor repeats that patch for the others)."""
    from musicnn.extractor import extractor

    def rows(a: np.ndarray, width: int) -> np.ndarray:
        return np.asarray(a, dtype=np.float64).reshape(-1, width)

    worst = 0.0
    for path in paths:
        ours = embed(path)
        taggram, _, theirs = extractor(path, model=name, extract_features=True)
        theirs = {"taggram": taggram, **theirs}
        for layer in LAYERS:
            width = ours[layer].shape[-1]
            first_only = layer in ("cnn1", "cnn2", "cnn3", "penultimate")
            a = rows(ours[layer][:1] if first_only else ours[layer], width)
            b = rows(theirs[layer], width)[: len(a)]
            worst = max(worst, float(np.abs(a - b).max()))
    return worst


def weights_sha256(name: str) -> str:
    """sha256 of the model's weight file as installed (written into each store's attributes)."""
    from musicnn import models

    data = Path(models.__file__).parent / name / ".data-00000-of-00001"
    return hashlib.sha256(data.read_bytes()).hexdigest()


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--cache", required=True, help="cache folder: CACHE/<model>/<key>.npz")
    parser.add_argument("--models", default="MSD_musicnn,MTT_musicnn")
    parser.add_argument("--threads", type=int, default=1, help="TensorFlow intra- and inter-op threads")
    parser.add_argument("--verify", type=int, default=0, help="check N clips with the extractor")
    parser.add_argument("--embedder", default="", help="MODULE:FUNCTION (path -> layers) instead of musicnn")
    args = parser.parse_args()

    def log(message: str) -> None:
        print(message, file=sys.stderr, flush=True)

    paths = [line.rstrip("\n") for line in sys.stdin if line.strip()]
    summary: dict[str, Any] = {}
    for name in args.models.split(","):
        if args.embedder:
            import importlib

            module, _, function = args.embedder.partition(":")
            embed: Embed = getattr(importlib.import_module(module), function)
            sha = hashlib.sha256(name.encode()).hexdigest()
        else:
            embed, sha = musicnn_model(name, args.threads), weights_sha256(name)
        folder = Path(args.cache) / name
        result = embed_all(embed, paths, folder, log)
        result["weights_sha256"] = sha
        if args.verify:
            spaced = paths[:: max(1, len(paths) // args.verify)][: args.verify]
            result["verify_max_abs_diff"] = verify(embed, name, spaced)
            log(f"{name}: largest difference from musicnn's extractor: {result['verify_max_abs_diff']:.3g}")
        summary[name] = result
    print(json.dumps(summary))


if __name__ == "__main__":
    main()
