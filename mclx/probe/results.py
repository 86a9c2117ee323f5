"""Result rows and paired comparisons of a probe, from its outcomes and bootstrap replicates.

A row is a (head, metric) of one feature set: mean over seeds, its 95% interval from the shared
replicates, the per-seed values (and, asked for, each test clip's score); a comparison is a
paired difference on the same replicates (same seeds, same clips). JSON has no NaN: undefined
values are null.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from mclx.probe import stats


def summarise(
    outcomes: dict[tuple[str, str], list[stats.Outcome]], reps: stats.Replicates, per_clip: bool = False
) -> tuple[list[dict[str, Any]], dict[tuple[str, str], np.ndarray]]:
    """Result rows (without 'features') with bootstrap intervals, and each row's replicates; with
    ``per_clip``, the rows of per-clip metrics also hold each test clip's score (``per_clip``)."""
    rows, replicates = [], {}
    for (h, metric), outs in outcomes.items():
        per_seed = stats.point(outs, metric)
        mean = float(np.mean(per_seed))
        reps_values = stats.replicate_values(outs, metric, reps)
        replicates[(h, metric)] = reps_values
        lo, hi = stats.percentile_interval(reps_values)
        rows.append({"head": h, "metric": metric, "mean": num(mean), "ci95": [num(lo), num(hi)],
                     "per_seed": [num(v) for v in per_seed]})  # fmt: skip
        scores = stats.per_clip(outs, metric) if per_clip else None
        if scores is not None:
            rows[-1]["per_clip"] = [None if not math.isfinite(v) else round(float(v), 6) for v in scores]
    return rows, replicates


def compare(
    a: str, b: str, results: list[dict[str, Any]], replicates: dict[str, dict[tuple[str, str], np.ndarray]]
) -> list[dict[str, Any]]:
    """Paired differences a - b of every (head, metric) both have, on the same replicates."""
    means = {(r["features"], r["head"], r["metric"]): r["mean"] for r in results if "corruption" not in r}
    out = []
    for key, ra in replicates[a].items():
        rb = replicates[b].get(key)
        ma, mb = means.get((a, *key)), means.get((b, *key))
        if rb is None or ma is None or mb is None:
            continue
        diffs = ra - rb
        lo, hi = stats.percentile_interval(diffs)
        out.append({"metric": key[1], "head": key[0], "a": a, "b": b, "diff": num(ma - mb),
                    "ci95": [num(lo), num(hi)], "p": num(stats.p_value(diffs))})  # fmt: skip
    return out


def compare_corrupted(
    features: str,
    corruption: str,
    corrupted: list[dict[str, Any]],
    clean: list[dict[str, Any]],
    corrupted_reps: dict[tuple[str, str], np.ndarray],
    clean_reps: dict[tuple[str, str], np.ndarray],
) -> list[dict[str, Any]]:
    """Paired differences corrupted - clean of every (head, metric) of one feature set, on the
    same replicates (seeds and test clips): a = b = the features, 'corruption' says which."""
    means = {(r["head"], r["metric"]): r["mean"] for r in clean}
    out = []
    for r in corrupted:
        key = (r["head"], r["metric"])
        mc, m0 = r["mean"], means.get(key)
        if mc is None or m0 is None or key not in clean_reps:
            continue
        diffs = corrupted_reps[key] - clean_reps[key]
        lo, hi = stats.percentile_interval(diffs)
        out.append({"metric": key[1], "head": key[0], "a": features, "b": features,
                    "corruption": corruption, "diff": num(mc - m0), "ci95": [num(lo), num(hi)],
                    "p": num(stats.p_value(diffs))})  # fmt: skip
    return out


def num(value: float) -> float | None:
    """JSON has no NaN: an undefined value is null."""
    return float(value) if math.isfinite(value) else None
