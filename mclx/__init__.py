"""mclx: contrastive music-audio representations.

The package imports nothing heavy at import time (``mclx --help`` must stay fast); the
pipeline is reached through the names below, loaded on first use.
"""

from __future__ import annotations

from typing import Any

__version__ = "0.1.0"

_LAZY = {
    "EmbedSettings": "mclx.embed.plan",
    "load_model": "mclx.models.registry",
    "read_store": "mclx.store",
    "merge_stores": "mclx.store",
    "build_index": "mclx.search.similarity",
    "export_parquet": "mclx.search.export",
}
# Packages that are also functions: ``mclx.embed(...)`` and ``mclx.search(...)`` call them.
_CALLABLE_PACKAGES = ("embed", "search")


def __getattr__(name: str) -> Any:
    import importlib

    if name in _CALLABLE_PACKAGES:
        return importlib.import_module(f"mclx.{name}")
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'mclx' has no attribute {name!r}")
    return getattr(importlib.import_module(module), name)
