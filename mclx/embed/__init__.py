"""The embed wing: audio files -> windows -> encoder -> the HDF5 store (``mclx embed``).

``plan`` (settings resolved once: model, window, device, precision, batch), ``file`` (one file to
its windows and its store row), ``ledger`` (the run's bookkeeping, the boundary every engine
reports to), ``local`` (the decoder pool and the overlapped encoder), ``run`` (resume, an engine,
the store; a torchrun rank's part), ``command`` (``mclx embed``'s arguments to a run) and
``windows`` (the window rule). The Ray engine is :mod:`mclx.ray`.

``mclx.embed`` is also the library's embed function: calling this package calls :func:`embed`.
"""

from __future__ import annotations

import sys
import types
from typing import Any

from mclx.embed.file import embed_file
from mclx.embed.ledger import EmbedSummary, Engine, Ledger
from mclx.embed.plan import EmbedPlan, EmbedSettings, make_plan
from mclx.embed.run import embed, embed_part

__all__ = [
    "EmbedPlan",
    "EmbedSettings",
    "EmbedSummary",
    "Engine",
    "Ledger",
    "embed",
    "embed_file",
    "embed_part",
    "make_plan",
]


class _CallablePackage(types.ModuleType):
    """``mclx.embed(files, output, settings)`` stays the public function while ``mclx.embed`` is
    this package."""

    def __call__(self, *args: Any, **kwargs: Any) -> EmbedSummary:
        return embed(*args, **kwargs)


sys.modules[__name__].__class__ = _CallablePackage
