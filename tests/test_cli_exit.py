"""How the `mclx` process ends: with torch loaded it skips native teardown but nothing else;
called inside another program (``mclx.cli.main``) it only raises SystemExit.

Each case runs the console entry point in a fresh interpreter with an atexit handler and a
module-level object whose finaliser runs only in a full interpreter teardown, both leaving
marker files, so the test sees which of the two happened.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

SCRIPT = """
import atexit, sys, threading
from pathlib import Path
marks = Path(sys.argv[1])
atexit.register(lambda: (marks / "atexit").touch())

class Finalised:
    def __del__(self):
        (marks / "teardown").touch()

keep = Finalised()
if "torch" in sys.argv[2]:
    import torch  # noqa: F401
if "thread" in sys.argv[2]:
    threading.Thread(target=__import__("time").sleep, args=(0.5,)).start()
print("before", flush=False)  # left in the buffer: the exit must flush it
from mclx.cli import console
sys.argv = ["mclx", *sys.argv[3:]]
console()
"""


def run(tmp_path: Path, setup: str, *argv: str) -> tuple[subprocess.CompletedProcess[str], set[str]]:
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).parents[1])}
    marks = tmp_path / f"marks-{len(list(tmp_path.glob('marks-*')))}"
    marks.mkdir()
    done = subprocess.run(
        [sys.executable, "-c", SCRIPT, str(marks), setup, *argv],
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
    )
    return done, {p.name for p in marks.iterdir()}


def test_with_torch_loaded_atexit_handlers_run_and_output_is_flushed_but_teardown_is_skipped(
    tmp_path: Path,
) -> None:
    done, marks = run(tmp_path, "torch", "--version")
    assert done.returncode == 0, done.stderr
    assert done.stdout.splitlines()[0] == "before"
    assert done.stdout.splitlines()[1].startswith("mclx ")
    assert marks == {"atexit"}


@pytest.mark.parametrize("setup", ["plain", "torch+thread"])
def test_without_torch_or_with_a_running_thread_the_exit_is_pythons_usual_one(
    tmp_path: Path, setup: str
) -> None:
    done, marks = run(tmp_path, setup, "--version")
    assert done.returncode == 0, done.stderr
    assert done.stdout.splitlines()[1].startswith("mclx ")
    assert marks == {"atexit", "teardown"}


def test_exit_status_and_error_line_survive_the_fast_exit(tmp_path: Path) -> None:
    missing = tmp_path / "nowhere.wav"
    done, marks = run(tmp_path, "torch", "embed", str(missing), str(tmp_path / "out.h5"))
    assert done.returncode == 2
    assert done.stderr.startswith("mclx: error: ")
    assert marks == {"atexit"}
    usage, _ = run(tmp_path, "torch", "embed")
    assert usage.returncode == 2  # click's own usage error (missing argument) keeps its status
    assert "Missing argument" in usage.stderr


def test_main_inside_another_program_raises_system_exit_and_the_program_lives_on(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    import torch  # noqa: F401  (loaded: the case where the console entry would leave at once)

    from mclx.cli import main

    monkeypatch.setattr(sys, "argv", ["mclx", "--version"])
    with pytest.raises(SystemExit) as done:
        main()
    assert done.value.code == 0
