"""The GPU smoke script's checks, run on the CPU: the encoder-side resampling path end to end."""

from __future__ import annotations

import pytest

from benchmarks import gpu_smoke


def test_gpu_smoke_script_passes_on_the_cpu(capsys: pytest.CaptureFixture[str]) -> None:
    assert gpu_smoke.main(["--device", "cpu", "--models", "mfcc,random-samplecnn"]) == 0
    assert '"ok": true' in capsys.readouterr().out
