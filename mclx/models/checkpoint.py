"""Encoder checkpoints: one safetensors file whose metadata rebuilds the encoder.

Loading never executes pickled code: tensors come from safetensors, the rest is JSON.
"""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path
from typing import Any

from mclx import __version__
from mclx.errors import WeightsError
from mclx.fileio import atomic_write_bytes
from mclx.models.architectures import build_encoder
from mclx.models.base import Encoder

METADATA_KEYS = ("mclx_version", "architecture", "encoder_args", "sample_rate", "window_s", "embedding_dim")


def encoder_metadata(encoder: Encoder, training_config: dict[str, Any] | None = None) -> dict[str, str]:
    spec = encoder.spec
    return {
        "mclx_version": __version__,
        "architecture": spec.architecture,
        "encoder_args": spec.args_json(),
        "sample_rate": str(spec.sample_rate),
        "window_s": repr(float(spec.window_s)),
        "embedding_dim": str(spec.embedding_dim),
        "training_config": json.dumps(training_config or {}, sort_keys=True),
    }


def save_encoder(
    path: str | os.PathLike[str], encoder: Encoder, training_config: dict[str, Any] | None = None
) -> str:
    """Save the encoder (no projection head) atomically; returns the file's sha256."""
    from safetensors.torch import save

    tensors = {k: v.detach().cpu().contiguous() for k, v in encoder.state_dict().items()}
    data = save(tensors, metadata=encoder_metadata(encoder, training_config))
    atomic_write_bytes(path, data)
    return hashlib.sha256(data).hexdigest()


def read_metadata(path: str | os.PathLike[str]) -> dict[str, str]:
    """The checkpoint's metadata, checked for the keys the contract requires."""
    from safetensors import safe_open

    try:
        with safe_open(str(path), framework="pt") as f:
            meta = dict(f.metadata() or {})
    except FileNotFoundError:
        raise WeightsError(f"{path}: no such checkpoint") from None
    except Exception as exc:  # safetensors raises its own error types for bad headers
        raise WeightsError(f"{path}: not a readable safetensors checkpoint ({exc})") from None
    missing = [k for k in METADATA_KEYS if k not in meta]
    if missing:
        raise WeightsError(f"{path}: checkpoint metadata lacks {', '.join(missing)}")
    return meta


def load_encoder(path: str | os.PathLike[str], expected_sha256: str | None = None) -> tuple[Encoder, str]:
    """Rebuild the encoder described by a checkpoint; returns (encoder in eval mode, sha256).

    With ``expected_sha256`` (bundled weights), a file whose digest differs is refused.
    """
    from safetensors.torch import load

    try:
        data = Path(path).read_bytes()
    except OSError as exc:
        raise WeightsError(f"{path}: cannot read checkpoint ({exc.strerror})") from None
    digest = hashlib.sha256(data).hexdigest()
    if expected_sha256 is not None and digest != expected_sha256:
        raise WeightsError(
            f"{path}: sha256 {digest} does not match the manifest's {expected_sha256}; "
            "the file is corrupted or was modified"
        )
    meta = read_metadata(path)
    try:
        args = json.loads(meta["encoder_args"])
    except json.JSONDecodeError as exc:
        raise WeightsError(f"{path}: encoder_args metadata is not JSON ({exc})") from None
    encoder = build_encoder(meta["architecture"], args)
    try:
        state = load(data)
        encoder.load_state_dict(state, strict=True)
    except Exception as exc:
        raise WeightsError(f"{path}: weights do not fit a {meta['architecture']} encoder ({exc})") from None
    return encoder.eval(), digest
