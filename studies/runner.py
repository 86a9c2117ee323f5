"""Runs studies end to end: train every run, embed the probe tasks with it, keep the evidence.

Resumable at any point. A run's directory (``RUNS/<study>/<run>/``) is an ordinary `mclx train`
output: a finished run has ``done.json``, an interrupted one ``state.pt`` and is resumed with
``--resume``. A run whose directory is gone but whose evidence is committed (another machine,
a later session) is restored from the evidence: embedded and probed again, never retrained.
Training processes are started in their own session, so a runner killed with
SIGKILL leaves them running; the next runner finds them by their directory's lock and waits
for them instead of starting a second copy. SIGINT/SIGTERM stop the runner and its children
cleanly (`mclx train` checkpoints and exits 130).

CPU and wall time: each child's utime + stime (its own and its waited-for children's) and the
seconds since it started, read from /proc every few seconds and added up per run in ``cpu.json``
and ``wall.json`` (one entry per process, keyed by pid and start time), so that the time spent
before an interruption, and in every session of a resumed run, is counted too.
"""

from __future__ import annotations

import fcntl
import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from studies import derived
from studies.spec import PROBE_SEEDS, REFERENCE, Run, Study

REPO = Path(__file__).resolve().parent.parent
SMOKE_OVERRIDES = [
    "train.steps=3", "train.batch_size=4", "train.warmup_steps=0", "train.checkpoint_every=1",
    "train.log_every=1",
]  # fmt: skip
POLL_S = 5.0


@dataclass(frozen=True)
class Layout:
    """Where a study's runs, stores and evidence live."""

    runs: Path  # RUNS/<study>: run directories (outside the repository)
    stores: Path  # RUNS/stores: embedding stores, shared by the studies (baselines once)
    docs: Path  # DOCS/<study>: the evidence committed to the repository
    data: Path  # the corpus ($MCLX_DATA)

    def run_dir(self, run: Run) -> Path:
        return self.runs / run.name

    def store(self, task: str, features: str) -> Path:
        return self.stores / derived.store_task(task) / f"{features}.h5"


@dataclass(frozen=True)
class Settings:
    jobs: int = 2
    smoke: bool = False
    probe_seeds: int = PROBE_SEEDS
    quiet: bool = False
    cheapest_first: bool = False  # train order: segments per step, then the studies' own order


def thread_env() -> dict[str, str]:
    """One thread per job: the jobs share the cores, not each job's operators. The children import
    this checkout's ``studies`` and ``mclx`` (PYTHONPATH), whatever their working directory."""
    path = os.pathsep.join(p for p in (str(REPO), os.environ.get("PYTHONPATH", "")) if p)
    return {**os.environ, "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1", "OPENBLAS_NUM_THREADS": "1",
            "PYTHONPATH": path}  # fmt: skip


def mclx_command() -> list[str]:
    return [sys.executable, "-m", "mclx"]


@dataclass
class Job:
    """A child process, or a process some earlier runner started (``adopted``)."""

    key: str
    argv: list[str]
    on_done: Callable[[int], None]
    lock: Path | None = None  # a training directory's lock: held while its process runs
    stdin: str = ""
    log: Path | None = None
    cpu_file: Path | None = None  # and wall.json beside it
    proc: subprocess.Popen[bytes] | None = None
    pid: int = 0
    started: float = 0.0
    cpu: dict[str, float] = field(default_factory=dict)
    wall: dict[str, float] = field(default_factory=dict)
    rerun: bool = False  # asked for again while running: a later copy must run after it (refresh)

    @property
    def training(self) -> bool:
        return self.lock is not None  # only a training job holds a run directory's lock


def _proc_times(pid: int) -> tuple[str, float, float] | None:
    """(pid@start key, utime + stime + cutime + cstime, wall seconds since it started) of a
    process; None once it is gone."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        uptime = float(Path("/proc/uptime").read_text().split()[0])
    except OSError:
        return None
    hz = os.sysconf("SC_CLK_TCK")
    ticks = sum(int(x) for x in fields[11:15])
    start = int(fields[19])  # field 22 of stat: start time in ticks after boot
    return f"{pid}@{start}", ticks / hz, uptime - start / hz


def lock_held(path: Path) -> bool:
    """Whether another process holds ``path``'s flock (a training run writing its directory)."""
    if not path.exists():
        return False
    with open(path, "a") as f:
        try:
            fcntl.flock(f, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            return True
        fcntl.flock(f, fcntl.LOCK_UN)
    return False


def _both(first: Callable[[int], None], then: Callable[[int], None]) -> Callable[[int], None]:
    """A job callback that runs ``first``, then ``then``, with the same exit code."""

    def call(rc: int) -> None:
        first(rc)
        then(rc)

    return call


class Scheduler:
    """At most ``slots`` jobs at a time, taken from the front of the queue, except that training
    never waits behind a backlog of other jobs: while no training job runs, a free slot takes the
    first training job queued (embedding and probing fill the other slots)."""

    def __init__(self, slots: int, log: Callable[[str], None]) -> None:
        self.slots = slots
        self.queue: list[Job] = []
        self.running: list[Job] = []
        self.log = log
        self.stopping = False

    def push(self, job: Job, at: int | None = None) -> None:
        """Queues ``job`` (at position ``at``, else last); a job with the key of one already
        queued or running is not started twice: its callback runs when that one ends."""
        for other in (*self.queue, *([] if job.rerun else self.running)):
            if other.key == job.key:
                other.on_done = _both(other.on_done, job.on_done)
                return
        self.queue.insert(len(self.queue) if at is None else at, job)

    def _start(self, job: Job) -> None:
        job.started = time.monotonic()
        pid_file = job.lock.with_name("runner.pid") if job.lock else None
        if job.lock and lock_held(job.lock):
            job.pid = int(pid_file.read_text()) if pid_file and pid_file.exists() else 0
            self.log(f"{job.key}: already running (pid {job.pid or '?'}), waiting for it")
        else:
            out = open(job.log, "ab") if job.log else subprocess.DEVNULL  # noqa: SIM115
            job.proc = subprocess.Popen(
                job.argv, stdin=subprocess.PIPE, stdout=out, stderr=out, env=thread_env(),
                start_new_session=True,
            )  # fmt: skip
            if job.log:
                out.close()  # type: ignore[union-attr]
            assert job.proc.stdin is not None
            job.proc.stdin.write(job.stdin.encode())
            job.proc.stdin.close()
            job.pid = job.proc.pid
            if pid_file:
                pid_file.write_text(str(job.pid))
            self.log(f"{job.key}: started (pid {job.pid})")
        if job.cpu_file and job.cpu_file.exists():
            job.cpu = json.loads(job.cpu_file.read_text())
        wall_file = job.cpu_file.with_name("wall.json") if job.cpu_file else None
        if wall_file and wall_file.exists():
            job.wall = json.loads(wall_file.read_text())
        self.running.append(job)

    def _poll_cpu(self, job: Job) -> None:
        if not (job.cpu_file and job.pid):
            return
        now = _proc_times(job.pid)
        if now is not None:
            key, cpu, wall = now
            job.cpu[key] = max(cpu, job.cpu.get(key, 0.0))
            job.wall[key] = max(wall, job.wall.get(key, 0.0))
            job.cpu_file.write_text(json.dumps(job.cpu, sort_keys=True))
            job.cpu_file.with_name("wall.json").write_text(json.dumps(job.wall, sort_keys=True))

    def _finished(self, job: Job) -> int | None:
        if job.proc is not None:
            return job.proc.poll()
        if job.lock and lock_held(job.lock):  # adopted: running until its lock is released
            return None
        return 0  # adopted and gone: on_done checks what it left

    def step(self) -> bool:
        """Start and reap jobs; False once nothing is queued or running."""
        for job in list(self.running):
            self._poll_cpu(job)
            rc = self._finished(job)
            if rc is not None:
                self.running.remove(job)
                try:
                    job.on_done(rc)
                except Exception as exc:  # logged; the other jobs go on
                    self.log(f"{job.key}: after it ended: {type(exc).__name__}: {exc}")
        while not self.stopping and self.queue and len(self.running) < self.slots:
            self._start(self.queue.pop(self._next()))
        return bool(self.running or (self.queue and not self.stopping))

    def _next(self) -> int:
        if not any(j.training for j in self.running):
            return next((i for i, j in enumerate(self.queue) if j.training), 0)
        return 0

    def stop(self) -> None:
        """SIGTERM every child (training checkpoints and exits 130) and wait for them."""
        self.stopping = True
        for job in self.running:
            if job.proc is not None and job.proc.poll() is None:
                job.proc.send_signal(signal.SIGTERM)
        for job in self.running:
            if job.proc is not None:
                job.proc.wait()
            self._poll_cpu(job)


class StudyRunner:
    """Queues a study's jobs: baseline stores, then each run's training and its stores."""

    def __init__(self, study: Study, layout: Layout, settings: Settings, sched: Scheduler) -> None:
        self.study, self.layout, self.settings, self.sched = study, layout, settings, sched
        self.tasks = derived.task_dirs(study, layout.data)  # {task name: directory}
        self.waiting: dict[str, int] = {}  # features -> store jobs not yet done
        self.failed: list[str] = []

    # -- what to run ------------------------------------------------------------------------
    def baseline_jobs(self) -> None:
        for features in (*self.study.baselines, REFERENCE):
            tasks = list(self.study.tasks) if features == REFERENCE else list(self.tasks)
            self._store_jobs(features, features, tasks, front=False, then=self.refresh)

    def train_job(self, run: Run) -> Job | None:
        from studies import evidence

        d = self.layout.run_dir(run)
        if (d / "done.json").exists() or evidence.restore_run(run, self.layout):
            evidence.keep_run(self.study, run, self.layout)
            self._after_training(run)
            return None
        d.mkdir(parents=True, exist_ok=True)
        argv = [*mclx_command(), "train", str(run.cell.config), "--out", str(d)]
        for item in [*run.overrides, *(SMOKE_OVERRIDES if self.settings.smoke else [])]:
            argv += ["--set", item]
        if (d / "state.pt").exists():
            argv.append("--resume")
        return Job(f"{self.study.name}/{run.name}: train", argv, lambda rc: self._trained(run, rc),
                   lock=d / ".lock", log=d / "train.log", cpu_file=d / "cpu.json")  # fmt: skip

    def _trained(self, run: Run, rc: int) -> None:
        d = self.layout.run_dir(run)
        steps = _last_step(d / "metrics.jsonl")
        wanted = _configured_steps(d / "config.toml")
        if rc == 0 and (steps or 0) < (wanted or 1):  # an adopted process that did not finish
            self.sched.log(f"{self.study.name}/{run.name}: stopped at step {steps}, resuming")
            job = self.train_job(run)
            if job is not None:
                self.sched.push(job, at=0)
            return
        if rc != 0 or steps is None or wanted is None or steps < wanted:
            why = f"exit {rc}" if rc else f"stopped at step {steps} of {wanted}"
            self.failed.append(f"{self.study.name}/{run.name}: training {why} (see {d / 'train.log'})")
            self.sched.log(self.failed[-1])
            return
        cpu = json.loads((d / "cpu.json").read_text()) if (d / "cpu.json").exists() else {}
        wall = json.loads((d / "wall.json").read_text()) if (d / "wall.json").exists() else {}
        done = {"steps": steps, "cpu_s": round(sum(cpu.values()), 1), "wall_s": round(sum(wall.values()), 1)}
        (d / "done.json").write_text(json.dumps(done) + "\n")
        self.sched.log(f"{self.study.name}/{run.name}: trained ({steps} steps)")
        from studies import evidence

        evidence.keep_run(self.study, run, self.layout)  # kept at once: the stores may take a while
        self.sched.log(f"{self.study.name}/{run.name}: evidence kept in {self.layout.docs}")
        self._after_training(run)

    def _after_training(self, run: Run) -> None:
        tasks = list(self.tasks)
        encoder = str(self.layout.run_dir(run) / "encoder.safetensors")
        self._store_jobs(run.name, encoder, tasks, front=True, then=self.refresh)

    def _store_jobs(
        self, features: str, model: str, tasks: list[str], front: bool, then: Callable[[], None]
    ) -> None:
        """One `mclx embed` job per task store not yet complete; ``then`` once all are."""
        todo = list(dict.fromkeys(derived.store_task(t) for t in tasks))  # a store embedded once
        todo = [t for t in todo if not _complete(self.layout.store(t, features))]
        self.waiting[features] = len(todo)
        if not todo:
            then()
            return

        jobs = []
        for task in todo:
            store = self.layout.store(task, features)
            store.parent.mkdir(parents=True, exist_ok=True)
            paths = derived.task_paths(task, self.tasks[task])
            argv = [*mclx_command(), "embed", "-", str(store), "--model", model, "--workers", "1", "--quiet"]

            def done(rc: int, task: str = task, target: Path = store) -> None:
                if rc not in (0, 1):  # 1: some clips failed, recorded in the store
                    self.failed.append(f"{self.study.name}: embedding {task} with {features}: exit {rc}")
                    self.sched.log(self.failed[-1])
                    return
                target.with_suffix(".done").write_text("")
                self.waiting[features] -= 1
                if self.waiting[features] == 0:
                    then()

            key = f"embed {task} with {features}"
            jobs.append(Job(key, argv, done, stdin="\n".join(paths) + "\n"))
        for i, job in enumerate(jobs):
            self.sched.push(job, at=i if front else None)

    def refresh(self) -> None:
        """Queues a probe of every task over the finished runs and the baselines ready then, as a
        job of its own (`python -m studies refresh`): it takes a core like the others, and the
        scheduler goes on meanwhile. Requests made while one is queued are one request."""
        from studies import evidence

        if not evidence.finished_runs(self.study, self.layout):
            return
        where = ["--runs", str(self.layout.runs.parent), "--docs", str(self.layout.docs.parent)]
        argv = [sys.executable, "-m", "studies", "refresh", self.study.name, *where,
                "--data", str(self.layout.data), "--seeds", str(self.settings.probe_seeds)]  # fmt: skip

        def done(rc: int) -> None:
            if rc != 0:
                self.failed.append(
                    f"{self.study.name}: probing failed (exit {rc}, see {self.layout.runs / 'refresh.log'})"
                )
                self.sched.log(self.failed[-1])

        job = Job(f"refresh {self.study.name}", argv, done, log=self.layout.runs / "refresh.log", rerun=True)
        self.sched.push(job, at=0)

    def refresh_now(self) -> None:
        """The probes of :meth:`refresh`, in this process (the final pass, nothing else running)."""
        from studies import evidence

        if evidence.finished_runs(self.study, self.layout):
            evidence.refresh(self.study, self.layout, self.tasks, self.settings.probe_seeds)


def _complete(store: Path) -> bool:
    return store.exists() and store.with_suffix(".done").exists()


def _last_step(metrics: Path) -> int | None:
    if not metrics.exists():
        return None
    lines = [ln for ln in metrics.read_text().splitlines() if ln.strip()]
    return int(json.loads(lines[-1])["step"]) if lines else None


def _configured_steps(config: Path) -> int | None:
    import tomllib

    if not config.exists():
        return None
    return int(tomllib.loads(config.read_text())["train"]["steps"])


def segments_per_step(run: Run) -> int:
    """Segments one track contributes to a step of the run's cell: its training cost per step."""
    from mclx.config import load_config
    from mclx.train.batch import effective_views, view_sizes

    return sum(view_sizes(effective_views(load_config(run.cell.config))))


def interleave(runners: list[StudyRunner]) -> list[tuple[StudyRunner, Run]]:
    """Runs in round-robin over the studies, each study's runs in its own order."""
    lists = [[(r, run) for run in r.study.runs()] for r in runners]
    out: list[tuple[StudyRunner, Run]] = []
    for i in range(max(len(x) for x in lists)):
        out += [x[i] for x in lists if i < len(x)]
    return out


def run_studies(
    studies: list[Study], runs_root: Path, docs_root: Path, data: Path, settings: Settings
) -> int:
    """Runs every study to the end; returns 0, or 1 when some run or store failed."""

    def log(message: str) -> None:
        if not settings.quiet:
            print(f"[{time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)

    os.environ["MCLX_DATA"] = str(data)  # the cells' configs name the corpus as ${MCLX_DATA}
    sched = Scheduler(settings.jobs, log)
    runners = []
    for study in studies:
        layout = Layout(runs_root / study.name, runs_root / "stores", docs_root / study.name, data)
        derived.prepare(study, data, log)
        runners.append(StudyRunner(study, layout, settings, sched))
    # Training first: the baselines' stores are queued behind the first trainings (a probe
    # needs them only once a run is trained), the runs' own stores ahead of further training.
    order = interleave(runners)
    if settings.cheapest_first:
        order.sort(key=lambda item: segments_per_step(item[1]))
    for i, (r, run) in enumerate(order):
        job = r.train_job(run)
        if job is not None:
            sched.push(job)
        if i == settings.jobs - 1:
            for r in runners:
                r.baseline_jobs()
    if len(interleave(runners)) < settings.jobs:
        for r in runners:
            r.baseline_jobs()

    def stop(signum: int, _frame: Any) -> None:
        log(f"signal {signum}: stopping the jobs (the same command resumes)")
        sched.stop()
        raise SystemExit(130)

    old = {s: signal.signal(s, stop) for s in (signal.SIGINT, signal.SIGTERM)}
    try:
        while sched.step():
            time.sleep(0.2 if settings.smoke else POLL_S)
    finally:
        for s, h in old.items():
            signal.signal(s, h)
    if not sched.stopping:
        for r in runners:
            r.refresh_now()
    from studies import figures, tables
    from studies.claims import ClaimError

    failed = []
    try:
        tables.check_readings(docs_root)
        figures.write(docs_root)
        tables.write(docs_root)
    except ClaimError as exc:  # the runs and their evidence are kept; the reading needs rewriting
        failed.append(f"reading: {exc}")
    failed += [f for r in runners for f in r.failed]
    for f in failed:
        log(f"failed: {f}")
    return 1 if failed else 0
