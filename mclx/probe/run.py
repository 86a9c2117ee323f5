"""One probe run: task -> feature sets -> heads over seeds -> metrics with confidence intervals."""

from __future__ import annotations

import hashlib
import math
import os
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from mclx import __version__
from mclx.errors import DecodeError, UsageError
from mclx.probe import heads, metrics, stats
from mclx.probe.corrupt import Corruption, copy_name, write_copy
from mclx.probe.corrupt import parse as parse_corruptions
from mclx.probe.report import plot_results, print_table, require_matplotlib, write_json
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
CORRUPTION = (
    "--corrupt: the heads fitted on the clean train/valid clips (the clean rows' heads, same seeds) "
    "score corrupted copies of the test clips, embedded with the same features; retrieval queries "
    "the clean train+valid clips with them. Rows and comparisons with a 'corruption' field: the "
    "comparison is the corrupted minus the clean result of the same features, head and metric, "
    "paired on the same seeds and test clips. Features read with --embeddings cannot be re-embedded "
    "and are scored clean only"
)


@dataclass(frozen=True)
class Features:
    name: str  # as shown in the results: model name, checkpoint path, store path or "mfcc"
    source: str  # "model" | "baseline" | "embeddings"
    store: str  # the HDF5 store the features were read from
    x: np.ndarray  # (N, D) float32 in task order, NaN rows for clips without features
    aggregation: str

    def describe(self) -> dict[str, Any]:
        return {"name": self.name, "source": self.source, "store": self.store, "dim": int(self.x.shape[1]),
                "aggregation": self.aggregation}  # fmt: skip


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
    shifted = _corrupted_features(t, s, sets, corruptions, usable, log, notes, failed)
    if corruptions:
        tested = _test_candidates(t)
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

    results: list[dict[str, Any]] = []
    replicates: dict[str, dict[tuple[str, str], np.ndarray]] = {}
    robustness: list[dict[str, Any]] = []
    tuned: list[dict[str, Any]] = []
    confusions: dict[str, list[list[int]]] = {}
    for f in sets:
        log(f"fitting {' and '.join(heads_run)} heads on {f.name} ({f.x.shape[1]} dims, {s.seeds} seeds)")
        variants = shifted.get(f.name, {})
        outcomes, chosen, conf, corrupted = _evaluate(t, f.x, y, splits, heads_run, dev, variants)
        rows, replicates[f.name] = _summarise(outcomes, reps)
        results.extend({"features": f.name, **r} for r in rows)
        for name, outs in corrupted.items():
            crows, creps = _summarise(outs, reps)
            results.extend({"features": f.name, "corruption": name, **r} for r in crows)
            robustness.extend(_compare_corrupted(f.name, name, crows, rows, creps, replicates[f.name]))
        tuned.extend({"features": f.name, "head": h, "per_seed": c} for h, c in chosen.items())
        if conf is not None:
            confusions[f"{f.name} ({heads_run[0]})"] = conf
    comparisons = [c for a, b in pairs for c in _compare(a, b, results, replicates)] + robustness
    bad = sorted({"/".join([r["features"], *([r["corruption"]] if "corruption" in r else []), r["head"],
                            r["metric"]]) for r in results if r["mean"] is None})  # fmt: skip
    if bad:
        notes.append(f"undefined for at least one seed, mean not given: {', '.join(bad)}")

    first = splits[0]
    report: dict[str, Any] = {
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
        "device": str(dev),
        "results": results,
        "comparisons": comparisons,
    }
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


def _feature_sets(
    t: Task, s: ProbeSettings, log: _Log, notes: list[str], failed: list[str]
) -> list[Features]:
    """The feature sets named by the settings, read from their stores or embedded here; clips
    that failed are added to ``failed`` (and described in ``notes``)."""
    sets = []
    for name in s.feature_names():
        if name in s.embeddings:
            sets.append(_from_store(name, name, "embeddings", t, failed, notes))
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


def _summarise(
    outcomes: dict[tuple[str, str], list[stats.Outcome]], reps: stats.Replicates
) -> tuple[list[dict[str, Any]], dict[tuple[str, str], np.ndarray]]:
    """Result rows (without 'features') with bootstrap intervals, and each row's replicates."""
    rows, replicates = [], {}
    for (h, metric), outs in outcomes.items():
        per_seed = stats.point(outs, metric)
        mean = float(np.mean(per_seed))
        reps_values = stats.replicate_values(outs, metric, reps)
        replicates[(h, metric)] = reps_values
        lo, hi = stats.percentile_interval(reps_values)
        rows.append({"head": h, "metric": metric, "mean": _num(mean), "ci95": [_num(lo), _num(hi)],
                     "per_seed": [_num(v) for v in per_seed]})  # fmt: skip
    return rows, replicates


def _compare(
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
        out.append({"metric": key[1], "head": key[0], "a": a, "b": b, "diff": _num(ma - mb),
                    "ci95": [_num(lo), _num(hi)], "p": _num(stats.p_value(diffs))})  # fmt: skip
    return out


def _compare_corrupted(
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
                    "corruption": corruption, "diff": _num(mc - m0), "ci95": [_num(lo), _num(hi)],
                    "p": _num(stats.p_value(diffs))})  # fmt: skip
    return out


def _num(value: float) -> float | None:
    """JSON has no NaN: an undefined value is null."""
    return float(value) if math.isfinite(value) else None


def _from_store(
    path: str,
    name: str,
    source: str,
    t: Task,
    failed: list[str] | None = None,
    notes: list[str] | None = None,
    paths: list[str] | None = None,
) -> Features:
    """(N, D) clip embeddings of the task's clips (or of ``paths``), in that order, from an
    embedding store.

    With ``failed`` (and ``notes``), the task's clips that the store records as failed are added
    to them: a probe on a store with failed clips then exits 1, as one that embeds them itself."""
    from mclx.store import read_store

    paths = t.paths if paths is None else paths
    store = read_store(path)
    index: dict[str, int] = {}
    for i, p in enumerate(store.paths):
        index.setdefault(os.path.realpath(p), i)
    rows = [index.get(os.path.realpath(p), -1) for p in paths]
    missing = [p for p, r in zip(paths, rows, strict=True) if r < 0]
    if missing:
        raise UsageError(
            f"--embeddings {path}: {len(missing)} of the task's {len(paths)} clips are not in it, "
            f"e.g. {missing[0]}"
        )
    if failed is not None:
        bad = [store.records[r] for r in rows if store.records[r].status != "ok"]
        failed.extend(f"{name}: {rec.path}: {rec.error}" for rec in bad)
        if bad and notes is not None:
            notes.append(f"{name}: {len(bad)} clips failed to embed, e.g. {bad[0].path}: {bad[0].error}")
    dim = int(store.attrs["dim"])
    x = np.full((len(paths), dim), np.nan, dtype=np.float32)
    from_segments = False
    for j, r in enumerate(rows):
        rec = store.records[r]
        if rec.global_ is not None:
            x[j] = rec.global_
        elif rec.segments is not None and len(rec.segments):
            x[j] = rec.segments.mean(axis=0)
            from_segments = True
    a = store.attrs
    where = "computed here from the store's /segments" if from_segments else "the store's /global"
    aggregation = (
        f"clip embedding = mean of the {a.get('model')} embeddings of {float(a['window_s']):g} s windows "
        f"every {float(a['hop_s']):g} s ({where})"
    )
    return Features(name, source, path, x, aggregation)


def _embedded(
    name: str, source: str, t: Task, s: ProbeSettings, log: _Log, notes: list[str], failed: list[str]
) -> Features:
    """Embed the task's clips with ``name`` through the `mclx embed` pipeline, cached in a store
    next to the results (or in the user cache without --out) so that a second run resumes it."""
    cache = _cache_path(name, t, s.out)
    _embed_cached(name, t.paths, cache, s, log, notes, failed, name)
    return _from_store(str(cache), name, source, t)


def _embed_cached(
    name: str,
    paths: list[str],
    cache: Path,
    s: ProbeSettings,
    log: _Log,
    notes: list[str],
    failed: list[str],
    label: str,
) -> None:
    """Embed ``paths`` with model ``name`` into the store ``cache`` (resumed when it was made
    with the same model and precision, else started anew); failures go to ``notes`` and
    ``failed`` under ``label``."""
    from mclx.devices import resolve_device, resolve_precision
    from mclx.models.registry import load_model
    from mclx.pipeline import EmbedSettings, embed
    from mclx.store import read_attrs

    cache.parent.mkdir(parents=True, exist_ok=True)
    overwrite = False
    if cache.exists():
        try:
            attrs = read_attrs(cache)
            precision = resolve_precision("auto", resolve_device(s.device).type)
            overwrite = (
                attrs.get("model_sha256") != load_model(name).sha256 or attrs["precision"] != precision
            )
        except UsageError:
            overwrite = True
        if overwrite:
            log(f"{cache}: made with another model or precision, embedding again")
    log(f"features {label}: embedding {len(paths)} clips into {cache} (resumes what is there)")
    settings = EmbedSettings(model=name, level="global", device=s.device, overwrite=overwrite, quiet=s.quiet)
    summary = embed(paths, str(cache), settings)
    if summary.failed:
        path, error = summary.failures[0] if summary.failures else ("?", "?")
        notes.append(f"{label}: {summary.failed} clips failed to embed, e.g. {path}: {error}")
        failed.extend(f"{label}: {p}: {e}" for p, e in summary.failures)


def _test_candidates(t: Task) -> np.ndarray:
    """(N,) bool: the clips some seed may test on (given splits: the test split; k-fold: all)."""
    if t.has_splits:
        return np.asarray(t.splits) == "test"
    return np.ones(len(t.paths), dtype=bool)


def _corrupted_features(
    t: Task,
    s: ProbeSettings,
    sets: list[Features],
    corruptions: tuple[Corruption, ...],
    clean: np.ndarray,
    log: _Log,
    notes: list[str],
    failed: list[str],
) -> dict[str, dict[str, np.ndarray]]:
    """{features: {corruption: (N, D) features}}: the corrupted copies of the clips some seed
    tests on (NaN elsewhere, and where corrupting or embedding failed), for every feature set
    mclx embeds itself (not those read with --embeddings). Only clips with clean features in
    every set (``clean``, (N,) bool) are corrupted: a clip that failed clean is left out anyway.
    The copies are cached (:func:`_corrupted_copies`) and so are their embeddings, one store per
    (features, corruption) beside the clean one: a second run reuses both."""
    out: dict[str, dict[str, np.ndarray]] = {}
    embeddable = [f for f in sets if f.source != "embeddings"]
    if corruptions and len(embeddable) < len(sets):
        skipped = ", ".join(f.name for f in sets if f.source == "embeddings")
        notes.append(f"--corrupt: {skipped} (from --embeddings) scored clean only (not re-embedded)")
    wanted = np.flatnonzero(_test_candidates(t) & clean)
    for c in corruptions:
        copies = _corrupted_copies(t, c, wanted, s.out, log, notes, failed)
        rows = np.array(sorted(copies), dtype=np.int64)
        paths = [copies[i] for i in rows]
        for f in embeddable:
            x = np.full_like(f.x, np.nan)
            if len(paths):
                label = f"{f.name} [{c.name}]"
                cache = _cache_path(f.name, t, s.out, corruption=c.name)
                _embed_cached(f.name, paths, cache, s, log, notes, failed, label)
                x[rows] = _from_store(str(cache), f.name, f.source, t, paths=paths).x
            out.setdefault(f.name, {})[c.name] = x
    return out


def _corrupted_copies(
    t: Task,
    c: Corruption,
    rows: np.ndarray,
    out: str | None,
    log: _Log,
    notes: list[str],
    failed: list[str],
) -> dict[int, str]:
    """{row: path} of the corrupted copies of the task's clips ``rows`` (M,) int, written once
    under ``<cache>.corrupt/<corruption>/`` (:func:`mclx.probe.corrupt.copy_name`), reused after;
    a clip that cannot be corrupted is recorded in ``failed`` and left out."""
    folder = _cache_path("corrupt", t, out, suffix="") / c.name.replace(":", "-")
    copies: dict[int, str] = {}
    made, bad = 0, []
    for i in rows:
        source = t.paths[i]
        key = Path(os.path.relpath(source, t.data)).as_posix()
        target = folder / copy_name(c, key, source)
        if not target.exists():
            try:
                write_copy(c, source, key, target)
            except DecodeError as exc:
                bad.append(f"{c.name}: {source}: {exc}")
                continue
            made += 1
        copies[int(i)] = str(target)
    log(f"{c.name}: {len(copies)} corrupted test clips in {folder} ({made} written now)")
    if bad:
        notes.append(f"{c.name}: {len(bad)} clips could not be corrupted, e.g. {bad[0]}")
        failed.extend(bad)
    return copies


def _cache_path(name: str, t: Task, out: str | None, corruption: str = "", suffix: str = ".h5") -> Path:
    """``<results stem>.<features>[.<corruption>].h5`` beside --out, else
    ``~/.cache/mclx/probe/<task>-<dir hash>...``."""
    safe = "".join(c if c.isalnum() or c in "-_" else "_" for c in Path(name).stem) or "model"
    if os.sep in name or name.endswith(".safetensors"):  # a checkpoint: two may share a file name
        safe += "-" + hashlib.sha256(os.path.realpath(name).encode()).hexdigest()[:8]
    if corruption:
        safe += "." + corruption.replace(":", "-")
    if out:
        return Path(out).with_name(f"{Path(out).stem}.{safe}{suffix}")
    root = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "mclx" / "probe"
    where = hashlib.sha256(os.path.realpath(t.data).encode()).hexdigest()[:8]
    return root / f"{t.name}-{where}.{safe}{suffix}"
