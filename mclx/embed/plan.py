"""An embed run's settings, and the plan they resolve to before any work.

The one home of embed's defaults and device rules: the batch size, the device and the precision
are resolved here, for this machine (a local run, a query, ``mclx.ray.Embedder``) and for a Ray
cluster's actors alike (``cluster``), so the two engines cannot drift apart.
"""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from typing import Any

from mclx import __version__
from mclx.devices import device_kind, resolve_device, resolve_precision
from mclx.errors import UsageError

LEVELS = ("global", "segment", "both")
RESAMPLE_IN = ("auto", "decoders", "encoder")
BATCH_SIZE = {"cuda": 256, "cpu": 32}  # windows per forward pass when none is asked for
MAX_WINDOW_S = 600.0  # a batch of windows is held in memory: 10 minutes of audio per window at most


@dataclass(frozen=True)
class EmbedSettings:
    model: str | None = None  # bundled name or checkpoint path; None: the default model
    level: str = "global"
    window_s: float | None = None  # None: the model's window
    hop_s: float | None = None  # None: = window
    batch_size: int | None = None  # None: automatic
    device: str = "auto"
    precision: str = "auto"
    workers: int | None = None
    overwrite: bool = False
    fail_fast: bool = False
    quiet: bool = False
    decode_timeout_s: float = 120.0
    # Where audio is resampled to the model's rate: "decoders" (libsoxr, in the decoder processes),
    # "encoder" (a sinc kernel on the encoder's device), "auto": decoders on the CPU, encoder on CUDA.
    resample_in: str = "auto"
    # The store this run's store will be merged into (a torchrun rank's shard store: OUTPUT.h5);
    # like the output itself, it must have been made with the same settings unless overwriting.
    merged_into: str | None = None


@dataclass(frozen=True)
class Cluster:
    """A Ray cluster's resources: a plan for it is the plan its encoder actors run."""

    cpus: float
    gpus: float


@dataclass(frozen=True)
class EmbedPlan:
    """An embed run's settings resolved and validated once, before any work.

    Window and hop are in samples at the model's rate; ``resample_to`` is the rate the
    decoders resample to (None: the encoder's device resamples); ``attrs`` are the store's
    root attributes, which a resumed store must match. ``device_type`` is where the encoders
    run: ``device``'s type, or for a Ray cluster its actors' ("cuda" | "cpu") while ``device``
    is the driver's CPU, where the model is loaded only for the store's attributes.
    """

    settings: EmbedSettings
    encoder: Any  # the model, on ``device``, in eval mode
    device: Any  # torch.device
    precision: str  # fp32 | bf16 | fp16
    rate: int
    window: int
    hop: int
    batch_size: int
    workers: int
    resample_to: int | None
    attrs: dict[str, Any]
    device_type: str = "cpu"

    @property
    def keep_segments(self) -> bool:
        return self.settings.level in ("segment", "both")

    @property
    def dim(self) -> int:
        return int(self.encoder.spec.embedding_dim)


def check_settings(settings: EmbedSettings) -> None:
    """UsageError for a setting that is wrong whatever the model and the machine."""
    if settings.level not in LEVELS:
        raise UsageError(f"--level {settings.level}: expected one of {', '.join(LEVELS)}")
    if settings.resample_in not in RESAMPLE_IN:
        raise UsageError(f"--resample-in {settings.resample_in}: expected one of {', '.join(RESAMPLE_IN)}")
    if settings.workers is not None and settings.workers < 1:
        raise UsageError("--workers must be at least 1")
    if settings.batch_size is not None and settings.batch_size < 1:
        raise UsageError("--batch-size must be at least 1")
    for flag, value in (("--window", settings.window_s), ("--hop", settings.hop_s)):
        if value is not None and not (math.isfinite(value) and value <= MAX_WINDOW_S):
            raise UsageError(f"{flag} {value:g}: expected a number of seconds, at most {MAX_WINDOW_S:g}")


def make_plan(
    settings: EmbedSettings, argv: Sequence[str] | None = None, cluster: Cluster | None = None
) -> EmbedPlan:
    """Resolve ``settings`` (device, precision, model, window, hop, batch, decoders); UsageError if bad.

    ``cluster``: the plan of a Ray run, whose actors run the encoder on the cluster's device
    (the driver loads the model on its CPU, and the decode tasks resample: --resample-in is moot).
    """
    from mclx.decoders import default_workers
    from mclx.models.registry import load_model

    check_settings(settings)
    if cluster is None:
        device = resolve_device(settings.device)
        kind = device.type
    else:
        kind = device_kind(settings.device, int(cluster.gpus), where="the Ray cluster")
        device = resolve_device("cpu")
    precision = resolve_precision(settings.precision, kind)
    batch_size = settings.batch_size or BATCH_SIZE[kind]
    if cluster is not None:  # the actors run these settings: every choice made here, once
        settings = replace(settings, device="cpu", precision=precision, batch_size=batch_size)
    loaded = load_model(settings.model)
    encoder = loaded.encoder.to(device).eval()
    spec = encoder.spec
    window_s = spec.window_s if settings.window_s is None else settings.window_s
    hop_s = window_s if settings.hop_s is None else settings.hop_s
    window, hop = round(window_s * spec.sample_rate), round(hop_s * spec.sample_rate)
    for flag, seconds, samples in (("--window", window_s, window), ("--hop", hop_s, hop)):
        if not samples >= 1:  # also NaN; a hop of 0 samples would never advance
            raise UsageError(
                f"{flag} {seconds:g}: must be at least one sample ({1 / spec.sample_rate:.2g} s at "
                f"{spec.sample_rate} Hz)"
            )
    # By default resampling is spread over the decoder processes on the CPU and runs on the GPU
    # there; either way can be chosen on any device (the tests run both on the CPU).
    where = settings.resample_in
    if where == "auto":
        where = "decoders" if device.type == "cpu" else "encoder"
    return EmbedPlan(
        settings=settings,
        encoder=encoder,
        device=device,
        precision=precision,
        rate=spec.sample_rate,
        window=window,
        hop=hop,
        batch_size=batch_size,
        workers=settings.workers or default_workers(),
        resample_to=spec.sample_rate if where == "decoders" else None,
        attrs=store_attrs(loaded.name, loaded.sha256, spec, settings.level, window_s, hop_s, precision, argv),
        device_type=kind,
    )


def store_attrs(
    name: str, sha256: str, spec: Any, level: str, window_s: float, hop_s: float, precision: str,
    argv: Sequence[str] | None,
) -> dict[str, Any]:  # fmt: skip
    """The store's root attributes (the contract's list, in its order)."""
    return {
        "format": "mclx-embeddings",
        "format_version": 1,
        "mclx_version": __version__,
        "model": name,
        "model_sha256": sha256,
        "model_config": json.dumps({"architecture": spec.architecture, **spec.args}, sort_keys=True),
        "sample_rate": spec.sample_rate,
        "window_s": float(window_s),
        "hop_s": float(hop_s),
        "dim": spec.embedding_dim,
        "level": level,
        "pooling": "mean",
        "precision": precision,
        "created_utc": datetime.now(UTC).isoformat(timespec="seconds"),
        "argv": json.dumps(list(argv) if argv is not None else []),
    }
