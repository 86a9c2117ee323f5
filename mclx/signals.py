"""Stopping on SIGINT and SIGTERM, the same way in every command.

A scheduler stops a job with SIGTERM where a user presses Ctrl-C (SIGINT); both must end a
command alike: cleanly, resumable, exit 130. Outside a long loop, SIGTERM simply raises
KeyboardInterrupt as Ctrl-C does (:func:`sigterm_interrupts`). Inside the embed and train loops
an exception at an arbitrary instant would leave half a batch or half an optimiser update, so
there both signals only set a flag that the loop reads between units of work
(:func:`stop_on_signals`). Python runs signal handlers on the main thread only, and only the main
thread may install them: elsewhere (a library call from a worker thread) both are no-ops.
"""

from __future__ import annotations

import signal
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any


class StopRequest:
    """A flag set by a signal handler and read by a loop. Plain, not a ``threading.Event``:
    ``Event.set`` takes a lock, and a second signal arriving while the first handler holds it
    would wait for it forever."""

    def __init__(self) -> None:
        self._set = False

    def set(self) -> None:
        self._set = True

    def is_set(self) -> bool:
        return self._set


def _on_main_thread() -> bool:
    return threading.current_thread() is threading.main_thread()


def _interrupt(signum: int, frame: Any) -> None:
    raise KeyboardInterrupt


@contextmanager
def sigterm_interrupts() -> Iterator[None]:
    """Within the block, SIGTERM raises KeyboardInterrupt, as Ctrl-C does."""
    if not _on_main_thread():
        yield
        return
    previous = signal.signal(signal.SIGTERM, _interrupt)
    try:
        yield
    finally:
        if previous is not None:
            signal.signal(signal.SIGTERM, previous)


@contextmanager
def stop_on_signals(second_interrupts: bool) -> Iterator[StopRequest]:
    """Within the block, SIGINT and SIGTERM set the flag that it yields.

    The loop checks it between units of work and stops after a whole one. With
    ``second_interrupts``, a second signal raises KeyboardInterrupt at once (a training step can
    be long, and a user pressing Ctrl-C again means it); without it, further signals change
    nothing (the embed loop checks between batches and polls of its decoders)."""
    stop = StopRequest()
    if not _on_main_thread():
        yield stop
        return

    def handler(signum: int, frame: Any) -> None:
        if second_interrupts and stop.is_set():
            raise KeyboardInterrupt
        stop.set()

    previous = {s: signal.signal(s, handler) for s in (signal.SIGINT, signal.SIGTERM)}
    try:
        yield stop
    finally:
        for s, h in previous.items():
            if h is not None:
                signal.signal(s, h)
