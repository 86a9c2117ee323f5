"""An embed run's bookkeeping, the boundary every engine reports to.

An engine (the local decoder pool, a Ray cluster) decodes and encodes; it tells the
:class:`Ledger` that a file is finished (:meth:`Ledger.finished_file`) or failed
(:meth:`Ledger.failed_file`) and calls :meth:`Ledger.tick` after each step. The ledger keeps the
rest: the records in input order, the journal (written every ``JOURNAL_EVERY_S``, after which a
file's embeddings leave memory), the progress bar, the summary and ``--fail-fast``.
"""

from __future__ import annotations

import contextlib
import os
import sys
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

import numpy as np

from mclx.embed.file import fill_record
from mclx.embed.plan import EmbedPlan, EmbedSettings
from mclx.embed.windows import Window
from mclx.errors import MclxError
from mclx.signals import StopRequest
from mclx.store.journal import Journal
from mclx.store.records import FileRecord, RowRef

JOURNAL_EVERY_S = float(os.environ.get("MCLX_JOURNAL_EVERY_S", "2.0"))  # tests shorten it


@dataclass
class EmbedSummary:
    output: str
    files: int = 0
    ok: int = 0
    failed: int = 0
    skipped: int = 0  # already in the store or journal from an earlier run
    audio_s: float = 0.0  # audio embedded by this run
    wall_s: float = 0.0
    failures: list[tuple[str, str]] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)  # e.g. journal chunks set aside as damaged
    # Rank 0 of a torchrun job (see embed_part): the rows it merged from ``merged_from`` rank stores.
    merged_rows: int | None = None
    merged_from: int = 0
    # Seconds spent in each stage of the run, summed over its occurrences: "plan", "resume",
    # "engine", "journal", "store" and the engine's own (see its module). Benchmarks read them
    # (`python -m benchmarks.embed --breakdown`); --json does not print them.
    stage_s: dict[str, float] = field(default_factory=dict)

    def add_time(self, stage: str, seconds: float) -> None:
        self.stage_s[stage] = self.stage_s.get(stage, 0.0) + seconds

    @contextlib.contextmanager
    def timed(self, stage: str) -> Iterator[None]:
        """Add the time the block takes to ``stage`` (two clock reads: cheap on any path)."""
        t0 = time.perf_counter()
        try:
            yield
        finally:
            self.add_time(stage, time.perf_counter() - t0)

    @property
    def xrt(self) -> float:
        return self.audio_s / self.wall_s if self.wall_s > 0 else 0.0

    def as_json(self) -> dict[str, Any]:
        return {
            "output": self.output,
            "files": self.files,
            "ok": self.ok,
            "failed": self.failed,
            "skipped": self.skipped,
            "audio_s": round(self.audio_s, 3),
            "wall_s": round(self.wall_s, 3),
            "x_realtime": round(self.xrt, 1),
            "failures": [{"path": p, "error": e} for p, e in self.failures],
        }


class Ledger:
    """What one embed run has done: a record per input (kept from an earlier run, failed at stat,
    pending, then finished), the files still to do (``todo``, indices into ``files``), the
    unjournaled records, the bar and the summary. Engines read ``files``, ``todo`` and ``plan``."""

    def __init__(
        self,
        files: Sequence[str],
        records: list[FileRecord | None],
        todo: list[int],
        plan: EmbedPlan,
        journal: Journal,
        summary: EmbedSummary,
        on_progress: Callable[[EmbedSummary], None] | None = None,
    ) -> None:
        self.files, self.records, self.todo = files, records, todo
        self.plan, self.journal, self.summary = plan, journal, summary
        self.on_progress = on_progress
        self.unjournaled: list[FileRecord] = []
        self.finished = 0
        self.interrupted = False  # a signal stopped the engine: the run ends in Interrupted
        self.stopped_early = False  # --fail-fast met a failure: the journal is kept
        self._last_journal = 0.0  # when the journal was last written (monotonic seconds)
        self._started = 0.0  # when the engine began (monotonic seconds)
        self._bar: Any = None

    @property
    def settings(self) -> EmbedSettings:
        return self.plan.settings

    def begin(self) -> bool:
        """Start the bar of files (shown on a terminal unless --quiet) and the journal's clock;
        False when nothing is to be embedded, or --fail-fast met a file it could not stat."""
        if not self.todo:
            return False
        if self.settings.fail_fast and any(r is not None and r.status == "failed" for r in self.records):
            self.stopped_early = True  # an input could not even be stat-ed: the first failure
            return False
        from tqdm import tqdm

        self._last_journal = self._started = time.monotonic()
        self._bar = tqdm(
            total=len(self.todo),
            unit="file",
            disable=self.settings.quiet or not sys.stderr.isatty(),
            file=sys.stderr,
            dynamic_ncols=True,
        )
        return True

    def tick(self, realtime: bool = False) -> bool:
        """What every engine does after each step: False when --fail-fast met a failure (the
        engine stops); else journals every JOURNAL_EVERY_S and, when files finished, advances the
        bar (with the audio done and its speed when ``realtime``) and reports the summary to
        ``on_progress``."""
        if self.settings.fail_fast and self.summary.failed:
            self.stopped_early = True
            return False
        now = time.monotonic()
        if now - self._last_journal >= JOURNAL_EVERY_S:
            self.write_journal()
            self._last_journal = now
        done = self.finished - self._bar.n
        if done:
            if realtime:
                audio_s = self.summary.audio_s
                rate = audio_s / (now - self._started)
                self._bar.set_postfix_str(f"{audio_s / 3600:.2f} h audio, {rate:.0f}x realtime")
            self._bar.update(done)
            if self.on_progress is not None:
                self.on_progress(self.summary)
        return True

    def close(self) -> None:
        """The engine has stopped: close the bar and journal what is left."""
        self._bar.close()
        self.write_journal()
        self.summary.failed = 0  # recounted from the records by embed()

    def finished_file(
        self, index: int, emb: np.ndarray, windows: Sequence[Window], duration_s: float
    ) -> None:
        """File ``index`` is embedded: (k, D) ``emb``, one row per window."""
        rec = self.records[index]
        assert rec is not None
        error = fill_record(rec, emb, windows, duration_s, self.plan)
        if error:
            self._set_failed(rec, error)
            return
        self.summary.audio_s += rec.duration_s
        self.finished += 1
        self.unjournaled.append(rec)

    def failed_file(self, index: int, reason: str) -> None:
        rec = self.records[index]
        assert rec is not None
        self._set_failed(rec, reason)

    def _set_failed(self, rec: FileRecord, reason: str) -> None:
        rec.status, rec.error = "failed", reason
        rec.global_, rec.segments, rec.segment_count = None, None, 0
        self.summary.failed += 1
        self.finished += 1
        self.unjournaled.append(rec)

    def write_journal(self) -> None:
        try:
            with self.summary.timed("journal"):
                chunk = self.journal.append(self.unjournaled, self.plan.dim)
        except OSError as exc:
            raise MclxError(
                f"cannot write the journal in {self.journal.dir}: {exc.strerror or exc}; "
                "what it holds is kept, run the same command again to resume"
            ) from None
        if chunk is not None:
            for row, rec in enumerate(self.unjournaled):
                rec.drop_embeddings(RowRef(chunk, row))
        self.unjournaled = []


class Engine(Protocol):
    """Where an embed run's files are decoded and encoded; the ledger and :func:`mclx.embed.embed`
    keep the rest (resume, journal, store)."""

    def make_plan(self, settings: EmbedSettings, argv: Sequence[str] | None) -> EmbedPlan: ...

    def run(self, ledger: Ledger, stop: StopRequest) -> None:
        """Embed ``ledger.todo``, reporting each file to the ledger; set ``ledger.interrupted``
        when ``stop`` is set."""
        ...
