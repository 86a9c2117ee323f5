"""Checked claims: a study's reading cites its numbers through tokens that the tables check.

A reading (``<study>/reading.md``) is prose written by hand, but every number it leans on is a
token that ``--tables-only`` fills in from the evidence, and every claim of a difference states
its direction, which the interval must support, or the rebuild fails:

- ``[[CELL | TASK HEAD]]``: the cell's mean over its trainings and its 95% interval
  (``0.612 [0.570, 0.651]``);
- ``[[A − B | TASK HEAD | >]]``: the paired difference A minus B, which must lie above 0 (``>``),
  below 0 (``<``), or cover 0 (``~``: the two are not told apart), rendered
  ``+0.043 [+0.012, +0.075]``.

- ``[[RUN @ CORRUPTION | TASK HEAD]]``: a robust run's (or MFCC's) score on the corrupted test
  clips, from ``probe/<task>.robust.json`` (`mclx probe --corrupt`), with its interval over the
  clips; ``[[RUN @ CORRUPTION | TASK HEAD | <]]``: its paired difference from the clean clips,
  corrupted minus clean, whose interval must support the direction as above.

- ``[[CELL, CELL ... | cpu minutes]]`` (or ``wall minutes``): the range over the trainings of the
  named cells of the cost the run table shows, rounded as there (``43 to 46``; ``43`` when they
  agree), so that a cost quoted in prose is the table's.

``HEAD`` is ``linear`` (linear-probe accuracy) or ``map`` (cosine retrieval, MAP@10); ``A − B``
also takes a plain hyphen with spaces around it. A number from a cell with one training so far
carries a † (its interval covers the test clips only), as in the tables. Any other ``[[...]]`` is
an error, so a mistyped token cannot pass unchecked. A reading that says "A beats B" thus cannot
outlive evidence that stops saying so.
"""

from __future__ import annotations

import re

from studies.cells import Evidence, drop, result
from studies.intervals import Interval

HEADS = {"linear": ("linear", "accuracy"), "map": ("cosine", "map_at_10")}
TOKEN = re.compile(r"\[\[([^\]|]+)\|([^\]|]+)(?:\|\s*([<>~])\s*)?\]\]")
ANY = re.compile(r"\[\[.*?\]\]", re.DOTALL)
MINUS = re.compile(r"\s+[−-]\s+")
DIRECTIONS = {">": "above 0", "<": "below 0", "~": "covering 0"}
FORMS = "'[[CELL | TASK HEAD]]', '[[A − B | TASK HEAD | >, < or ~]]', '[[CELL, ... | cpu minutes]]'"
COSTS = {"cpu minutes": "cpu_minutes", "wall minutes": "train_wall_minutes"}


def minutes(value: float) -> str:
    """A cost in minutes as the run table shows it, and as a cost token quotes it."""
    return f"{value:.0f}"


class ClaimError(ValueError):
    """A reading's token that names nothing in the evidence, or whose interval does not support it."""


def supports(iv: Interval, direction: str) -> bool:
    """Whether interval ``iv`` of a difference supports ``direction`` (``>``, ``<`` or ``~``)."""
    if direction == ">":
        return iv.lo > 0
    if direction == "<":
        return iv.hi < 0
    return not iv.excludes_zero


def _column(text: str, token: str) -> tuple[str, str, str]:
    parts = text.split()
    if len(parts) != 2 or parts[1] not in HEADS:
        raise ClaimError(f"{token}: expected 'TASK linear' or 'TASK map', got {text.strip()!r}")
    return (parts[0], *HEADS[parts[1]])


def _members(cells: dict[str, list[str]], cell: str, token: str) -> list[str]:
    if cell not in cells:
        raise ClaimError(f"{token}: no cell {cell!r} with probed runs (cells: {', '.join(cells)})")
    return cells[cell]


def render_token(match: re.Match[str], evidence: Evidence) -> str:
    token = match.group(0)
    subject, column_text, direction = match.group(1), match.group(2), match.group(3)
    if column_text.strip() in COSTS:
        if direction:
            raise ClaimError(f"{token}: a cost takes no direction")
        return _cost(evidence, token, subject, COSTS[column_text.strip()])
    column = _column(column_text, token)
    if "@" in subject:
        return _robust(evidence, token, subject, column, direction)
    cells = evidence.cells()
    sides = MINUS.split(subject.strip())
    if len(sides) == 1:
        if direction:
            raise ClaimError(f"{token}: a direction needs a difference 'A − B'")
        iv = evidence.interval(column, _members(cells, sides[0], token))
        if iv is None:
            raise ClaimError(f"{token}: no per-clip scores for {sides[0]} on {column_text.strip()}")
        return f"{iv.mean:.3f} [{iv.lo:.3f}, {iv.hi:.3f}]{_dagger(evidence, cells, sides)}"
    if len(sides) != 2 or not direction:
        raise ClaimError(f"{token}: a difference is 'A − B | TASK HEAD | >, < or ~'")
    a, b = (_members(cells, side, token) for side in sides)
    iv = evidence.difference(column, a, b)
    if iv is None:
        raise ClaimError(f"{token}: no per-clip scores for both sides on {column_text.strip()}")
    text = f"{iv.mean:+.3f} [{iv.lo:+.3f}, {iv.hi:+.3f}]"
    if not supports(iv, direction):
        raise ClaimError(f"{token}: the interval {text} is not {DIRECTIONS[direction]}")
    return text + _dagger(evidence, cells, sides)


def _cost(evidence: Evidence, token: str, subject: str, key: str) -> str:
    """A cost token: the range of ``key`` over the trainings of the comma-separated cells."""
    cells = evidence.cells()
    baselines = evidence.study["baselines"]
    runs = []
    for cell in (part.strip() for part in subject.split(",")):
        if cell in baselines:
            raise ClaimError(f"{token}: {cell} is a baseline, it has no training cost")
        runs += _members(cells, cell, token)
    found = [evidence.summaries[run].get(key) for run in runs]
    values = [float(v) for v in found if v is not None]
    if len(values) < len(found):
        raise ClaimError(f"{token}: a run of {subject.strip()!r} has no {key} in its summary")
    lo, hi = minutes(min(values)), minutes(max(values))
    return lo if lo == hi else f"{lo} to {hi}"


def _robust(
    evidence: Evidence, token: str, subject: str, column: tuple[str, str, str], direction: str | None
) -> str:
    """A ``RUN @ CORRUPTION`` token: the corrupted score, or with a direction its difference from
    clean (both from the task's robustness report; their intervals cover the test clips)."""
    run, corruption = (part.strip() for part in subject.split("@", 1))
    task, head, metric = column
    report = evidence.reports.get(f"{task}.robust")
    if report is None:
        raise ClaimError(f"{token}: no robustness report for {task}")
    if direction is None:
        found = result(report, run, head, metric, corruption)
        if found is None:
            raise ClaimError(f"{token}: no score for {run} under {corruption!r} on {task}")
        mean, (lo, hi) = found["mean"], found["ci95"]
        return f"{mean:.3f} [{lo:.3f}, {hi:.3f}]"
    diff = drop(report, run, corruption, head, metric)
    if diff is None or diff["ci95"][0] is None:
        raise ClaimError(f"{token}: no difference from clean for {run} under {corruption!r} on {task}")
    lo, hi = diff["ci95"]
    iv = Interval(diff["diff"], lo, hi, trainings=1)
    text = f"{iv.mean:+.3f} [{iv.lo:+.3f}, {iv.hi:+.3f}]"
    if not supports(iv, direction):
        raise ClaimError(f"{token}: the interval {text} is not {DIRECTIONS[direction]}")
    return text


def _dagger(evidence: Evidence, cells: dict[str, list[str]], names: list[str]) -> str:
    """' †' for a number resting on a trained cell with one training (its interval covers the
    clips only); a baseline (MFCC, a random network) is not trained, as in the tables."""
    baselines = evidence.study["baselines"]
    single = any(len(cells[n]) == 1 and n not in baselines for n in names)
    return " †" if single else ""


def cited_pairs(reading: str) -> list[tuple[str, str]]:
    """The differences ``(A, B)`` that ``reading``'s tokens cite, in order, each once: the tables
    show each of them as a row, so that every claim points to a row of the paired table."""
    out = []
    for m in TOKEN.finditer(reading):
        sides = MINUS.split(m.group(1).strip())
        if len(sides) == 2:
            out.append((sides[0].strip(), sides[1].strip()))
    return list(dict.fromkeys(out))


def render(reading: str, evidence: Evidence) -> str:
    """``reading`` with every token replaced by its numbers; ClaimError on the first bad one, or
    on any ``[[...]]`` that is not a token."""
    for found in ANY.finditer(reading):
        if not TOKEN.fullmatch(found.group(0)):
            raise ClaimError(f"{found.group(0)}: not a token ({FORMS})")
    return TOKEN.sub(lambda m: render_token(m, evidence), reading)


__all__ = ["ClaimError", "cited_pairs", "render", "supports"]
