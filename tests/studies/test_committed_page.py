"""The committed `docs/studies.md` is what its committed evidence and readings rebuild: a reading
edited without a rebuild, or evidence synced under a reading it now contradicts, fails here."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from studies.__main__ import main

DOCS = Path(__file__).resolve().parents[2] / "docs"


@pytest.mark.slow
def test_tables_only_rebuilds_the_committed_page_byte_for_byte(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setenv("MPLBACKEND", "Agg")
    # the page reads the runs' summaries and the probe reports, never the encoders (~100 MB)
    shutil.copytree(DOCS / "studies", tmp_path / "studies", ignore=shutil.ignore_patterns("*.safetensors"))
    assert main(["run", "--tables-only", "--docs", str(tmp_path / "studies")]) == 0
    rebuilt = (tmp_path / "studies.md").read_text()
    assert rebuilt == (DOCS / "studies.md").read_text(), (
        "docs/studies.md is stale: run python -m studies run --tables-only"
    )
