"""A study: a grid of `mclx train` configs (cells) and the probes run on each trained encoder.

One TOML file per study (``studies/<name>.toml``)::

    title = "..."
    tasks = ["notes", "genre", "gamesrc"]        # dev tasks under $MCLX_DATA, probed on test
    baselines = ["mfcc", "random-mclx-base"]     # features probed beside every cell
    extra_tasks = ["brightness"]                 # tasks derived from the corpus by studies.derived
    robustness = ["noise:10db", "lowpass:2000"]  # `mclx probe --corrupt` corruptions of the test clips
    robust_cells = ["ssl", "semi-100"]           # the cells (first training) probed on them
    compare = [["semi-10-natural", "semi-10"]]   # cell differences a - b the tables show, beyond each
                                                 # cell against the first cell (the reference) and MFCC

    [[cells]]
    name = "ssl"
    config = "configs/semisupcon/ssl.toml"       # a normal `mclx train` config, relative to studies/
    label = "self-supervised only"
    seeds = [0, 1]                               # training seeds (default [0])
"""

from __future__ import annotations

import dataclasses
import tomllib
from dataclasses import dataclass
from pathlib import Path

HERE = Path(__file__).resolve().parent
REFERENCE = "mclx-base-1"  # the bundled model, version 1 (named so: mclx-base moves on); validation only
PROBE_SEEDS = 5


class StudyError(Exception):
    """A study description that cannot be run; the message names the file and key."""


@dataclass(frozen=True)
class Cell:
    name: str
    config: Path
    label: str
    seeds: tuple[int, ...]


@dataclass(frozen=True)
class Run:
    """One training run: a cell at one training seed. ``name`` is also its directory's name."""

    study: str
    cell: Cell

    seed: int

    @property
    def name(self) -> str:
        return f"{self.cell.name}-s{self.seed}"

    @property
    def overrides(self) -> list[str]:
        return [f"train.seed={self.seed}"] if self.seed else []


@dataclass(frozen=True)
class Study:
    name: str
    title: str
    tasks: tuple[str, ...]
    baselines: tuple[str, ...]
    extra_tasks: tuple[str, ...]
    robustness: tuple[str, ...]
    robust_cells: tuple[str, ...]
    cells: tuple[Cell, ...]
    compare: tuple[tuple[str, str], ...] = ()  # cell pairs (a, b) the tables compare, beyond the reference

    def runs(self) -> list[Run]:
        """Every run, first seeds first (in the cells' order), then the second seeds."""
        most = max(len(c.seeds) for c in self.cells)
        return [Run(self.name, c, c.seeds[i]) for i in range(most) for c in self.cells if i < len(c.seeds)]

    def robust_runs(self) -> list[Run]:
        """The runs probed under corruption: the first training of each robust cell."""
        return [Run(self.name, c, c.seeds[0]) for c in self.cells if c.name in self.robust_cells]

    def smoke(self) -> Study:
        """The study as ``--smoke`` runs it: one training per cell, two for the first two cells (so
        that the intervals over trainings are exercised too)."""
        cells = tuple(
            dataclasses.replace(c, seeds=c.seeds[: 2 if i < 2 else 1]) for i, c in enumerate(self.cells)
        )
        return dataclasses.replace(self, cells=cells)

    def cell(self, name: str) -> Cell:
        return next(c for c in self.cells if c.name == name)


STUDY_KEYS = {"title", "tasks", "baselines", "extra_tasks", "robustness", "robust_cells", "compare", "cells"}
CELL_KEYS = {"name", "config", "label", "seeds"}


def available() -> list[str]:
    return sorted(p.stem for p in HERE.glob("*.toml"))


def load_study(name: str) -> Study:
    path = HERE / f"{name}.toml"
    if not path.is_file():
        raise StudyError(f"no study {name!r} (studies: {', '.join(available())})")
    raw = tomllib.loads(path.read_text())
    unknown = set(raw) - STUDY_KEYS
    if unknown:
        raise StudyError(f"{path}: unknown key {sorted(unknown)[0]!r}")
    cells = []
    for i, c in enumerate(raw.get("cells", [])):
        bad = set(c) - CELL_KEYS or {"name", "config"} - set(c)
        if bad:
            raise StudyError(f"{path}: cells[{i}]: unknown or missing key {sorted(bad)[0]!r}")
        config = HERE / c["config"]
        if not config.is_file():
            raise StudyError(f"{path}: cells[{i}].config: {c['config']} does not exist")
        cells.append(Cell(c["name"], config, c.get("label", c["name"]), tuple(c.get("seeds", [0]))))
    if not cells:
        raise StudyError(f"{path}: no [[cells]]")
    names = [c.name for c in cells]
    missing = [c for c in raw.get("robust_cells", []) if c not in names]
    if missing:
        raise StudyError(f"{path}: robust_cells: {missing[0]!r} is not a cell")
    for pair in raw.get("compare", []):
        if len(pair) != 2 or any(c not in names for c in pair):
            raise StudyError(f"{path}: compare: {pair!r} is not a pair of cells")
    if raw.get("robustness"):
        from mclx.errors import UsageError
        from mclx.probe.corrupt import parse as parse_corruptions

        try:
            parse_corruptions(",".join(raw["robustness"]))
        except UsageError as exc:
            raise StudyError(f"{path}: robustness: {str(exc).removeprefix('--corrupt ')}") from None
    return Study(
        name=name,
        title=raw.get("title", name),
        tasks=tuple(raw.get("tasks", [])),
        baselines=tuple(raw.get("baselines", [])),
        extra_tasks=tuple(raw.get("extra_tasks", [])),
        robustness=tuple(raw.get("robustness", [])),
        robust_cells=tuple(raw.get("robust_cells", [])),
        cells=tuple(cells),
        compare=tuple((a, b) for a, b in raw.get("compare", [])),
    )
