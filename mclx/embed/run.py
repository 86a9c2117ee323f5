"""An embed run: resume, then an engine, then the store.

:func:`embed` reads what an earlier run left (the store, the journal), hands the files still to
do to an engine (the local decoder pool, or a Ray cluster) through a
:class:`~mclx.embed.ledger.Ledger`, and builds the store from the journal at the end, rows in
input order. Once journaled, a file's embeddings leave memory: only its keys stay, to order the
store. :func:`embed_part` is a torchrun rank's share of a job.
"""

from __future__ import annotations

import math
import os
import time
from collections.abc import Callable, Sequence
from dataclasses import replace
from pathlib import Path

from mclx.embed.ledger import EmbedSummary, Engine, Ledger
from mclx.embed.local import LocalEngine
from mclx.embed.plan import EmbedPlan, EmbedSettings
from mclx.errors import Interrupted, MclxError, UsageError
from mclx.inputs import check_output_writable, select_shard, shard_store_path
from mclx.signals import stop_on_signals
from mclx.store.journal import Journal
from mclx.store.read import read_attrs, read_keys
from mclx.store.records import FileRecord, settings_mismatch
from mclx.store.write import write_store


def embed(
    files: Sequence[str],
    output: str,
    settings: EmbedSettings = EmbedSettings(),
    argv: Sequence[str] | None = None,
    on_progress: Callable[[EmbedSummary], None] | None = None,
    engine: Engine | None = None,
) -> EmbedSummary:
    """Embed ``files`` into the store ``output``, resuming whatever an earlier run left.

    ``engine``: where the files are decoded and encoded (None: this process and its decoder
    processes; :class:`mclx.ray.engine.RayEngine`: a Ray cluster). The journal, the resume rule
    and the store are the same whatever the engine.

    Raises UsageError before any work for bad settings or an unwritable output,
    StoreError for a store made with other settings, Interrupted on SIGINT/SIGTERM.
    """
    started = time.monotonic()
    check_output_writable(output)
    engine = engine or LocalEngine()
    plan = engine.make_plan(settings, argv)
    planned = time.monotonic()
    journal = Journal(Path(output))
    # An interrupted --overwrite run with these settings is carried on, with or without the flag:
    # its journal is kept, and the old store is still the one being replaced.
    resumed_overwrite = journal.pending_overwrite(plan.attrs)
    replacing = settings.overwrite or resumed_overwrite
    if not replacing:
        _check_resumable(output, settings, plan)
    # Rows that may be reused (same path, size and mtime): keys only, the embeddings stay on disk.
    previous = read_keys(output) if Path(output).exists() and not replacing else []
    try:
        try:
            previous += journal.open(
                plan.attrs, fresh=settings.overwrite and not resumed_overwrite, overwrite=replacing
            )
        except OSError as exc:
            raise UsageError(f"cannot write the journal {journal.dir}: {exc.strerror or exc}") from None
        for stale in Path(output).parent.glob(f".{Path(output).name}.tmp-*"):  # a killed store build
            stale.unlink(missing_ok=True)
        summary = EmbedSummary(output=output, files=len(files), warnings=list(journal.damaged))
        records, todo = _records(files, previous, summary)
        summary.add_time("plan", planned - started)
        summary.add_time("resume", time.monotonic() - planned)
        ledger = Ledger(files, records, todo, plan, journal, summary, on_progress)
        with stop_on_signals(second_interrupts=False) as stop, summary.timed("engine"):
            engine.run(ledger, stop)
        if ledger.interrupted:
            raise Interrupted(f"interrupted: {len(todo) - ledger.finished} files left; run again to resume")
        with summary.timed("store"):
            _commit(output, plan, records, [] if replacing else previous, journal)
        if not ledger.stopped_early:
            journal.remove()
    finally:
        journal.close()
    _count(records, summary)
    summary.wall_s = time.monotonic() - started
    return summary


def _check_resumable(output: str, settings: EmbedSettings, plan: EmbedPlan) -> None:
    """The output (and the store it will be merged into) must have been made with these settings."""
    for store in [output, *([settings.merged_into] if settings.merged_into else [])]:
        if Path(store).exists():
            bad = settings_mismatch(read_attrs(store), plan.attrs)
            if bad:
                raise UsageError(
                    f"{store}: existing store was made with other settings ({', '.join(bad)}); "
                    "use --overwrite to replace it"
                )


def _stat(path: str) -> tuple[int, int, str]:
    try:
        st = os.stat(path)
    except OSError as exc:
        return -1, -1, f"cannot stat: {exc.strerror}"
    return st.st_size, st.st_mtime_ns, ""


def _records(
    files: Sequence[str], previous: list[FileRecord], summary: EmbedSummary
) -> tuple[list[FileRecord | None], list[int]]:
    """A record per input (kept from ``previous`` when its path, size and mtime match and it was
    ok; failed when it cannot be stat-ed; else pending) and the indices of the pending ones."""
    done = {r.key: r for r in previous}  # later records win
    records: list[FileRecord | None] = [None] * len(files)
    todo: list[int] = []
    for i, path in enumerate(files):
        size, mtime, err = _stat(path)
        prior = done.get((path, size, mtime))
        if prior is not None and prior.status == "ok":
            records[i] = prior
            summary.skipped += 1
        elif err:
            records[i] = FileRecord(path, "failed", err, math.nan, size, mtime)
        else:
            records[i] = FileRecord(path, "pending", "", math.nan, size, mtime)
            todo.append(i)
    return records, todo


def _commit(
    output: str,
    plan: EmbedPlan,
    records: list[FileRecord | None],
    previous: list[FileRecord],
    journal: Journal,
) -> None:
    """Build the store: this run's inputs in input order, then the rows ``previous`` (an earlier
    run's, unless replacing) holds for other inputs, in their earlier order."""
    final = [r for r in records if r is not None and r.status != "pending"]
    current = {r.path for r in final}
    final += [r for r in _latest(previous) if r.path not in current]
    try:
        write_store(Path(output), plan.attrs, final)  # streamed from the journal and the earlier store
    except OSError as exc:
        raise MclxError(
            f"cannot write {output}: {exc.strerror or exc}; the finished files are kept in "
            f"{journal.dir}, run the same command again to resume"
        ) from None


def _latest(records: list[FileRecord]) -> list[FileRecord]:
    latest: dict[str, FileRecord] = {}
    for r in records:
        latest[r.path] = r
    return list(latest.values())


def _count(records: list[FileRecord | None], summary: EmbedSummary) -> None:
    for r in records:
        if r is None or r.status == "pending":
            continue
        if r.status == "ok":
            summary.ok += 1
        else:
            summary.failed += 1
            summary.failures.append((r.path, r.error))


def embed_part(
    files: Sequence[str],
    output: str,
    settings: EmbedSettings = EmbedSettings(),
    shard: tuple[int, int] | None = None,
    argv: Sequence[str] | None = None,
) -> EmbedSummary:
    """:func:`embed` of this process's part of ``files``, the whole list of inputs.

    ``shard`` (I, N): the files whose path hash falls in shard I of N, into ``output``. Without
    it, under torchrun, each rank embeds its share into ``OUTPUT.h5.shards/rank-R-of-N.h5`` (its
    own store, resumable on its own) and rank 0 then merges every rank's store into ``output``,
    rows in the order of ``files``, so that the job ends with one store. Otherwise: every file.
    """
    from mclx.distributed import merge_after_barrier, torchrun_rank

    job = torchrun_rank() if shard is None else None
    if job is None:
        return embed(select_shard(list(files), shard), output, settings, argv)
    target = shard_store_path(output, job.rank, job.world)
    Path(target).parent.mkdir(exist_ok=True)
    mine = select_shard(list(files), (job.rank, job.world))
    summary = embed(mine, target, replace(settings, merged_into=output), argv)
    summary.merged_rows = merge_after_barrier(output, job.rank, job.world, order=files)
    summary.merged_from = job.world
    return summary
