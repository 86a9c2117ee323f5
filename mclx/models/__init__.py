"""Encoders: one module per architecture, plus the registry that builds and loads them.

Every encoder maps windows of mono audio at its own sample rate to embeddings:
``forward(x: (batch, samples)) -> (batch, embedding_dim)``.
"""

from mclx.models.base import Encoder, EncoderSpec
from mclx.models.registry import ARCHITECTURES, build_encoder, load_model, model_names

__all__ = ["ARCHITECTURES", "Encoder", "EncoderSpec", "build_encoder", "load_model", "model_names"]
