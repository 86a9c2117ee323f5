"""Which encoder architectures exist, and how one is built from its constructor arguments."""

from __future__ import annotations

from typing import Any

from mclx.errors import ConfigError
from mclx.models.base import Encoder
from mclx.models.melcnn import MelCNN
from mclx.models.mfcc import MFCCEncoder
from mclx.models.samplecnn import SampleCNN

ARCHITECTURES: dict[str, type[Encoder]] = {"mfcc": MFCCEncoder, "melcnn": MelCNN, "samplecnn": SampleCNN}


def build_encoder(architecture: str, args: dict[str, Any] | None = None) -> Encoder:
    """A freshly initialised encoder of ``architecture`` built from constructor ``args``."""
    cls = ARCHITECTURES.get(architecture)
    if cls is None:
        raise ConfigError(f"unknown architecture {architecture!r}; choose one of {', '.join(ARCHITECTURES)}")
    try:
        return cls(**(args or {}))
    except TypeError as exc:
        raise ConfigError(f"bad arguments for {architecture}: {exc}") from None
