"""The embed pipeline: file list -> decoder processes -> windows -> batched encoder -> store.

Windows from many files are packed into full batches; decoding runs in other processes
while the encoder works; finished files go to the journal every few seconds and the
store is built from it at the end, rows in input order. Once journaled, a file's embeddings
leave memory: only its keys stay, to order the store.
"""

from __future__ import annotations

import json
import math
import os
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Protocol

import numpy as np

from mclx import __version__
from mclx.devices import autocast_dtype, resolve_device, resolve_precision
from mclx.errors import Interrupted, MclxError, UsageError
from mclx.inputs import check_output_writable, select_shard, shard_store_path
from mclx.journal import Journal
from mclx.signals import StopRequest, stop_on_signals
from mclx.store import FileRecord, RowRef, read_attrs, read_keys, settings_mismatch, write_store
from mclx.windows import Window

LEVELS = ("global", "segment", "both")
RESAMPLE_IN = ("auto", "decoders", "encoder")
JOURNAL_EVERY_S = float(os.environ.get("MCLX_JOURNAL_EVERY_S", "2.0"))  # tests shorten it


@dataclass(frozen=True)
class EmbedSettings:
    model: str | None = None  # bundled name or checkpoint path; None: the default model
    level: str = "global"
    window_s: float | None = None  # None: the model's window
    hop_s: float | None = None  # None: = window
    batch_size: int | None = None  # None: automatic
    device: str = "auto"
    precision: str = "auto"
    workers: int | None = None
    overwrite: bool = False
    fail_fast: bool = False
    quiet: bool = False
    decode_timeout_s: float = 120.0
    # Where audio is resampled to the model's rate: "decoders" (libsoxr, in the decoder processes),
    # "encoder" (a sinc kernel on the encoder's device), "auto": decoders on the CPU, encoder on CUDA.
    resample_in: str = "auto"
    # The store this run's store will be merged into (a torchrun rank's shard store: OUTPUT.h5);
    # like the output itself, it must have been made with the same settings unless overwriting.
    merged_into: str | None = None


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


@dataclass
class _Active:
    """A file being decoded: its resampler, window cutter and the embeddings so far."""

    index: int
    resampler: Any
    cutter: Any
    native_rate: int
    native_frames: int = 0
    windows: list[Any] = field(default_factory=list)
    embeddings: list[np.ndarray] = field(default_factory=list)
    ended: bool = False

    @property
    def complete(self) -> bool:
        return self.ended and len(self.embeddings) == len(self.windows)


def _stat(path: str) -> tuple[int, int, str]:
    try:
        st = os.stat(path)
    except OSError as exc:
        return -1, -1, f"cannot stat: {exc.strerror}"
    return st.st_size, st.st_mtime_ns, ""


@dataclass(frozen=True)
class EmbedPlan:
    """An embed run's settings resolved and validated once, before any work.

    Window and hop are in samples at the model's rate; ``resample_to`` is the rate the
    decoders resample to (None: the encoder's device resamples); ``attrs`` are the store's
    root attributes, which a resumed store must match.
    """

    settings: EmbedSettings
    encoder: Any  # the model, on ``device``, in eval mode
    device: Any  # torch.device
    precision: str  # fp32 | bf16 | fp16
    rate: int
    window: int
    hop: int
    batch_size: int
    workers: int
    resample_to: int | None
    attrs: dict[str, Any]

    @property
    def keep_segments(self) -> bool:
        return self.settings.level in ("segment", "both")

    @property
    def dim(self) -> int:
        return int(self.encoder.spec.embedding_dim)


MAX_WINDOW_S = 600.0  # a batch of windows is held in memory: 10 minutes of audio per window at most


def make_plan(settings: EmbedSettings, argv: Sequence[str] | None = None) -> EmbedPlan:
    """Resolve ``settings`` (device, precision, model, window, hop, batch, decoders); UsageError if bad."""
    from mclx.decoders import default_workers
    from mclx.models.registry import load_model

    if settings.level not in LEVELS:
        raise UsageError(f"--level {settings.level}: expected one of {', '.join(LEVELS)}")
    if settings.resample_in not in RESAMPLE_IN:
        raise UsageError(f"--resample-in {settings.resample_in}: expected one of {', '.join(RESAMPLE_IN)}")
    if settings.workers is not None and settings.workers < 1:
        raise UsageError("--workers must be at least 1")
    if settings.batch_size is not None and settings.batch_size < 1:
        raise UsageError("--batch-size must be at least 1")
    for flag, value in (("--window", settings.window_s), ("--hop", settings.hop_s)):
        if value is not None and not (math.isfinite(value) and value <= MAX_WINDOW_S):
            raise UsageError(f"{flag} {value:g}: expected a number of seconds, at most {MAX_WINDOW_S:g}")
    device = resolve_device(settings.device)
    precision = resolve_precision(settings.precision, device.type)
    loaded = load_model(settings.model)
    encoder = loaded.encoder.to(device).eval()
    spec = encoder.spec
    window_s = spec.window_s if settings.window_s is None else settings.window_s
    hop_s = window_s if settings.hop_s is None else settings.hop_s
    window, hop = round(window_s * spec.sample_rate), round(hop_s * spec.sample_rate)
    for flag, seconds, samples in (("--window", window_s, window), ("--hop", hop_s, hop)):
        if not samples >= 1:  # also NaN; a hop of 0 samples would never advance
            raise UsageError(
                f"{flag} {seconds:g}: must be at least one sample ({1 / spec.sample_rate:.2g} s at "
                f"{spec.sample_rate} Hz)"
            )
    batch_size = settings.batch_size or (256 if device.type == "cuda" else 32)
    # By default resampling is spread over the decoder processes on the CPU and runs on the GPU
    # there; either way can be chosen on any device (the tests run both on the CPU).
    where = settings.resample_in
    if where == "auto":
        where = "decoders" if device.type == "cpu" else "encoder"
    attrs: dict[str, Any] = {
        "format": "mclx-embeddings",
        "format_version": 1,
        "mclx_version": __version__,
        "model": loaded.name,
        "model_sha256": loaded.sha256,
        "model_config": json.dumps({"architecture": spec.architecture, **spec.args}, sort_keys=True),
        "sample_rate": spec.sample_rate,
        "window_s": float(window_s),
        "hop_s": float(hop_s),
        "dim": spec.embedding_dim,
        "level": settings.level,
        "pooling": "mean",
        "precision": precision,
        "created_utc": datetime.now(UTC).isoformat(timespec="seconds"),
        "argv": json.dumps(list(argv) if argv is not None else []),
    }
    return EmbedPlan(
        settings=settings,
        encoder=encoder,
        device=device,
        precision=precision,
        rate=spec.sample_rate,
        window=window,
        hop=hop,
        batch_size=batch_size,
        workers=settings.workers or default_workers(),
        resample_to=spec.sample_rate if where == "decoders" else None,
        attrs=attrs,
    )


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
    processes; :class:`mclx.ray.RayEngine`: a Ray cluster). The journal, the resume rule and the
    store are the same whatever the engine.

    Raises UsageError before any work for bad settings or an unwritable output,
    StoreError for a store made with other settings, Interrupted on SIGINT/SIGTERM.
    """

    started = time.monotonic()
    check_output_writable(output)
    plan = make_plan(settings, argv) if engine is None else engine.make_plan(settings, argv)
    attrs = plan.attrs

    out_path = Path(output)
    # Rows that may be reused (same path, size and mtime): keys only, the embeddings stay on disk.
    previous: list[FileRecord] = []
    journal = Journal(out_path)
    # An interrupted --overwrite run with these settings is carried on, with or without the flag:
    # its journal is kept, and the old store is still the one being replaced.
    resumed_overwrite = journal.pending_overwrite(attrs)
    replacing = settings.overwrite or resumed_overwrite
    for store in [output, *([settings.merged_into] if settings.merged_into else [])]:
        if Path(store).exists() and not replacing:
            bad = settings_mismatch(read_attrs(store), attrs)
            if bad:
                raise UsageError(
                    f"{store}: existing store was made with other settings ({', '.join(bad)}); "
                    "use --overwrite to replace it"
                )
    if out_path.exists() and not replacing:
        previous = read_keys(out_path)
    try:
        try:
            previous += journal.open(
                attrs, fresh=settings.overwrite and not resumed_overwrite, overwrite=replacing
            )
        except OSError as exc:
            raise UsageError(f"cannot write the journal {journal.dir}: {exc.strerror or exc}") from None
        for stale in out_path.parent.glob(f".{out_path.name}.tmp-*"):  # a store build that was killed
            stale.unlink(missing_ok=True)
        done = {r.key: r for r in previous}  # later records win
        summary = EmbedSummary(output=output, files=len(files), warnings=list(journal.damaged))
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
        work = EmbedWork(files, records, todo, plan, journal, summary)
        run = EmbedRun(work) if engine is None else engine.make_run(work)
        with stop_on_signals(second_interrupts=False) as stop:
            run.loop(stop, on_progress)
        if run.stopped_by_signal:
            raise Interrupted(f"interrupted: {len(todo) - run.finished} files left; run again to resume")
        # The store: this run's inputs in input order, then (unless replacing) the rows an earlier
        # run made for other inputs, in their earlier order.
        final = [r for r in records if r is not None and r.status != "pending"]
        current = {r.path for r in final}
        if not replacing:
            final += [r for r in _latest(previous) if r.path not in current]
        try:
            write_store(out_path, attrs, final)  # streamed from the journal and the earlier store
        except OSError as exc:
            raise MclxError(
                f"cannot write {output}: {exc.strerror or exc}; the finished files are kept in "
                f"{journal.dir}, run the same command again to resume"
            ) from None
        if not run.stopped_early:
            journal.remove()
    finally:
        journal.close()
    for r in records:
        if r is None or r.status == "pending":
            continue
        if r.status == "ok":
            summary.ok += 1
        else:
            summary.failed += 1
            summary.failures.append((r.path, r.error))
    summary.wall_s = time.monotonic() - started
    return summary


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


def _share_cores(pool: Any, workers: int) -> None:
    """Give torch's intra-op threads the cores the decoders do not need right now.

    Decoders and encoder share the CPU. When decoded blocks pile up the encoder is the
    bottleneck and gets every core; when they run short, the decoders get theirs back.
    """
    import torch

    cores = os.cpu_count() or 1
    backlog = pool.events.qsize() / pool.events.maxsize
    want = cores if backlog > 0.5 else max(1, cores - workers) if backlog < 0.1 else torch.get_num_threads()
    if want != torch.get_num_threads():
        torch.set_num_threads(want)


def _latest(records: list[FileRecord]) -> list[FileRecord]:
    latest: dict[str, FileRecord] = {}
    for r in records:
        latest[r.path] = r
    return list(latest.values())


@dataclass(frozen=True)
class EmbedWork:
    """What one embed run works on: the inputs in order, a record per input (kept from an earlier
    run, failed at stat, or pending), the indices of the pending ones, and where results go."""

    files: Sequence[str]
    records: list[FileRecord | None]
    todo: list[int]
    plan: EmbedPlan
    journal: Journal
    summary: EmbedSummary


class Engine(Protocol):
    """Where an embed run's files are decoded and encoded; :func:`embed` keeps the rest."""

    def make_plan(self, settings: EmbedSettings, argv: Sequence[str] | None) -> EmbedPlan: ...

    def make_run(self, work: EmbedWork) -> EmbedRun: ...


def encode(plan: EmbedPlan, x: Any) -> Any:
    """(n, window) windows on ``plan.device``, n <= batch size -> (batch size, D) float32 embeddings.

    Always a full batch (zero rows pad a short one): the same shapes every time keep each row's
    result independent of which other windows share its batch. Rows past n embed the padding.
    """
    import torch

    if len(x) < plan.batch_size:
        x = torch.cat([x, x.new_zeros(plan.batch_size - len(x), plan.window)])
    dtype = autocast_dtype(plan.precision)
    with (
        torch.inference_mode(),
        torch.autocast(plan.device.type, dtype=dtype or torch.float32, enabled=dtype is not None),
    ):
        return plan.encoder(x).float()


def fill_record(
    rec: FileRecord, emb: np.ndarray, windows: Sequence[Window], duration_s: float, plan: EmbedPlan
) -> str:
    """Fill ``rec`` from its file's (k, D) window embeddings; returns "" or why the file failed.

    The global row is the mean of the windows (or the encoder's aggregator over them, in time
    order: :meth:`mclx.models.Encoder.aggregate_windows`); with segments, each window's span in seconds
    (a zero-padded short file's one window ends at the file's end).
    """
    if not np.isfinite(emb).all():
        return "encoder produced non-finite values"
    rec.status, rec.error = "ok", ""
    rec.duration_s = duration_s
    rec.segment_count = len(windows)
    rec.global_ = plan.encoder.aggregate_windows(emb)
    if plan.keep_segments:
        rec.segments = emb
        rec.starts = np.array([w.start / plan.rate for w in windows], dtype=np.float64)
        rec.ends = np.array([min(w.end / plan.rate, duration_s) for w in windows], dtype=np.float64)
        if rec.segment_count == 1 and windows[0].end < plan.window:
            rec.ends[0] = duration_s
    return ""


class EmbedRun:
    """State of one embed loop: active files, the pending windows, the unjournaled records.

    :meth:`loop` is this process's pipeline (decoder processes, one encoder); another engine
    overrides it and hands finished files to :meth:`_finish` and :meth:`_fail`, and journals
    them with :meth:`_journal`, as this one does.
    """

    def __init__(self, work: EmbedWork) -> None:
        self.files, self.records, self.todo = work.files, work.records, work.todo
        self.plan, self.journal, self.summary = work.plan, work.journal, work.summary
        self.active: dict[int, _Active] = {}
        self.pending: list[tuple[_Active, Any]] = []  # (file, (window,) tensor)
        # Launched batches whose embeddings are not taken in yet: (files of the rows, (B, D), event)
        self.inflight: list[tuple[list[_Active], Any, Any]] = []
        self._pinned: dict[tuple[int, tuple[int, ...]], Any] = {}
        self._flip = 0
        self.unjournaled: list[FileRecord] = []
        self.finished = 0
        self.stopped_by_signal = False
        self.stopped_early = False
        self._last_journal = 0.0  # when the journal was last written (monotonic seconds)

    def loop(self, stop: StopRequest, on_progress: Callable[[EmbedSummary], None] | None) -> None:
        import torch

        from mclx.decoders import DecoderPool

        if not self._work_to_do():
            return
        workers = self.plan.workers
        threads = torch.get_num_threads()
        bar = self._start_progress()
        t0 = time.monotonic()

        def realtime(now: float) -> str:
            audio_s = self.summary.audio_s
            return f"{audio_s / 3600:.2f} h audio, {audio_s / (now - t0):.0f}x realtime"

        timeout = self.plan.settings.decode_timeout_s
        pool = DecoderPool(
            self.files, self.todo, workers, timeout_s=timeout, resample_to=self.plan.resample_to
        )
        try:
            while pool.busy or self.pending or self.inflight:
                if stop.is_set():
                    self.stopped_by_signal = True
                    break
                if len(self.pending) >= self.plan.batch_size or (not pool.busy and self.pending):
                    if self.plan.device.type == "cpu":
                        _share_cores(pool, workers)
                    self._forward()
                else:
                    self._drain()  # waiting for decoders anyway: take in the last batch first
                    for event in pool.poll(timeout=0.2) if pool.busy else []:
                        self._handle(event)
                if not self._after_step(bar, on_progress, realtime):
                    break
        finally:
            torch.set_num_threads(threads)
            pool.close()
            bar.close()
            self._journal()
        self.summary.failed = 0  # recounted from the records by embed()

    def _start_progress(self) -> Any:
        """The run's bar of files (shown on a terminal unless --quiet); starts the journal's clock."""
        from tqdm import tqdm

        self._last_journal = time.monotonic()
        return tqdm(
            total=len(self.todo),
            unit="file",
            disable=self.plan.settings.quiet or not sys.stderr.isatty(),
            file=sys.stderr,
            dynamic_ncols=True,
        )

    def _after_step(
        self, bar: Any, on_progress: Callable[[EmbedSummary], None] | None,
        postfix: Callable[[float], str] | None = None,
    ) -> bool:  # fmt: skip
        """What every loop does after each step: False when --fail-fast met a failure (the loop
        ends); else journals every JOURNAL_EVERY_S and, when files finished, advances ``bar``
        (its postfix from ``postfix(now)``) and reports the summary to ``on_progress``."""
        if self.plan.settings.fail_fast and self.summary.failed:
            self.stopped_early = True
            return False
        now = time.monotonic()
        if now - self._last_journal >= JOURNAL_EVERY_S:
            self._journal()
            self._last_journal = now
        done = self.finished - bar.n
        if done:
            if postfix is not None:
                bar.set_postfix_str(postfix(now))
            bar.update(done)
            if on_progress is not None:
                on_progress(self.summary)
        return True

    def _work_to_do(self) -> bool:
        """False when nothing is to be embedded, or --fail-fast met a file it could not stat."""
        if not self.todo:
            return False
        if self.plan.settings.fail_fast and any(r is not None and r.status == "failed" for r in self.records):
            self.stopped_early = True  # an input could not even be stat-ed: the first failure
            return False
        return True

    def _handle(self, event: Any) -> None:
        import torch

        from mclx.resample import TorchStreamResampler
        from mclx.windows import WindowCutter

        if event.kind == "start":
            resampler = TorchStreamResampler(event.rate, self.plan.rate, self.plan.device)
            cutter = WindowCutter(self.plan.window, self.plan.hop)
            self.active[event.index] = _Active(event.index, resampler, cutter, event.native_rate)
            return
        state = self.active.get(event.index)
        if event.kind == "block" and state is not None:
            block = torch.from_numpy(event.block).to(self.plan.device, non_blocking=True)
            samples = state.resampler.push(block)
            self._enqueue(state, *state.cutter.push(samples))
        elif event.kind == "end" and state is not None:
            state.native_frames = event.frames
            self._enqueue(state, *state.cutter.push(state.resampler.flush()))
            self._enqueue(state, *state.cutter.finish())
            state.ended = True
            if not state.windows:  # decoder read frames that resampled to nothing
                self._fail(event.index, "no audio frames")
            elif state.complete:
                self._complete(state)
        elif event.kind == "error":
            self.pending = [(s, x) for s, x in self.pending if s.index != event.index]
            self._fail(event.index, event.reason)

    def _enqueue(self, state: _Active, windows: list[Any], chunks: list[Any]) -> None:
        state.windows.extend(windows)
        self.pending.extend((state, c) for c in chunks)

    def _forward(self) -> None:
        """Launch the encoder on the next batch, then take in the results of the one before.

        The batch is stacked in one call (no per-row copies), and on CUDA its embeddings come
        back through a pinned buffer with a non-blocking copy, read only after the next batch
        has been launched, so the device never waits for the host. The CPU runs the same code.
        """
        import torch

        batch, self.pending = self.pending[: self.plan.batch_size], self.pending[self.plan.batch_size :]
        out = encode(self.plan, torch.stack([chunk for _, chunk in batch]))
        if self.plan.device.type == "cuda":
            host = self._host_buffer(out.shape)
            host.copy_(out, non_blocking=True)
            done = torch.cuda.Event()
            done.record()
            self.inflight.append(([state for state, _ in batch], host, done))
        else:
            self.inflight.append(([state for state, _ in batch], out, None))
        self._drain(keep=1)

    def _host_buffer(self, shape: Any) -> Any:
        """One of two pinned (batch, D) buffers, in turn: at most two batches are in flight."""
        import torch

        self._flip = 1 - self._flip
        key = (self._flip, tuple(shape))
        if key not in self._pinned:
            self._pinned[key] = torch.empty(tuple(shape), dtype=torch.float32, pin_memory=True)
        return self._pinned[key]

    def _drain(self, keep: int = 0) -> None:
        """Hand the embeddings of all but the newest ``keep`` in-flight batches to their files."""
        while len(self.inflight) > keep:
            states, host, done = self.inflight.pop(0)
            if done is not None:
                done.synchronize()
            emb = host.numpy().copy()  # the pinned buffer is reused two batches later
            for row, state in enumerate(states):
                if state.index not in self.active:
                    continue
                state.embeddings.append(emb[row])
                if state.complete:
                    self._complete(state)

    def _complete(self, state: _Active) -> None:
        del self.active[state.index]
        emb = np.stack(state.embeddings).astype(np.float32)  # (k, D)
        self._finish(state.index, emb, state.windows, state.native_frames / state.native_rate)

    def _finish(self, index: int, emb: np.ndarray, windows: Sequence[Window], duration_s: float) -> None:
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

    def _fail(self, index: int, reason: str) -> None:
        self.active.pop(index, None)
        rec = self.records[index]
        assert rec is not None
        self._set_failed(rec, reason)

    def _set_failed(self, rec: FileRecord, reason: str) -> None:
        rec.status, rec.error = "failed", reason
        rec.global_, rec.segments, rec.segment_count = None, None, 0
        self.summary.failed += 1
        self.finished += 1
        self.unjournaled.append(rec)

    def _journal(self) -> None:
        try:
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
