"""One resolver of device and precision for embed, train, probe and the HEAR API."""

from __future__ import annotations

import os
from typing import TYPE_CHECKING

from mclx.errors import UsageError

if TYPE_CHECKING:
    import torch

PRECISIONS = ("auto", "fp32", "bf16", "fp16")


def local_rank() -> int | None:
    """This process's rank on its machine under torchrun (LOCAL_RANK), else None."""
    value = os.environ.get("LOCAL_RANK")
    return int(value) if value is not None and value.isdigit() else None


def device_kind(spec: str, gpus: int, flag: str = "--device", where: str = "this machine") -> str:
    """ "auto" | "cpu" | "cuda" | "cuda:N" -> "cuda" or "cpu": the kind of device ``spec`` asks for
    on a place with ``gpus`` GPUs (this machine, or a Ray cluster whose actors each get one).

    "auto" is CUDA wherever there is a GPU. A spec that is not a device, or asks for CUDA where
    there is none, is a usage error naming ``flag``."""
    if spec == "auto":
        return "cuda" if gpus > 0 else "cpu"
    kind, sep, index = spec.partition(":")
    if kind not in ("cpu", "cuda") or (sep and not index.isdigit()):
        raise UsageError(f"{flag} {spec}: expected auto, cpu, cuda or cuda:N")
    if kind == "cuda" and gpus < 1:
        raise UsageError(f"{flag} {spec}: CUDA is not available on {where}")
    return kind


def resolve_device(spec: str = "auto", rank: int | None = None, flag: str = "--device") -> torch.device:
    """ "auto" | "cpu" | "cuda" | "cuda:N" -> a device that exists here (its kind: :func:`device_kind`).

    "auto" and a bare "cuda" take GPU ``rank`` (default: LOCAL_RANK under torchrun, else 0), so
    the processes of a multi-GPU run each get their own. A device that is not there is a usage
    error naming ``flag``.
    """
    import torch

    rank = local_rank() if rank is None else rank
    gpus = torch.cuda.device_count() if torch.cuda.is_available() else 0
    if device_kind(spec, gpus, flag) == "cpu":
        return torch.device("cpu")
    dev = torch.device("cuda" if spec == "auto" else spec)
    if dev.index is None:
        dev = torch.device("cuda", rank or 0)
    if dev.index >= gpus:
        raise UsageError(f"{flag} {spec}: this machine has {gpus} GPU(s)")
    return dev


def resolve_precision(precision: str, device_type: str, allowed: tuple[str, ...] = PRECISIONS) -> str:
    """ "auto" -> bf16 on CUDA, fp32 elsewhere; anything outside ``allowed`` is a usage error."""
    if precision not in allowed:
        raise UsageError(f"--precision {precision}: expected one of {', '.join(allowed)}")
    if precision == "auto":
        return "bf16" if device_type == "cuda" else "fp32"
    return precision


def autocast_dtype(precision: str) -> torch.dtype | None:
    """The autocast dtype of a resolved precision (None: no autocast, fp32)."""
    import torch

    return {"bf16": torch.bfloat16, "fp16": torch.float16}.get(precision)
