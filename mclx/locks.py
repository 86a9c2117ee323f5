"""Exclusive file locks (``flock``): one writer per embed output, training directory and cache.

An flock belongs to the open file and ends when the process dies, kill -9 included, so a crashed
run never leaves a stale lock that a user would have to delete; the lock file itself stays. Lock
files are created like any other file (mode 0o666 less the umask), so that a group sharing a cache
can share its lock.
"""

from __future__ import annotations

import fcntl
import os
from collections.abc import Callable, Iterator
from contextlib import contextmanager


def try_lock(path: str | os.PathLike[str]) -> int | None:
    """The descriptor holding ``path``'s lock, or None at once when another process holds it.

    For writers that must refuse to run beside another (the caller says who is there). An
    ``OSError`` from creating or locking the file propagates."""
    return _take(path, wait=False)


def unlock(fd: int) -> None:
    """Release the lock, then close: unlocking first frees it even while a forked child (a
    decoder process) still holds a copy of the descriptor."""
    try:
        fcntl.flock(fd, fcntl.LOCK_UN)
    finally:
        os.close(fd)


@contextmanager
def locked(path: str | os.PathLike[str], on_wait: Callable[[], None] | None = None) -> Iterator[None]:
    """Hold ``path``'s lock for the block, waiting for it if another process holds it (then
    ``on_wait`` is called first, to say why nothing seems to happen)."""
    fd = _take(path, wait=True, on_wait=on_wait)
    assert fd is not None  # a waiting take always ends with the lock
    try:
        yield
    finally:
        unlock(fd)


def _take(path: str | os.PathLike[str], wait: bool, on_wait: Callable[[], None] | None = None) -> int | None:
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o666)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            if not wait:
                os.close(fd)
                return None
            if on_wait is not None:
                on_wait()
            fcntl.flock(fd, fcntl.LOCK_EX)
    except BaseException:
        os.close(fd)
        raise
    return fd
