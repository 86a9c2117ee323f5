"""``mclx embed --engine ray``: the audio on a Ray cluster, the journal and store on the driver.

The driver does what a local run does with everything but the audio: it lists and stats the
files, skips those already done, journals finished files and builds the store
(:func:`mclx.embed.embed`). The cluster does the audio: Ray Data reads the file list, CPU
tasks decode files into windows, packed into full batches (:func:`mclx.ray.files.decode_task`),
an actor pool encodes them (one model per actor, loaded and checked once), and the window
embeddings stream back to the driver (``iter_batches``), which pools each file once all its
windows are in. Memory is bounded by Ray Data's streaming back-pressure; no shared file system
is needed for the output.

Faults are Ray's to repair: decode tasks are retried, encoder actors restarted with their
in-flight batches resubmitted, lost blocks rebuilt from their lineage. A window that arrives
twice (a task retried after part of its output got through) is keyed by (file, window) and
counts once, so every file reaches the store once.
"""

from __future__ import annotations

import contextlib
import functools
import logging
import math
import os
import socket
import sys
import time
import warnings
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np

from mclx.embed.file import encode
from mclx.embed.ledger import EmbedSummary, Ledger
from mclx.embed.plan import Cluster, EmbedPlan, EmbedSettings, make_plan
from mclx.embed.run import embed
from mclx.embed.windows import Window
from mclx.errors import MclxError, UsageError, WeightsError, one_line
from mclx.ray.files import decode_task, files_per_task
from mclx.signals import StopRequest

EXTRA = "pip install 'mclx[ray]'"
# Test hook: "N:MARKER" makes one encoder actor exit on its N-th batch, once (MARKER is created then).
ACTOR_EXIT_HOOK = "MCLX_RAY_TEST_ACTOR_EXIT"
# Test hook: seconds an encoder actor waits before each batch (a run slow enough for a test to
# take a node away while files are in flight, however fast the machine).
ACTOR_DELAY_HOOK = "MCLX_RAY_TEST_ACTOR_DELAY_S"
ACTOR_STAGES = ("load", "idle", "call", "forward")  # what an encoder actor times (see run)
ACTOR_CPUS = 1  # CPUs (and torch threads) of an encoder actor on CPU nodes


def require_ray() -> Any:
    """The ``ray`` package with Ray Data, or a usage error naming the extra that installs it."""
    try:
        import ray
        import ray.data
    except ImportError:
        raise UsageError(f"--engine ray needs Ray, an optional extra: {EXTRA}") from None
    return ray


@dataclass(frozen=True)
class RaySettings:
    """Where and how wide a Ray run is."""

    # None: the cluster in RAY_ADDRESS or the one started on this machine, else a new local one;
    # "auto": a running cluster (an error when there is none); else a cluster's address.
    address: str | None = None
    actors: int | None = None  # encoder actors; None: one per GPU, else one per two CPUs


@dataclass(frozen=True)
class ClusterPlan:
    """How the encoder actors are placed, resolved once from the cluster's resources."""

    device: str  # "cuda" | "cpu": what each actor runs its model on
    actors: int
    cpus: float
    gpus: float
    # CPUs each CPU actor reserves, and the torch threads it runs (Ray sets OMP_NUM_THREADS so
    # only where the node's environment has none); None: a GPU actor, torch's own default.
    actor_cpus: int | None = ACTOR_CPUS

    @property
    def decoders(self) -> int:
        """Decode tasks the cluster runs at once: the CPUs the actors leave."""
        return max(1, int(self.cpus) - self.actors * (self.actor_cpus or 0))


def embed_on_ray(
    files: Sequence[str],
    output: str,
    settings: EmbedSettings | None = None,
    ray_settings: RaySettings = RaySettings(),
    argv: Sequence[str] | None = None,
    on_progress: Callable[[EmbedSummary], None] | None = None,
) -> EmbedSummary:
    """:func:`mclx.embed.embed` with the audio decoded and encoded on a Ray cluster.

    Same store, journal, resume rule and errors; connects to (or starts) the cluster first and
    disconnects at the end when this call connected.
    """
    ray = require_ray()
    if ray_settings.actors is not None and ray_settings.actors < 1:
        raise UsageError("--ray-actors must be at least 1")
    # Ray's driver prints what the cluster reports (a node lost, a worker killed) on stdout,
    # which holds results (`--json`): its messages are logs, and go to stderr.
    with contextlib.redirect_stdout(sys.stderr):
        connected_here = _connect(ray, ray_settings.address)
        try:
            engine = RayEngine(ray_settings)
            return embed(files, output, settings or EmbedSettings(), argv, on_progress, engine=engine)
        finally:
            if connected_here:
                ray.shutdown()


def _connect(ray: Any, address: str | None) -> bool:
    """Join the cluster (or start a local one); False when this process was already connected."""
    if ray.is_initialized():
        return False
    _check_reachable(address)
    # The driver's MCLX_* settings (journal cadence, test hooks) reach the workers too.
    env = {k: v for k, v in os.environ.items() if k.startswith("MCLX_")}
    try:
        ray.init(
            address=address,
            runtime_env={"env_vars": env} if env else None,
            logging_level="WARNING",
            log_to_driver=False,
            include_dashboard=False,
            configure_logging=True,
        )
    except (ConnectionError, ValueError, RuntimeError) as exc:
        where = f"at {address}" if address not in (None, "auto") else "(--ray-address auto)"
        raise UsageError(f"--ray-address: cannot reach a Ray cluster {where}: {one_line(exc)}") from None
    return True


def _check_reachable(address: str | None, timeout_s: float = 10.0) -> None:
    """A HOST:PORT that nothing answers on is a usage error at once (Ray itself waits minutes)."""
    host, _, port = (address or "").rpartition(":")
    if not host or "://" in host or not port.isdigit():
        return  # None, "auto", "local", "ray://...": Ray's own checks are quick
    try:
        socket.create_connection((host.strip("[]"), int(port)), timeout=timeout_s).close()
    except OSError as exc:
        raise UsageError(
            f"--ray-address {address}: cannot reach a Ray cluster there ({exc.strerror or one_line(exc)})"
        ) from None


class RayEngine:
    """The :class:`mclx.embed.ledger.Engine` of a Ray cluster (the driver is already connected):
    window embeddings come back from the actors; a file is reported to the ledger once all its
    windows are in."""

    def __init__(self, ray_settings: RaySettings) -> None:
        self.ray_settings = ray_settings
        self.cluster: ClusterPlan | None = None
        self.arriving: dict[int, _Arriving] = {}
        self.settled: set[int] = set()
        self.dataset: Any = None  # the run's Ray Dataset, once built: its stats() for benchmarks
        self.forwards = 0  # encoder passes the actors ran (full batches, padded when short)

    def make_plan(self, settings: EmbedSettings, argv: Sequence[str] | None) -> EmbedPlan:
        """The run's plan as the actors will run it (:func:`mclx.embed.plan.make_plan` for the
        cluster's resources), and how many actors run it."""
        import ray

        resources = ray.cluster_resources()
        cpus, gpus = float(resources.get("CPU", 0)), float(resources.get("GPU", 0))
        plan = make_plan(settings, argv, Cluster(cpus, gpus))
        device = plan.device_type
        if device == "cuda":
            self.cluster = ClusterPlan(device, self.ray_settings.actors or int(gpus), cpus, gpus, None)
        else:  # half the CPUs encode, half decode: on the CPU the two cost about the same per file
            actors = self.ray_settings.actors or max(1, int(cpus) // (2 * ACTOR_CPUS))
            self.cluster = ClusterPlan(device, actors, cpus, gpus, ACTOR_CPUS)
        return plan

    def run(self, ledger: Ledger, stop: StopRequest) -> None:
        """Stages timed (:attr:`EmbedSummary.stage_s`): "start" (the dataset built), "first_batch"
        (the driver waiting for the first embeddings: actors started, models loaded, the first
        files decoded and encoded), "wait" (waiting for the others), "take" (the driver taking
        them in: pooling, journal, bar) and the actors' own, summed over actors: "actor.load"
        (construction and model load), "actor.idle" (waiting for windows), "actor.call" (a batch
        in and out) and "actor.forward" (the encoder's part of it)."""
        if not ledger.begin():
            return
        summary = ledger.summary
        with summary.timed("start"):
            self.dataset = self._dataset(ledger)
        batches = iter(self.dataset.iter_batches(batch_size=None, batch_format="numpy"))
        try:
            for batch in _clocked(_ray_errors(batches), summary):
                if stop.is_set():
                    ledger.interrupted = True
                    break
                with summary.timed("take"):
                    self._take(ledger, batch)
                    going = ledger.tick()
                if not going:
                    break
            else:
                for index in set(ledger.todo) - self.settled:  # never expected: say so in the store
                    ledger.failed_file(index, "no result came back from the Ray cluster")
        finally:
            close = getattr(batches, "close", None)
            if close is not None:
                close()  # stops the dataset's execution when the loop ended early
            ledger.close()

    def _dataset(self, ledger: Ledger) -> Any:
        """File list -> decode tasks (window chunks) -> encoder actor pool -> window embeddings.

        Faults: decode tasks keep Ray Data's ``max_retries=-1`` (a task lost with its worker or
        node runs again; lost blocks are rebuilt from their lineage); encoder actors are
        restarted (``max_restarts=-1``) and their in-flight batches resubmitted
        (``max_task_retries=-1``). A file that cannot be decoded is a row, never a task error.
        Decoding stays in CPU tasks of its own, not fused into the actors: a CPU left to
        the decoders is not idle while an actor encodes.

        Block sizes: each decode task takes several files and cuts their windows into chunks of
        one batch (:func:`mclx.ray.files.decode_task`), so the actors' batches are full. The
        repartition to one batch per block (fused into the decode tasks) splits a task's output,
        which Ray Data otherwise keeps as one block (30 MB for 16 files of 30 s), so that the
        actors take it batch by batch and the driver gets each batch's embeddings as they are
        made. A task's output is still released when the task's call ends, not chunk by chunk
        (Ray 2.60): the first encoder call waits for the first decode task.
        """
        import ray

        assert self.cluster is not None, "make_plan comes first"
        context = ray.data.DataContext.get_current()
        context.enable_progress_bars = False  # the run's own bar counts files
        logging.getLogger("ray.data").setLevel(logging.ERROR)  # its progress lines, its notes
        # Workers do not share the driver's working directory: they get absolute paths, the
        # store keeps the paths as given.
        items = [{"index": i, "path": os.path.abspath(ledger.files[i])} for i in ledger.todo]
        plan, cluster = ledger.plan, self.cluster
        actor_settings = replace(plan.settings, device=cluster.device, quiet=True, overwrite=False)
        decode = functools.partial(
            decode_task, rate=plan.rate, window=plan.window, hop=plan.hop, chunk=plan.batch_size
        )
        files = ray.data.from_items(items, override_num_blocks=min(len(items), 1000))
        per_task = files_per_task(len(items), cluster.decoders)
        windows = files.map_batches(decode, batch_size=per_task, num_cpus=1).repartition(
            target_num_rows_per_block=plan.batch_size
        )
        sha256 = plan.attrs["model_sha256"]
        per_actor: dict[str, Any] = (
            {"num_gpus": 1} if cluster.actor_cpus is None else {"num_cpus": cluster.actor_cpus}
        )
        with warnings.catch_warnings():
            # Per-call remote arguments are deprecated in Ray 2.60 (removed in 2.64, hence the
            # pin below it) with no other way yet to state an actor's restarts; a stage with a
            # remote-arguments function is also never fused into the decode tasks before it.
            warnings.filterwarnings("ignore", message=".*ray_remote_args_fn.*deprecated")
            return windows.map_batches(
                _WindowEncoder,
                fn_constructor_kwargs={
                    "settings": actor_settings,
                    "model_sha256": sha256,
                    "threads": cluster.actor_cpus,
                },
                batch_size=plan.batch_size,
                compute=ray.data.ActorPoolStrategy(min_size=1, max_size=cluster.actors),
                ray_remote_args_fn=_actor_restarts,
                **per_actor,
            )

    def _take(self, ledger: Ledger, batch: dict[str, np.ndarray]) -> None:
        """Window embeddings from the actors; a file is finished when all its windows are in."""
        for stage in ACTOR_STAGES:  # the actors' clocks, on the first row of each of their batches
            ledger.summary.add_time(f"actor.{stage}", float(batch[f"{stage}_s"].sum()))
        self.forwards += int(batch["forwards"].sum())
        for row in range(len(batch["index"])):
            index = int(batch["index"][row])
            if index in self.settled:
                continue  # a late duplicate, or a window of a file that failed since
            error = str(batch["error"][row])
            if error:
                self.arriving.pop(index, None)
                self.settled.add(index)
                ledger.failed_file(index, error)
                continue
            file = self.arriving.setdefault(index, _Arriving())
            window = Window(int(batch["start"][row]), int(batch["end"][row]))
            file.rows[int(batch["window"][row])] = (window, batch["embedding"][row])
            if int(batch["count"][row]) >= 0:
                file.count, file.duration_s = int(batch["count"][row]), float(batch["duration_s"][row])
            if len(file.rows) == file.count:
                del self.arriving[index]
                self.settled.add(index)
                ordered = [file.rows[k] for k in range(file.count)]
                emb = np.stack([e for _, e in ordered]).astype(np.float32)  # (k, D)
                ledger.finished_file(index, emb, [w for w, _ in ordered], file.duration_s)


@dataclass
class _Arriving:
    """A file whose windows are coming back from the actors, in any order."""

    rows: dict[int, tuple[Window, np.ndarray]] = field(default_factory=dict)  # window number -> (D,)
    count: int = -1  # windows in the file, known once its last chunk arrived
    duration_s: float = math.nan


def _clocked(batches: Iterator[Any], summary: EmbedSummary) -> Iterator[Any]:
    """The batches; the driver's time blocked on the first goes to stage "first_batch", on the
    others to "wait"."""
    stage = "first_batch"
    while True:
        with summary.timed(stage):
            batch = next(batches, None)
        if batch is None:
            return
        stage = "wait"
        yield batch


def _actor_restarts() -> dict[str, Any]:
    return {"max_restarts": -1, "max_task_retries": -1}


def _ray_errors(batches: Iterator[Any]) -> Iterator[Any]:
    """The batches; a failed Ray job ends in one line (the journal keeps what is done)."""
    import ray.exceptions

    try:
        yield from batches
    except (ray.exceptions.RayError, RuntimeError) as exc:
        cause: BaseException = exc
        while isinstance(inner := getattr(cause, "cause", None), BaseException):  # RayTaskError wraps
            cause = inner  # the error raised in the task or actor
        if isinstance(cause, MclxError):
            raise type(cause)(str(cause)) from None
        raise MclxError(
            f"the Ray job failed: {one_line(cause)}; the finished files are kept, run the same "
            "command again to resume"
        ) from None


def _exit_once_hook() -> tuple[int, Path] | None:
    spec = os.environ.get(ACTOR_EXIT_HOOK, "")
    if not spec:
        return None
    n, marker = spec.split(":", 1)
    return int(n), Path(marker)


class _WindowEncoder:
    """Ray Data actor: the model loaded and checked once, then batches of windows -> embeddings."""

    def __init__(self, settings: EmbedSettings, model_sha256: str, threads: int | None = None) -> None:
        """``threads``: torch's intra-op threads, the CPUs the actor reserved (None: torch's default)."""
        born = time.perf_counter()
        if threads is not None:
            import torch

            torch.set_num_threads(threads)
        self.plan = make_plan(settings)
        if self.plan.attrs["model_sha256"] != model_sha256:
            raise WeightsError(
                f"--model {settings.model}: this Ray worker's weights differ from the driver's "
                f"(sha256 {self.plan.attrs['model_sha256'][:12]} vs {model_sha256[:12]}); "
                "a checkpoint must be the same file on every node"
            )
        self.calls = 0
        self.exit_hook = _exit_once_hook()
        self.delay_s = float(os.environ.get(ACTOR_DELAY_HOOK) or 0)
        self.idle_since = time.perf_counter()
        self.load_s = self.idle_since - born  # reported with the first batch

    def __call__(self, batch: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        """Window rows (see :func:`decode_task`) -> the same rows with ``embedding`` (rows, D)
        float32 instead of ``samples`` (NaN on error rows), and the actor's clocks (seconds, on
        the first row): ``load_s``, ``idle_s`` (since its last batch), ``call_s``, ``forward_s``,
        and ``forwards``, the encoder passes run."""
        import torch

        called = time.perf_counter()
        self.calls += 1
        if self.exit_hook is not None and self.calls == self.exit_hook[0] and not self.exit_hook[1].exists():
            self.exit_hook[1].touch()
            os._exit(1)
        if self.delay_s:
            time.sleep(self.delay_s)
        plan = self.plan
        samples = batch.pop("samples")
        ok = np.flatnonzero(batch["error"] == "")
        emb = np.full((len(samples), plan.dim), np.nan, np.float32)
        forward_s = 0.0
        for lo in range(0, len(ok), plan.batch_size):
            rows = ok[lo : lo + plan.batch_size]
            x = torch.from_numpy(np.ascontiguousarray(samples[rows])).to(plan.device)
            t0 = time.perf_counter()
            emb[rows] = encode(plan, x)[: len(rows)].cpu().numpy()
            forward_s += time.perf_counter() - t0
        batch["embedding"] = emb
        done = time.perf_counter()
        idle_s = called - self.idle_since
        clocks = {"load": self.load_s, "idle": idle_s, "call": done - called, "forward": forward_s}
        for stage in ACTOR_STAGES:
            batch[f"{stage}_s"] = np.zeros(len(emb), np.float64)
            batch[f"{stage}_s"][0] = clocks[stage]
        batch["forwards"] = np.zeros(len(emb), np.int64)
        batch["forwards"][0] = -(-len(ok) // plan.batch_size)
        self.load_s, self.idle_since = 0.0, done
        return batch
