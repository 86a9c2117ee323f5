"""The search wing: what sounds like this (``mclx search``), its index (``mclx index``) and the
store as a Parquet table (``mclx export``).

``similarity`` (a store's searchable rows, queries, exact top k), ``index`` (the approximate
FAISS index next to a store) and ``export`` (Parquet). ``mclx.search`` is also the library's
search function: calling this package calls :func:`search`.
"""

from __future__ import annotations

import sys
import types
from typing import Any

from mclx.search.export import export_parquet
from mclx.search.index import index_path, require_faiss
from mclx.search.similarity import Hit, Rows, build_index, search

__all__ = ["Hit", "Rows", "build_index", "export_parquet", "index_path", "require_faiss", "search"]


class _CallablePackage(types.ModuleType):
    """``mclx.search(store, queries, k=10)`` stays the public function while ``mclx.search`` is
    this package."""

    def __call__(self, *args: Any, **kwargs: Any) -> list[Hit]:
        return search(*args, **kwargs)


sys.modules[__name__].__class__ = _CallablePackage
