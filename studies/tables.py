"""docs/studies.md from docs/studies/ alone (filled in below)."""

from __future__ import annotations

from pathlib import Path


def write(docs: Path) -> str:
    out = docs.with_suffix(".md")
    return str(out)
