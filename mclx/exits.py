"""How a command ends: its exit status from what it raised, and the fast exit of the process.

Exit codes: 0 success, 1 finished with failed inputs, 2 usage/config/input error (``UsageError``),
130 interrupted (Ctrl-C or SIGTERM).
"""

from __future__ import annotations

import sys
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import NoReturn

from mclx.errors import MclxError


@dataclass
class Status:
    """A command's exit status, set when its ``with exit_status()`` block ends."""

    code: int = 0


@contextmanager
def exit_status() -> Iterator[Status]:
    """Run the block (a command) and set its exit status (other exceptions propagate with their
    traceback). SIGTERM stops a command as Ctrl-C does, whatever it is doing (exit 130); the embed
    and train loops catch both themselves to finish the batch in flight first."""
    from mclx.signals import sigterm_interrupts

    status = Status()
    with sigterm_interrupts():
        try:
            yield status  # click's standalone mode ends every command with SystemExit
        except SystemExit as done:
            if done.code is None or isinstance(done.code, int):
                status.code = done.code or 0
            else:
                print(done.code, file=sys.stderr)
                status.code = 1
        except MclxError as exc:
            print(f"mclx: error: {exc}", file=sys.stderr)
            status.code = exc.exit_code
        except KeyboardInterrupt:
            print("mclx: interrupted", file=sys.stderr)
            status.code = 130


def leave(status: int) -> NoReturn:
    """Exit with ``status``, skipping native library teardown once torch is loaded.

    By then every store is closed and renamed. What remains at interpreter exit is the static
    destructors of torch's native libraries: with the CUDA build they fault ~115 MiB of
    libcublasLt/libcusparseLt code into memory and take about half a second, even on a machine
    without a GPU. So: flush the standard streams, run the atexit handlers (multiprocessing,
    temporary files, torch's own), then end the process. Without torch, or with a non-daemon
    thread still running, the exit is Python's usual one (an interrupt takes the fast exit too).
    """
    import threading

    others = [t for t in threading.enumerate() if t is not threading.main_thread() and not t.daemon]
    torch_loaded = any(name == "torch" or name.startswith("torch.") for name in sys.modules)
    # An interrupt (130) that landed while torch was being imported: CPython's own exit would turn
    # the status into death by SIGINT, torch being half-imported.
    if others or not (torch_loaded or status == 130):
        sys.exit(status)
    import atexit
    import contextlib
    import os

    for stream in (sys.stdout, sys.stderr):
        with contextlib.suppress(OSError, ValueError):  # a closed pipe (`| head`): nothing to say
            stream.flush()
    atexit._run_exitfuncs()
    os._exit(status)
