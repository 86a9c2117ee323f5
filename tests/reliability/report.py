"""Figures of the reliability suite's last run, collected for the README.

Tests call :func:`record`; with ``MCLX_RELIABILITY_REPORT=path.json`` set, the counts are
added up in that file (``make reliability`` sets it and prints the result).
"""

from __future__ import annotations

import json
import os
from pathlib import Path


def record(**counts: int) -> None:
    target = os.environ.get("MCLX_RELIABILITY_REPORT")
    if not target:
        return
    path = Path(target)
    data = json.loads(path.read_text()) if path.exists() else {}
    for key, value in counts.items():
        data[key] = data.get(key, 0) + value
    path.write_text(json.dumps(data, indent=1, sort_keys=True))
