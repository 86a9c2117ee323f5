"""Encoders: one module per architecture, the table that builds them (``architectures``) and the
registry that resolves a model name (``registry``: ``load_model``, ``model_names``).

Every encoder maps windows of mono audio at its own sample rate to embeddings:
``forward(x: (batch, samples)) -> (batch, embedding_dim)``.
"""

from mclx.models.architectures import ARCHITECTURES, build_encoder
from mclx.models.base import Encoder, EncoderSpec

__all__ = ["ARCHITECTURES", "Encoder", "EncoderSpec", "build_encoder"]


def __getattr__(name: str) -> object:
    """``load_model`` and ``model_names`` from the registry, imported on first use: the registry
    reads checkpoints, and the checkpoint module builds encoders from this package."""
    if name in ("load_model", "model_names"):
        from mclx.models import registry

        return getattr(registry, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
