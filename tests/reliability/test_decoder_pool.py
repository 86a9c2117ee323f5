"""Decoder processes that die: every file still gets exactly one end or error, the right one.

A stand-in worker speaks the decoders' protocol without decoding: a path "good:N" sends N
blocks and ends; a path "crash" ends the process the moment it is given it, as a codec that
crashes would. The pool's bookkeeping is what is under test.
"""

from __future__ import annotations

import os
import random
import time
from multiprocessing.connection import Connection

import numpy as np

from mclx.decoders import DecoderPool, _Worker, received_tasks

from .report import record


def stand_in_worker(tasks: Connection, results: Connection, block_frames: int, resample_to: object) -> None:
    for index, path in received_tasks(tasks):
        if path == "crash":
            os._exit(3)
        results.send(("start", index, 16000, 16000))
        for _ in range(int(path.split(":")[1])):
            results.send(("block", index, np.zeros(16, np.float32)))
        time.sleep(random.random() * 0.01)
        results.send(("end", index, 16))


class StandInPool(DecoderPool):
    def _spawn(self) -> _Worker:
        task_r, task_w = self.ctx.Pipe(duplex=False)
        res_r, res_w = self.ctx.Pipe(duplex=False)
        proc = self.ctx.Process(target=stand_in_worker, args=(task_r, res_w, 0, None), daemon=True)
        proc.start()
        task_r.close()
        res_w.close()
        return _Worker(proc, task_w, res_r, last_progress=time.monotonic())


def test_dying_decoders_lose_no_file_and_blame_only_the_file_they_died_on() -> None:
    # Long and short good files around each crash: a worker often dies right after ending a file,
    # with the next task already on its way (the cases that hung the run or failed a good file).
    paths = [p for i in range(20) for p in (f"good:{1000 + i}", "good:3", "crash")]
    pool = StandInPool(paths, list(range(len(paths))), 2)
    outcome: dict[int, list[str]] = {}
    deadline = time.monotonic() + 120
    try:
        while pool.busy and time.monotonic() < deadline:
            for ev in pool.poll(0.5):
                if ev.kind in ("end", "error"):
                    outcome.setdefault(ev.index, []).append(ev.kind if ev.kind == "end" else ev.reason)
    finally:
        pool.close()
    assert not pool.busy, f"files without an end or error: {sorted(set(range(len(paths))) - set(outcome))}"
    assert all(len(v) == 1 for v in outcome.values()), "a file got two terminal events"
    for i, path in enumerate(paths):
        if path == "crash":
            assert outcome[i][0].startswith("decoder process died"), (i, outcome[i])
        else:
            assert outcome[i] == ["end"], (i, path, outcome[i])
    record(decoder_deaths_survived=paths.count("crash"))
