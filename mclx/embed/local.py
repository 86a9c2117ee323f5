"""The local engine: decoder processes -> windows -> batched encoder, overlapped.

Windows from many files are packed into full batches; decoding runs in other processes
(:class:`mclx.decoders.DecoderPool`) while the encoder works, and on CUDA a batch's embeddings
come back while the next one runs. Finished files go to the :class:`~mclx.embed.ledger.Ledger`.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from mclx.embed.file import encode
from mclx.embed.ledger import Ledger
from mclx.embed.plan import EmbedPlan, EmbedSettings, make_plan
from mclx.signals import StopRequest


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


class LocalEngine:
    """The :class:`mclx.embed.ledger.Engine` of this process and its decoder processes."""

    def make_plan(self, settings: EmbedSettings, argv: Sequence[str] | None) -> EmbedPlan:
        return make_plan(settings, argv)

    def run(self, ledger: Ledger, stop: StopRequest) -> None:
        if ledger.begin():
            _Loop(ledger).run(stop)


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


class _Loop:
    """State of one local run: active files, the pending windows, the batches in flight."""

    def __init__(self, ledger: Ledger) -> None:
        self.ledger, self.plan = ledger, ledger.plan
        self.active: dict[int, _Active] = {}
        self.pending: list[tuple[_Active, Any]] = []  # (file, (window,) tensor)
        # Launched batches whose embeddings are not taken in yet: (files of the rows, (B, D), event)
        self.inflight: list[tuple[list[_Active], Any, Any]] = []
        self._pinned: dict[tuple[int, tuple[int, ...]], Any] = {}
        self._flip = 0

    def run(self, stop: StopRequest) -> None:
        import torch

        from mclx.decoders import DecoderPool

        ledger, plan = self.ledger, self.plan
        threads = torch.get_num_threads()
        timeout = plan.settings.decode_timeout_s
        summary = ledger.summary
        with summary.timed("start"):
            pool = DecoderPool(
                ledger.files, ledger.todo, plan.workers, timeout_s=timeout, resample_to=plan.resample_to
            )
        try:
            while pool.busy or self.pending or self.inflight:
                if stop.is_set():
                    ledger.interrupted = True
                    break
                if len(self.pending) >= plan.batch_size or (not pool.busy and self.pending):
                    if plan.device.type == "cpu":
                        _share_cores(pool, plan.workers)
                    self._forward()
                else:
                    self._drain()  # waiting for decoders anyway: take in the last batch first
                    with summary.timed("wait"):
                        events = pool.poll(timeout=0.2) if pool.busy else []
                    for event in events:
                        self._handle(event)
                if not ledger.tick(realtime=True):
                    break
        finally:
            torch.set_num_threads(threads)
            pool.close()
            ledger.close()

    def _handle(self, event: Any) -> None:
        import torch

        from mclx.embed.windows import WindowCutter
        from mclx.resample import TorchStreamResampler

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
        with self.ledger.summary.timed("forward"):
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
        self.ledger.finished_file(state.index, emb, state.windows, state.native_frames / state.native_rate)

    def _fail(self, index: int, reason: str) -> None:
        self.active.pop(index, None)
        self.ledger.failed_file(index, reason)
