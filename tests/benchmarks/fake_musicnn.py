"""A stand-in for a musicnn model, for `benchmarks/musicnn_embed.py --embedder`: layers whose
pooled values are known, one 3-s patch per 3 s of audio (as musicnn, no overlap).

Patch p of a clip holds p in every channel of ``taggram`` (patches, 4) and ``penultimate``
(patches, 2), and 10 * p + f at frame f of ``timbral`` (patches, 5 frames, 3); a clip whose name
contains "broken" raises. Each call appends the clip's path to ``$FAKE_MUSICNN_CALLS``."""

from __future__ import annotations

import os

import numpy as np
import soundfile as sf

FRAMES = 5


def layers(path: str) -> dict[str, np.ndarray]:
    """{layer: (patches, C) or (patches, frames, C) float32} of the clip at ``path``."""
    with open(os.environ["FAKE_MUSICNN_CALLS"], "a") as log:
        log.write(path + "\n")
    if "broken" in os.path.basename(path):
        raise ValueError("cannot decode this clip")
    patches = int(sf.info(path).duration // 3)
    p = np.arange(patches, dtype=np.float32)[:, None]
    frames = 10 * p[:, :, None] + np.arange(FRAMES, dtype=np.float32)[None, :, None]
    return {
        "taggram": np.repeat(p, 4, axis=1),
        "timbral": np.repeat(frames, 3, axis=2),
        "penultimate": np.repeat(p, 2, axis=1),
    }
