"""One probe run: task -> feature sets -> heads over seeds -> metrics with confidence intervals."""

from __future__ import annotations

import os
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from mclx import __version__
from mclx.errors import UsageError
from mclx.probe import heads, metrics, stats
from mclx.probe.corrupt import Corruption
from mclx.probe.corrupt import parse as parse_corruptions
from mclx.probe.features import Features, cache_path, embed_cached, from_store
from mclx.probe.report import plot_results, print_table, require_matplotlib, write_json
from mclx.probe.results import compare, compare_corrupted, summarise
from mclx.probe.robustness import CORRUPTION, corrupted_features, testable_clips
from mclx.probe.splits import FOLDS, Split, make_splits, split_notes
from mclx.probe.tasks import KINDS, Task, load_task

HEAD_METRICS = {"single": ("accuracy", "macro_f1"), "multi": ("roc_auc", "pr_auc"), "regression": ("r2",)}
RETRIEVAL = (
    "retrieval (head 'cosine', nothing trained): each test clip queries the train+valid clips by "
    f"cosine similarity of the standardised features; relevant = same class (single-label) or at "
    f"least one shared tag (multi-label); MAP@{metrics.K_RETRIEVAL} and precision@{metrics.K_RETRIEVAL}"
)
CONFIDENCE = (
    f"mean over seeds; 95% interval: percentile bootstrap ({stats.RESAMPLES} seeded resamples) that "
    "redraws the seeds and the test clips, so it covers both; comparisons are paired (same seeds and "
    "clips for both feature sets), with a two-sided bootstrap p-value"
)


@dataclass(frozen=True)
class ProbeSettings:
    """Everything one probe run is asked for, as `mclx probe`'s flags give it.

    ``models`` and ``embeddings`` may name several feature sets (none at all, and no baseline:
    the default model); each is compared with ``baseline``, and ``compare`` adds pairs (a, b) of
    feature names (a minus b). :meth:`check` refuses, before any work, a flag that cannot be
    honoured."""

    task: str
    data: str | None = None
    layout: str | None = None
    models: tuple[str, ...] = ()
    embeddings: tuple[str, ...] = ()
    baseline: str | None = None
    head: str = "both"
    seeds: int = 5
    out: str | None = None
    plot: str | None = None
    label_field: str | None = None
    device: str = "auto"
    quiet: bool = False
    kind: str | None = None
    compare: tuple[tuple[str, str], ...] = ()
    corrupt: str | None = None  # the --corrupt spec as given: "noise:10db,lowpass:2000"
    per_clip: bool = False  # result rows also hold each test clip's score (mean over seeds)

    def corruptions(self) -> tuple[Corruption, ...]:
        """The parsed --corrupt spec (none without it); UsageError naming --corrupt if it is bad."""
        return () if self.corrupt is None else parse_corruptions(self.corrupt)

    def feature_names(self) -> list[str]:
        """The feature sets in the order they are probed, each once (a name given twice is one)."""
        from mclx.models.registry import default_model_name

        models = self.models or (() if self.embeddings or self.baseline else (default_model_name(),))
        return list(dict.fromkeys([*self.embeddings, *models, *([self.baseline] if self.baseline else [])]))

    def check(self) -> None:
        """Fail before any work on a flag that cannot be honoured."""
        from mclx.devices import resolve_device
        from mclx.inputs import check_output_writable

        if self.head not in (*heads.HEADS, "both"):
            raise UsageError(f"--head {self.head}: choose linear, mlp or both")
        if self.seeds < 1:
            raise UsageError(f"--seeds {self.seeds}: must be at least 1")
        if self.kind not in (None, *KINDS):
            raise UsageError(f"--kind {self.kind}: choose {', '.join(KINDS)}")
        if self.baseline not in (None, "mfcc"):
            raise UsageError(f"--baseline {self.baseline}: the only baseline is mfcc")
        for store in self.embeddings:
            if not os.path.isfile(store):
                raise UsageError(f"--embeddings {store}: no such file")
        names = self.feature_names()
        if self.corruptions() and all(n in self.embeddings for n in names):
            raise UsageError(
                f"--corrupt {self.corrupt}: needs features mclx can embed (--model or --baseline); "
                "a store given with --embeddings holds no corrupted clips"
            )
        for a, b in self.compare:
            unknown = [n for n in (a, b) if n not in names]
            if unknown:
                raise UsageError(f"--compare {a},{b}: {unknown[0]} is not one of the feature sets "
                                 f"({', '.join(names)})")  # fmt: skip
        for flag, path in (("--out", self.out), ("--plot", self.plot)):
            if path:
                try:
                    check_output_writable(path)
                except UsageError as exc:
                    raise UsageError(f"{flag} {exc}") from None
        if self.plot:
            require_matplotlib()
        resolve_device(self.device)


def run_probe(s: ProbeSettings) -> dict[str, Any]:
    """Returns the results dict of the contract (also written to ``s.out`` if given) and prints
    the rich table to stderr unless ``s.quiet``. Raises UsageError for bad flags or bad tasks,
    all of them before any clip is embedded."""
    from mclx.devices import resolve_device

    s.check()
    dev = resolve_device(s.device)
    log = _Log(s.quiet)

    t = load_task(s.task, s.data, s.layout, s.label_field, kind=s.kind)
    make_splits(t, np.ones(len(t.paths), dtype=bool), s.seeds)  # an empty split, too few clips: before work
    notes = list(t.notes)
    counted = f", {len(t.classes)} {'classes' if t.kind == 'single' else 'tags'}" if t.classes else ""
    log(f"probe {t.name}: {t.layout} layout, {t.kind}, {len(t.paths)} clips{counted}")
    failed: list[str] = []
    sets = _feature_sets(t, s, log, notes, failed)
    pairs = [(f.name, s.baseline) for f in sets if s.baseline and f.name != s.baseline]
    pairs += [p for p in dict.fromkeys(s.compare) if p not in pairs]
    usable = np.all([np.isfinite(f.x).all(axis=1) for f in sets], axis=0)
    corruptions = s.corruptions()

    def embed(name: str, paths: list[str], cache: Path, label: str) -> None:
        embed_cached(name, paths, cache, s.device, s.quiet, log, notes, failed, label)

    shifted = corrupted_features(t, sets, corruptions, usable, s.out, embed, log, notes, failed)
    if corruptions:
        tested = testable_clips(t)
        for by_corruption in shifted.values():
            for xc in by_corruption.values():
                usable &= ~tested | np.isfinite(xc).all(axis=1)
    if not usable.all():
        notes.append(f"{int((~usable).sum())} clips have no features (failed to embed) and are left out")
    splits = make_splits(t, usable, s.seeds)
    y = t.targets()
    for split in dict.fromkeys(splits):  # each distinct split once
        notes.extend(split_notes(t, split, y))
    if s.seeds == 1 and "mlp" in (s.head, "both"):
        notes.append("one seed: the MLP's intervals cover the test clips only, not its variation "
                     "between seeds (give --seeds 2 or more)")  # fmt: skip
    heads_run = list(heads.HEADS) if s.head == "both" else [s.head]
    test_ids = _test_set_ids(splits)
    sizes = {i: len(sp.test) for i, sp in zip(test_ids, splits, strict=True)}
    repetitions = None if t.has_splits else [seed // FOLDS for seed in range(len(splits))]
    reps = stats.Replicates.draw(test_ids, sizes, repetitions=repetitions)

    fitted = _fit_all(t, sets, y, splits, heads_run, dev, shifted, reps, s, log)
    results, tuned, confusions = fitted.results, fitted.tuned, fitted.confusions
    comparisons = [c for a, b in pairs for c in compare(a, b, results, fitted.replicates)]
    comparisons += fitted.robustness
    bad = sorted({"/".join([r["features"], *([r["corruption"]] if "corruption" in r else []), r["head"],
                            r["metric"]]) for r in results if r["mean"] is None})  # fmt: skip
    if bad:
        notes.append(f"undefined for at least one seed, mean not given: {', '.join(bad)}")

    report = _report(t, s, splits, sets, tuned, notes, failed, str(dev), results, comparisons)
    if corruptions:
        report["corruptions"] = [c.name for c in corruptions]
        report["corruption"] = CORRUPTION
    if s.out:
        write_json(report, s.out)
    if not s.quiet:
        print_table(report)
    if s.plot:
        plot_results(report, confusions, s.plot)
        log(f"plot written to {s.plot}")
    return report


@dataclass
class _Fitted:
    results: list[dict[str, Any]]
    replicates: dict[str, dict[tuple[str, str], np.ndarray]]
    robustness: list[dict[str, Any]]
    tuned: list[dict[str, Any]]
    confusions: dict[str, list[list[int]]]


def _fit_all(
    t: Task,
    sets: list[Features],
    y: np.ndarray,
    splits: list[Split],
    heads_run: list[str],
    dev: Any,
    shifted: dict[str, dict[str, np.ndarray]],
    reps: stats.Replicates,
    s: ProbeSettings,
    log: _Log,
) -> _Fitted:
    """Every feature set's heads fitted and scored (clean and corrupted): its result rows, its
    replicates (for the paired comparisons), the robustness comparisons, the tuned
    hyper-parameters and the first head's confusion matrix."""
    out = _Fitted([], {}, [], [], {})
    for f in sets:
        log(f"fitting {' and '.join(heads_run)} heads on {f.name} ({f.x.shape[1]} dims, {s.seeds} seeds)")
        variants = shifted.get(f.name, {})
        outcomes, chosen, conf, corrupted = _evaluate(t, f.x, y, splits, heads_run, dev, variants)
        rows, out.replicates[f.name] = summarise(outcomes, reps, s.per_clip)
        out.results.extend({"features": f.name, **r} for r in rows)
        for name, outs in corrupted.items():
            crows, creps = summarise(outs, reps, s.per_clip)
            out.results.extend({"features": f.name, "corruption": name, **r} for r in crows)
            out.robustness.extend(compare_corrupted(f.name, name, crows, rows, creps, out.replicates[f.name]))
        out.tuned.extend({"features": f.name, "head": h, "per_seed": c} for h, c in chosen.items())
        if conf is not None:
            out.confusions[f"{f.name} ({heads_run[0]})"] = conf
    return out


def _report(
    t: Task,
    s: ProbeSettings,
    splits: list[Split],
    sets: list[Features],
    tuned: list[dict[str, Any]],
    notes: list[str],
    failed: list[str],
    device: str,
    results: list[dict[str, Any]],
    comparisons: list[dict[str, Any]],
) -> dict[str, Any]:
    """The results JSON of the contract."""
    first = splits[0]
    return {
        "task": t.name,
        "layout": t.layout,
        "data": t.data,
        "kind": t.kind,
        "splits": {"train": len(first.train), "valid": len(first.valid), "test": len(first.test)},
        "seeds": s.seeds,
        "evaluation": _evaluation(t),
        "folds": [sp.describe() for sp in splits] if not t.has_splits else None,
        "aggregation": "; ".join(f"{f.name}: {f.aggregation}" for f in sets),
        "features": [f.describe() for f in sets],
        "heads": heads.describe(),
        "hyperparameters": tuned,
        "retrieval": RETRIEVAL if t.kind != "regression" else "no retrieval metric for regression",
        "confidence": CONFIDENCE,
        "classes": t.classes,
        "warnings": list(dict.fromkeys(notes)),
        "failed": failed,
        "mclx_version": __version__,
        "device": device,
        "results": results,
        "comparisons": comparisons,
    }


def _feature_sets(
    t: Task, s: ProbeSettings, log: _Log, notes: list[str], failed: list[str]
) -> list[Features]:
    """The feature sets named by the settings, read from their stores or embedded here; clips
    that failed are added to ``failed`` (and described in ``notes``)."""
    sets = []
    for name in s.feature_names():
        if name in s.embeddings:
            sets.append(from_store(name, name, "embeddings", t, failed, notes))
        else:
            source = "baseline" if name == s.baseline else "model"
            sets.append(_embedded(name, source, t, s, log, notes, failed))
    return sets


class _Log:
    def __init__(self, quiet: bool) -> None:
        self.quiet = quiet

    def __call__(self, message: str) -> None:
        if not self.quiet:
            print(message, file=sys.stderr, flush=True)


def _evaluation(t: Task) -> str:
    if t.has_splits:
        return "given train/valid/test splits; the seeds vary the heads' initialisation (and dropout)"
    strata = {"single": "by class", "multi": "by each clip's rarest tag", "regression": "by target value"}
    return (
        f"no split lists: repeated {FOLDS}-fold stratified {strata[t.kind]}; seed s tests on fold "
        f"s mod {FOLDS}, validates on the next fold and trains on the other {FOLDS - 2}; the folds are "
        f"redrawn every {FOLDS} seeds (see 'folds')"
    )


Outcomes = dict[tuple[str, str], list[stats.Outcome]]  # (head, metric) -> one outcome per seed


def _evaluate(
    t: Task,
    x: np.ndarray,
    y: np.ndarray,
    splits: list[Split],
    heads_run: list[str],
    dev: Any,
    variants: dict[str, np.ndarray] | None = None,
) -> tuple[Outcomes, dict[str, list[dict[str, float]]], list[list[int]] | None, dict[str, Outcomes]]:
    """Each (head, metric)'s per-seed test outcomes, each head's chosen hyper-parameters per seed,
    the summed test confusion matrix of the first head (single-label), for (N, D) features x;
    and, for each of ``variants`` ({corruption: (N, D) features of the corrupted clips}), the
    outcomes of the same fitted heads (and the same standardisation) on its test rows."""
    variants = variants or {}
    outcomes: Outcomes = {}
    shifted: dict[str, Outcomes] = {name: {} for name in variants}
    chosen: dict[str, list[dict[str, float]]] = {h: [] for h in heads_run}
    conf = np.zeros((len(t.classes), len(t.classes)), dtype=np.int64) if t.kind == "single" else None
    test_ids = _test_set_ids(splits)
    retrieved: dict[tuple[str, int], tuple[stats.Outcome, stats.Outcome]] = {}
    linear_fits: dict[tuple[str, int], heads.Fitted] = {}
    out_dim = len(t.classes) if t.kind == "multi" else 1
    seen = np.arange(len(t.classes))
    for seed, s in enumerate(splits):
        xtr, xva, xte, *xcs = heads.standardise(x[s.train], x[s.valid], x[s.test],
                                                *(xc[s.test] for xc in variants.values()))  # fmt: skip
        tests = {"": xte, **dict(zip(variants, xcs, strict=True))}
        ytr, yte = y[s.train], y[s.test]
        xva_h, yva_h = xva, y[s.valid]  # what the heads are tuned on
        if t.kind == "single":  # the heads know only the classes of the training split
            seen = np.unique(ytr)
            known = np.isin(yva_h, seen)
            if not known.any():
                raise UsageError(f"{t.data}: no validation clip belongs to a class seen in training")
            xva_h, yva_h = xva[known], np.searchsorted(seen, yva_h[known])
            ytr, out_dim = np.searchsorted(seen, ytr), len(seen)
        for h in heads_run:
            key = (h, test_ids[seed])
            if h == "linear" and key in linear_fits:  # seed-independent: one fit per split is enough
                fitted = linear_fits[key]
            else:
                fitted = heads.fit(h, t.kind, xtr, ytr, xva_h, yva_h, out_dim, seed, dev)
                if h == "linear":
                    linear_fits[key] = fitted
            chosen[h].append(fitted.chosen())
            for name, xt in tests.items():
                p = heads.predict(fitted, xt, t.kind)
                if t.kind == "single":
                    pred = seen[p.argmax(axis=1)]
                    if conf is not None and h == heads_run[0] and not name:
                        conf += metrics.confusion(yte, pred, len(t.classes))
                    p = pred
                o = stats.Outcome(test_ids[seed], yte, p)
                for metric in HEAD_METRICS[t.kind]:
                    (shifted[name] if name else outcomes).setdefault((h, metric), []).append(o)
        if t.kind != "regression":  # retrieval trains nothing: computed once per test set
            for name, xt in tests.items():
                if (name, test_ids[seed]) not in retrieved:
                    ydb = y[np.concatenate([s.train, s.valid])]
                    relevant = (
                        y[s.test][:, None] == ydb[None, :] if t.kind == "single" else (y[s.test] @ ydb.T) > 0
                    )
                    ap, hits = metrics.retrieval_per_query(xt, np.concatenate([xtr, xva]), relevant)
                    pair = (stats.Outcome(test_ids[seed], yte, ap), stats.Outcome(test_ids[seed], yte, hits))
                    retrieved[(name, test_ids[seed])] = pair
                ap_o, hit_o = retrieved[(name, test_ids[seed])]
                into = shifted[name] if name else outcomes
                into.setdefault(("cosine", "map_at_10"), []).append(ap_o)
                into.setdefault(("cosine", "precision_at_10"), []).append(hit_o)
    return outcomes, chosen, None if conf is None else conf.tolist(), shifted


def _test_set_ids(splits: list[Split]) -> list[int]:
    """(S,) the index of each seed's test set among the distinct ones (given splits: all 0)."""
    ids: dict[int, int] = {}
    return [ids.setdefault(id(s), len(ids)) for s in splits]


def _embedded(
    name: str, source: str, t: Task, s: ProbeSettings, log: _Log, notes: list[str], failed: list[str]
) -> Features:
    """Embed the task's clips with ``name`` through the `mclx embed` pipeline, cached in a store
    next to the results (or in the user cache without --out) so that a second run resumes it."""
    cache = cache_path(name, t, s.out)
    embed_cached(name, t.paths, cache, s.device, s.quiet, log, notes, failed, name)
    return from_store(str(cache), name, source, t)
