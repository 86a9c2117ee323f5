"""A miniature development corpus with the four layouts the studies read (music pool, gamesrc
csv, notes nsynth, genre gtzan): short synthetic clips whose classes differ in timbre."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

RATE = 16000


def clip(seconds: float, freq: float, seed: int) -> np.ndarray:
    """(samples,) a harmonic tone on ``freq`` with a little seeded noise."""
    rng = np.random.default_rng(seed)
    t = np.arange(int(seconds * RATE)) / RATE
    x = sum(np.sin(2 * np.pi * freq * k * t) / k for k in (1, 2, 3))
    return (0.2 * x + 0.02 * rng.standard_normal(len(t))).astype(np.float32)


SPLITS = ["train"] * 4 + ["valid"] * 2 + ["test"] * 2


@pytest.fixture(scope="session")
def mini_corpus(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("corpus")
    music = root / "music"
    music.mkdir()
    with open(music / "manifest.csv", "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["path", "game"])
        for i in range(6):
            sf.write(music / f"t{i}.wav", clip(5.0, 110 * (i + 1), i), RATE)
            w.writerow([f"t{i}.wav", f"g{i % 2}"])
    gamesrc = root / "gamesrc"
    (gamesrc / "clips").mkdir(parents=True)
    with open(gamesrc / "labels.csv", "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["path", "label", "split"])
        for c, freq in enumerate((150.0, 600.0)):
            for i, split in enumerate(SPLITS):
                name = f"clips/c{c}-{i}.wav"
                sf.write(gamesrc / name, clip(2.5, freq * (1 + 0.05 * i), 100 + 10 * c + i), RATE)
                w.writerow([name, f"game{c}", split])
    notes = root / "notes"
    for split in ("train", "valid", "test"):
        (notes / f"nsynth-{split}" / "audio").mkdir(parents=True)
        examples = {}
        for c, family in enumerate(("brass", "string")):
            for i, s in enumerate(SPLITS):
                if s != split:
                    continue
                key = f"{family}_{i:03d}"
                sf.write(
                    notes / f"nsynth-{split}" / "audio" / f"{key}.wav",
                    clip(1.5, 200 + 300 * c + 7 * i, i),
                    RATE,
                )
                examples[key] = {"instrument_family_str": family}
        (notes / f"nsynth-{split}" / "examples.json").write_text(json.dumps(examples))
    genre = root / "genre"
    lists: dict[str, list[str]] = {"train": [], "valid": [], "test": []}
    for c, style in enumerate(("bach", "folk")):
        (genre / style).mkdir(parents=True)
        for i, split in enumerate(SPLITS):
            sf.write(genre / style / f"{style}{i}.wav", clip(2.5, 300 + 250 * c + 5 * i, 50 + i), RATE)
            lists[split].append(f"{style}/{style}{i}.wav")
    for split, names in lists.items():
        (genre / f"{split}.txt").write_text("\n".join(names) + "\n")
    return root
