"""musicnn as a teacher: a SemiSupCon ``similarity`` labels CSV for the tracks of the pretraining pool.

    MCLX_DATA=~/mclx-data nice -n 10 python -m benchmarks.musicnn --teacher-labels OUT.csv
        [--layer MTT_musicnn.penultimate.mean] [--pool '${MCLX_DATA}/music/manifest.csv']
        [--no-standardise] [--split train] [--out ~/mclx-runs/musicnn] [--threads 1] [--limit N]

Every track of ``--pool`` (what ``data.audio`` accepts: a directory, an audio file or a CSV
manifest with a ``path`` column; listed by mclx train's own `list_audio`, so the same files in the
same spelling) is embedded with the layer's musicnn model through `musicnn_embed.py` and its cache
``OUT/cache/<model>/`` (shared with the benchmark: resumable, a failed track recorded with its
error and tried again next run). The layer is pooled over all the track's 3-s patches as named
(``mean`` or ``max``), and ``OUT.csv`` gets one row per track, ``path,label,split``:

- ``path``: the absolute path mclx train lists (`mclx.train.labels` matches real paths, so the
  CSV can live anywhere);
- ``label``: the vector as ``;``-separated floats with 9 significant digits, which give back the
  float32 value exactly; blank for a track that failed (the label reader takes a blank label for
  an unlabelled track);
- ``split``: ``--split`` (``train``: the label reader reads only training rows).

What the vectors mean for the target: with ``loss.target = "similarity"`` the supervised target of
two tracks is the cosine of their vectors clipped at 0 (`losses.similarity_target`), so their scale
does not matter and L2-normalising them would change nothing. Their offset does: musicnn's layers
share a large mean direction (on the 3,548 dev-task clips the raw cosine of two clips' MTT
penultimate means is 0.31 on average, of their max_pool means 0.75), so by default each dimension
is standardised over the pool's embedded tracks (minus its mean, over its standard deviation;
a constant dimension becomes 0). The target is then the cosine of two tracks' z-scores (how alike
their departures from the pool's average are), clipped at 0: on those clips 57% of the pairs get
0 and the top tenth above 0.34 (penultimate.mean). ``--no-standardise`` writes the pooled layer as
it is. The standardisation depends on every embedded track, so each run rewrites the whole CSV; an
all-zero vector would read as unlabelled, which a standardised vector of more than a few
dimensions is in practice never.

``--limit N`` embeds only the first N tracks (a smoke run). Exit 1 when some track failed, 2 on
bad input.
"""

from __future__ import annotations

import argparse
import csv
import io
import os
import sys
import time
from pathlib import Path

import numpy as np

from mclx.errors import MclxError, UsageError

DEFAULT_POOL = "${MCLX_DATA}/music/manifest.csv"  # the pool the studies' configs name
DIGITS = 9  # significant digits: a float32 survives the round trip through text


def parse_layer(text: str) -> tuple[str, str, str]:
    """``MTT_musicnn.penultimate.mean`` -> (model, layer, pool), checked against what the cache holds."""
    from benchmarks.musicnn_embed import LAYERS, POOLS

    model, _, rest = text.partition(".")
    layer, _, how = rest.partition(".")
    if not model or layer not in LAYERS or how not in POOLS:
        raise UsageError(
            f"--layer {text}: write MODEL.LAYER.POOL, LAYER one of {', '.join(LAYERS)}, POOL one of "
            f"{', '.join(POOLS)} (e.g. MTT_musicnn.penultimate.mean)"
        )
    return model, layer, how


def pool_tracks(pool: str) -> list[str]:
    """(T,) the audio files of ``pool`` as mclx train lists them for ``data.audio = [pool]``."""
    from mclx.config import Config, DataConfig, expand_path
    from mclx.train.data import list_audio

    config = Config(data=DataConfig(audio=[pool]))
    return list_audio(config, [expand_path(pool)])


def standardised(x: np.ndarray) -> np.ndarray:
    """(T, C) -> (T, C): each column minus its mean over the rows, over its standard deviation
    (a constant column becomes 0)."""
    x = np.asarray(x, dtype=np.float64)
    std = x.std(axis=0)
    return ((x - x.mean(axis=0)) / np.where(std > 0, std, 1.0)).astype(np.float32)


def labels_csv(paths: list[str], vectors: list[np.ndarray | None], split: str) -> str:
    """The CSV text: a row ``path,label,split`` per track, the label blank where ``vectors`` has None."""
    text = io.StringIO()
    writer = csv.writer(text, lineterminator="\n")
    writer.writerow(["path", "label", "split"])
    for path, vector in zip(paths, vectors, strict=True):
        label = "" if vector is None else ";".join(f"{float(v):.{DIGITS}g}" for v in vector)
        writer.writerow([path, label, split])
    return text.getvalue()


def write_text(path: Path, text: str) -> None:
    """Write ``text`` to ``path`` atomically (a reader never sees half a CSV)."""
    from mclx.fileio import atomic_write_bytes

    path.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_bytes(path, text.encode())


def run(args: argparse.Namespace) -> int:
    """Embed the pool, pool the layer, write the CSV; the exit status."""
    from benchmarks.musicnn import cached_clip, embed_clips, ensure_venv, timing

    model, layer, how = parse_layer(args.layer)
    feature = f"{layer}.{how}"
    target = Path(os.path.expanduser(args.teacher_labels))
    try:
        paths = pool_tracks(args.pool)
    except MclxError as exc:
        raise UsageError(f"--pool {args.pool}: {exc}") from None
    if args.limit:
        paths = paths[: args.limit]
    out = Path(os.path.expanduser(args.out))
    interpreter = ensure_venv(Path(os.path.expanduser(args.venv)), args.venv_python)
    t = time.perf_counter()
    cache = out / "cache"
    summary = embed_clips(interpreter, paths, cache, [model], args.threads, args.verify, args.embedder)
    print(f"embedding: {time.perf_counter() - t:.1f} s\n{timing(summary)}", file=sys.stderr, flush=True)
    vectors: list[np.ndarray | None] = []
    for path in paths:
        record, features = cached_clip(cache, model, path)
        vectors.append(features.get(feature) if record.status == "ok" else None)
        if record.status != "ok":
            print(f"failed (blank label): {path}: {record.error}", file=sys.stderr)
    done = [i for i, v in enumerate(vectors) if v is not None]
    if not done:
        raise MclxError(f"{model}: no track was embedded, so there are no labels to write")
    if args.standardise:
        if len(done) < 2:
            raise UsageError("standardising needs at least 2 embedded tracks (or --no-standardise)")
        z = standardised(np.stack([vectors[i] for i in done]))  # type: ignore[misc]
        for row, i in enumerate(done):
            vectors[i] = z[row]
    write_text(target, labels_csv(paths, vectors, args.split))
    dim = len(vectors[done[0]])  # type: ignore[arg-type]
    print(f"{target}: {len(paths)} tracks, {len(done)} labelled with {model}.{feature} "
          f"({dim} dimensions{', standardised' if args.standardise else ''}), split {args.split}",
          file=sys.stderr)  # fmt: skip
    return 1 if len(done) < len(paths) else 0
