"""A pool of decoder processes that stream mono blocks of many files to the encoder process.

Each worker owns two pipes (tasks in, blocks out), so a worker that hangs or crashes is
killed and replaced without disturbing the others, and the file it held is reported
as failed. Pipes give back-pressure: a worker waits while the encoder is busy, so the
memory in flight is a few blocks per worker whatever the file lengths.
"""

from __future__ import annotations

import contextlib
import multiprocessing as mp
import os
import queue
import signal
import threading
import time
from collections import deque
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from multiprocessing.connection import Connection, wait
from typing import Any, cast

import numpy as np

from mclx.audio import BLOCK_FRAMES, decode_blocks
from mclx.errors import DecodeError, one_line
from mclx.resample import resampled_blocks

PREFETCH = 2  # files assigned to a worker at once: the current one and the next
QUEUE_EVENTS = 256  # decoded blocks held for the encoder: 256 x 256 KB at most


@dataclass(frozen=True)
class Event:
    """One message about one file.

    "start": ``rate`` of the blocks to come and the file's ``native_rate``; "block": a (frames,)
    float32 mono ``block``; "end": ``frames`` decoded at the native rate; "error": ``reason``.
    """

    kind: str
    index: int
    rate: int = 0
    native_rate: int = 0
    block: np.ndarray | None = None
    frames: int = 0
    reason: str = ""


def received_tasks(tasks: Connection) -> Iterator[tuple[int, str]]:
    """The (index, path) tasks a decoder process is sent, until the pool sends None or goes away."""
    while True:
        try:
            task = tasks.recv()
        except (EOFError, OSError):
            return
        if task is None:
            return
        yield task


def _worker_main(tasks: Connection, results: Connection, block_frames: int, resample_to: int | None) -> None:
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the parent decides when to stop
    # Codec libraries print warnings on fd 2 (libmpg123 on damaged frames); every failure
    # reaches the parent as a message instead, so keep the user's terminal clean.
    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, 2)
    os.close(devnull)
    for index, path in received_tasks(tasks):
        try:
            _decode_one(index, path, results, block_frames, resample_to)
        except DecodeError as exc:
            results.send(("error", index, str(exc)))
        except (BrokenPipeError, EOFError, ConnectionResetError):
            return
        except Exception as exc:  # a decoder bug must not stop the run: record it
            results.send(("error", index, f"{type(exc).__name__}: {one_line(exc)}"))


def _decode_one(
    index: int, path: str, results: Connection, block_frames: int, resample_to: int | None
) -> None:
    """Stream one file's blocks, resampled to ``resample_to`` (libsoxr) when it is given."""
    frames = 0
    started = False
    for native, n, block in resampled_blocks(decode_blocks(path, block_frames), resample_to):
        if not started:
            results.send(("start", index, resample_to or native, native))
            started = True
        frames += n
        if len(block):
            results.send(("block", index, block))
    results.send(("end", index, frames))


@dataclass
class _Worker:
    process: Any
    tasks: Connection
    results: Connection
    assigned: deque[int] = field(default_factory=deque)
    last_progress: float = 0.0


class DecoderPool:
    """Decode ``paths[i]`` for every index in ``order``; events arrive per file in order."""

    def __init__(
        self,
        paths: Sequence[str],
        order: Sequence[int],
        workers: int,
        block_frames: int = BLOCK_FRAMES,
        timeout_s: float = 120.0,
        resample_to: int | None = None,
    ) -> None:
        """``resample_to``: resample in the decoders (when the encoder shares the CPU with them)."""
        self.paths = paths
        self.todo: deque[int] = deque(order)
        self.block_frames = block_frames
        self.timeout_s = timeout_s
        self.resample_to = resample_to
        self.ctx = mp.get_context("spawn")
        self.workers = [self._spawn() for _ in range(max(1, min(workers, len(order) or 1)))]
        for w in self.workers:
            self._fill(w)
        # A reader thread drains the pipes while the caller computes, so decoders never wait on
        # the encoder; the bounded queue passes back-pressure on when the encoder falls behind.
        self.remaining = len(order)
        self.events: queue.Queue[Event] = queue.Queue(maxsize=QUEUE_EVENTS)
        self._stop = threading.Event()
        self._failure: BaseException | None = None
        self._thread = threading.Thread(target=self._read_loop, name="mclx-decoder-reader", daemon=True)
        self._thread.start()

    def _spawn(self) -> _Worker:
        task_r, task_w = self.ctx.Pipe(duplex=False)
        res_r, res_w = self.ctx.Pipe(duplex=False)
        proc = self.ctx.Process(
            target=_worker_main, args=(task_r, res_w, self.block_frames, self.resample_to), daemon=True
        )
        proc.start()
        task_r.close()
        res_w.close()
        return _Worker(proc, task_w, res_r, last_progress=time.monotonic())

    def _fill(self, w: _Worker) -> None:
        while len(w.assigned) < PREFETCH and self.todo:
            index = self.todo.popleft()
            w.assigned.append(index)
            try:
                w.tasks.send((index, self.paths[index]))
            except OSError:  # the worker has died: _collect replaces it and hands its files on
                break
        w.last_progress = time.monotonic()

    @property
    def busy(self) -> bool:
        """True until every file has reported its end or its error through :meth:`poll`."""
        return self.remaining > 0

    def poll(self, timeout: float, limit: int = 16) -> list[Event]:
        """Up to ``limit`` events, waiting at most ``timeout`` s for the first."""
        if self._failure is not None:
            raise self._failure
        try:
            events = [self.events.get(timeout=timeout)]
        except queue.Empty:
            return []
        while len(events) < limit:
            try:
                events.append(self.events.get_nowait())
            except queue.Empty:
                break
        self.remaining -= sum(ev.kind in ("end", "error") for ev in events)
        return events

    def _read_loop(self) -> None:
        try:
            while not self._stop.is_set() and (self.todo or any(w.assigned for w in self.workers)):
                for ev in self._collect(0.2):
                    while not self._stop.is_set():
                        try:
                            self.events.put(ev, timeout=0.2)
                            break
                        except queue.Full:
                            continue
        except BaseException as exc:  # surfaced to the caller by poll()
            self._failure = exc

    def _collect(self, timeout: float) -> list[Event]:
        """Messages ready on the workers' pipes; replaces dead or stuck workers."""
        conns = {w.results: w for w in self.workers if w.assigned}
        events: list[Event] = []
        for ready in wait(list(conns), timeout):
            w = conns[cast(Connection, ready)]
            if not self._read_waiting(w, events):
                events.extend(self._replace(w, "decoder process died"))
        now = time.monotonic()
        for w in self.workers:
            if w.assigned and not w.process.is_alive():
                # What it sent before dying counts: a file it finished is not the one it died on.
                self._read_waiting(w, events)
                if w.assigned:
                    events.extend(self._replace(w, f"decoder process died (exit code {w.process.exitcode})"))
            elif w.assigned and now - w.last_progress > self.timeout_s:
                events.extend(self._replace(w, f"decoding timed out (no progress for {self.timeout_s:g} s)"))
        return events

    def _read_waiting(self, w: _Worker, events: list[Event]) -> bool:
        """Append the messages waiting on ``w``'s pipe to ``events``; False once the pipe is closed."""
        try:
            while w.assigned and w.results.poll():
                events.append(self._receive(w, w.results.recv()))
        except (EOFError, OSError):
            return False
        return True

    def _receive(self, w: _Worker, msg: tuple[Any, ...]) -> Event:
        w.last_progress = time.monotonic()
        kind, index = msg[0], msg[1]
        if kind == "start":
            return Event("start", index, rate=msg[2], native_rate=msg[3])
        if kind == "block":
            return Event("block", index, block=msg[2])
        w.assigned.popleft()
        event = Event("end", index, frames=msg[2]) if kind == "end" else Event(kind, index, reason=msg[2])
        self._fill(w)  # never raises: the file's end must not be lost to a worker that died since
        return event

    def _replace(self, w: _Worker, reason: str) -> list[Event]:
        """Kill a stuck or dead worker, fail its current file, hand the rest to a new one."""
        if w.process.is_alive():
            w.process.kill()
        w.process.join(5)
        lost = w.assigned.popleft()
        pending = list(w.assigned)
        for conn in (w.tasks, w.results):
            conn.close()
        fresh = self._spawn()
        self.workers[self.workers.index(w)] = fresh
        for index in pending:
            fresh.assigned.append(index)
            fresh.tasks.send((index, self.paths[index]))
        self._fill(fresh)
        return [Event("error", lost, reason=reason)]

    def close(self) -> None:
        self._stop.set()
        self._thread.join()
        for w in self.workers:
            with contextlib.suppress(OSError):
                w.tasks.send(None)
        deadline = time.monotonic() + 2
        for w in self.workers:
            w.process.join(max(0.0, deadline - time.monotonic()))
            if w.process.is_alive():
                w.process.kill()
                w.process.join(1)
            for conn in (w.tasks, w.results):
                conn.close()


def default_workers() -> int:
    """Decoder processes when none are asked for: this process's share of the cores (under
    torchrun the ranks on one machine share them), at most 16."""
    cores = max(1, (os.cpu_count() or 1) // int(os.environ.get("LOCAL_WORLD_SIZE", "1")))
    # The decoders also resample when asked; they idle (back-pressure) when the encoder is slower.
    return min(16, cores)
