"""The GPU smoke script's checks, run on the CPU: the encoder-side resampling path end to end."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).parents[2]


def test_gpu_smoke_script_passes_on_the_cpu() -> None:
    # Run as users run it (python -m), so that the tests import nothing from benchmarks/.
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    proc = subprocess.run(
        [sys.executable, "-m", "benchmarks.gpu_smoke",
         "--device", "cpu", "--models", "mfcc,random-samplecnn"],
        capture_output=True, text=True, env=env, cwd=ROOT, timeout=600,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert '"ok": true' in proc.stdout
