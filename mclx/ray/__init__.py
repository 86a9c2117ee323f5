"""Embedding on a Ray cluster: ``mclx embed --engine ray`` and :class:`Embedder` for users' pipelines.

:mod:`mclx.ray.engine` runs ``mclx embed`` on a cluster: an engine that reports finished files to
the same :class:`mclx.embed.ledger.Ledger` as the local one, the driver journaling and building
the store; :mod:`mclx.ray.files` is its decode task; :mod:`mclx.ray.embedder` is a
``map_batches`` class for users' own Ray Data pipelines. Both embed files through
:mod:`mclx.embed.file`, as a local run on the CPU does.

This package is named like the one it drives: inside it ``import ray`` is the real Ray
(absolute imports), and nothing imports Ray before it is needed, so ``mclx`` works without it.
"""

from __future__ import annotations

from mclx.ray.embedder import Embedder
from mclx.ray.engine import EXTRA, RaySettings, embed_on_ray, require_ray

__all__ = ["EXTRA", "Embedder", "RaySettings", "embed_on_ray", "require_ray"]
