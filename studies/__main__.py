"""python -m studies run STUDY... [--smoke] [--tables-only] [--runs DIR] [--docs DIR] [--data DIR]
   python -m studies join STUDY --from DIR [--docs DIR]

Trains every run of the studies (two at a time, one thread each), embeds the probe tasks with
each trained encoder, probes them against the baselines and writes the evidence to
``docs/studies/<study>/`` and the tables to ``docs/studies.md``. Killed at any point, the same
command carries on. ``--tables-only`` rebuilds docs/studies.md (and with matplotlib each study's
figure.png) from docs/studies/ alone; ``--smoke`` runs every cell for a few steps (runs and
evidence under --runs, docs untouched). ``join`` adds the evidence another runner wrote (its
``--docs`` folder, e.g. from another machine) for runs missing here, probed there: the reports'
shared feature sets must score alike to the last digit (studies/join.py).
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

from studies import figures, tables
from studies.claims import ClaimError
from studies.runner import Settings, run_studies
from studies.spec import StudyError, available, load_study

REPO = Path(__file__).resolve().parent.parent


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m studies", description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)  # fmt: skip
    sub = ap.add_subparsers(dest="command", required=True)
    run = sub.add_parser("run", help="run studies end to end (resumable)")
    run.add_argument("studies", nargs="*", help=f"default: all ({', '.join(available())})")
    run.add_argument("--runs", default="", help="run directories and stores (default ~/mclx-runs)")
    run.add_argument("--docs", default="", help="evidence folder (default docs/studies of the repository)")
    run.add_argument(
        "--data", default=os.environ.get("MCLX_DATA", ""), help="the corpus (default $MCLX_DATA)"
    )
    run.add_argument("--jobs", type=int, default=2, help="jobs at a time, one thread each (default 2)")
    run.add_argument("--smoke", action="store_true", help="a few steps per cell, one probe seed")
    run.add_argument("--tables-only", action="store_true", help="rebuild the tables from --docs only")
    run.add_argument("--cheapest-first", action="store_true",
                     help="train the runs that see the fewest segments per step first, second seeds "
                          "included (the most finished runs in a session of limited time)")  # fmt: skip
    run.add_argument("--quiet", action="store_true")
    again = sub.add_parser("refresh", help="probe one study's finished runs again (the runner's job)")
    again.add_argument("study")
    again.add_argument("--runs", required=True)
    again.add_argument("--docs", required=True)
    again.add_argument("--data", required=True)
    again.add_argument("--seeds", type=int, default=5)
    join = sub.add_parser("join", help="add another runner's evidence of runs missing here")
    join.add_argument("study")
    join.add_argument("--from", dest="source", required=True, help="the other runner's --docs folder")
    join.add_argument("--docs", default="", help="evidence folder (default docs/studies of the repository)")
    args = ap.parse_args(argv)
    if args.command == "refresh":
        return refresh(args)
    if args.command == "join":
        return join_evidence(args)
    runs = Path(args.runs or ("~/mclx-runs-smoke" if args.smoke else "~/mclx-runs")).expanduser()
    docs = (
        Path(args.docs)
        if args.docs
        else (runs / "docs" / "studies" if args.smoke else REPO / "docs" / "studies")
    )
    if args.tables_only:
        try:
            tables.check_readings(docs)
        except ClaimError as exc:  # a reading claims what its evidence does not say: nothing written
            print(f"python -m studies: reading: {exc}", file=sys.stderr)
            return 1
        for figure in figures.write(docs):
            print(figure, file=sys.stderr)
        print(tables.write(docs), file=sys.stderr)
        return 0
    try:
        studies = [load_study(name) for name in args.studies or available()]
        if args.smoke:
            studies = [study.smoke() for study in studies]
    except StudyError as exc:
        print(f"python -m studies: {exc}", file=sys.stderr)
        return 2
    if not args.data:
        print(
            "python -m studies: set MCLX_DATA or pass --data (the corpus of ../shared/data)", file=sys.stderr
        )
        return 2
    settings = Settings(
        jobs=args.jobs,
        smoke=args.smoke,
        probe_seeds=1 if args.smoke else 5,
        quiet=args.quiet,
        cheapest_first=args.cheapest_first,
    )
    return run_studies(studies, runs, docs, Path(args.data).expanduser().resolve(), settings)


def join_evidence(args: argparse.Namespace) -> int:
    """Joins ``--from``'s evidence of one study into ``--docs`` (all or nothing); then rebuild the
    tables with ``run --tables-only``."""
    from studies.join import JoinError, join_study

    docs = Path(args.docs) if args.docs else REPO / "docs" / "studies"
    into, other = docs / args.study, Path(args.source) / args.study
    for folder in (into, other):
        if not (folder / "study.json").exists():
            print(f"python -m studies: {folder}: no study evidence (study.json) there", file=sys.stderr)
            return 2
    try:
        joined = join_study(into, other)
    except JoinError as exc:
        print(f"python -m studies: join: {exc}; nothing joined", file=sys.stderr)
        return 1
    for line in joined or ["nothing new"]:
        print(f"joined {line}", file=sys.stderr)
    return 0


def refresh(args: argparse.Namespace) -> int:
    """One study's probes over its finished runs; one refresh of a study at a time (a lock)."""
    import fcntl

    from studies import derived, evidence
    from studies.runner import Layout

    study = load_study(args.study)
    runs, data = Path(args.runs), Path(args.data)
    layout = Layout(runs / study.name, runs / "stores", Path(args.docs) / study.name, data)
    layout.docs.mkdir(parents=True, exist_ok=True)
    layout.runs.mkdir(parents=True, exist_ok=True)
    with open(layout.runs / "refresh.lock", "a") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        evidence.refresh(study, layout, derived.task_dirs(study, data), args.seeds)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
