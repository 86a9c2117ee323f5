"""mclx: contrastive music-audio representations.

The package imports nothing heavy at import time (``mclx --help`` must stay fast); the
pipeline is reached through the names below, loaded on first use.
"""

from __future__ import annotations

from typing import Any

__version__ = "0.1.0"

_LAZY = {
    "embed": "mclx.pipeline",
    "EmbedSettings": "mclx.pipeline",
    "load_model": "mclx.models.registry",
    "read_store": "mclx.store",
    "merge_stores": "mclx.store",
    "search": "mclx.similarity",
    "build_index": "mclx.similarity",
    "export_parquet": "mclx.export",
}


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'mclx' has no attribute {name!r}")
    import importlib

    return getattr(importlib.import_module(module), name)
