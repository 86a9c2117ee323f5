"""How a model name is resolved to an encoder (architectures: :mod:`mclx.models.architectures`).

A model name is, in this order: a path to a checkpoint, a built-in model (``mfcc``,
``random-melcnn``, ``random-samplecnn``), or a bundled model from ``weights_manifest.json``.
"""

from __future__ import annotations

import hashlib
import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from mclx.errors import UsageError, WeightsError
from mclx.fileio import sha256_file
from mclx.models.architectures import build_encoder
from mclx.models.base import Encoder
from mclx.models.checkpoint import load_encoder, read_metadata

BUILTIN = ("mfcc", "random-melcnn", "random-samplecnn")
PACKAGE_DIR = Path(__file__).resolve().parent.parent
# The package reads its own copy (package data), so a wheel install keeps every bundled model;
# the repository's top-level weights_manifest.json is the same file (a test checks it).
MANIFEST_PATH = PACKAGE_DIR / "weights" / "weights_manifest.json"


@dataclass(frozen=True)
class LoadedModel:
    name: str
    encoder: Encoder
    sha256: str


def read_manifest(path: Path = MANIFEST_PATH) -> dict[str, Any]:
    if not path.exists():
        return {"default": "mfcc", "models": []}
    with open(path) as f:
        return dict(json.load(f))


def default_model_name(manifest_path: Path = MANIFEST_PATH) -> str:
    return str(read_manifest(manifest_path).get("default", "mfcc"))


def model_names(manifest_path: Path = MANIFEST_PATH) -> list[str]:
    bundled = [m["name"] for m in read_manifest(manifest_path)["models"]]
    return list(BUILTIN) + bundled + [f"random-{m}" for m in bundled]


def verify_bundled(manifest_path: Path = MANIFEST_PATH) -> list[tuple[str, bool, str]]:
    """(name, ok, message) for every bundled weight file."""
    rows = []
    for entry in read_manifest(manifest_path)["models"]:
        file = PACKAGE_DIR / entry["file"]
        if not file.exists():
            rows.append((entry["name"], False, f"{file}: missing"))
            continue
        digest = sha256_file(file)
        ok = digest == entry["sha256"]
        msg = "ok" if ok else f"{file}: sha256 {digest} != expected {entry['sha256']}"
        rows.append((entry["name"], ok, msg))
    return rows


def model_table(verify: bool = False) -> list[dict[str, Any]]:
    """Every model name ``--model`` takes (``mclx models``): built-in, bundled (their manifest
    entries) and the bundled models' random twins, each with ``kind`` and ``default``; with
    ``verify``, the bundled ones also with ``verified`` and ``verify_message`` (their sha256)."""
    manifest = read_manifest()
    default = default_model_name()
    rows: list[dict[str, Any]] = [
        {"name": name, "kind": "built-in", "default": name == default} for name in BUILTIN
    ]
    rows += [{**m, "kind": "bundled", "default": m["name"] == default} for m in manifest["models"]]
    rows += [
        {"name": f"random-{m['name']}", "kind": "random twin", "default": False} for m in manifest["models"]
    ]
    checks = {name: (ok, msg) for name, ok, msg in verify_bundled()} if verify else {}
    for row in rows:
        if row["name"] in checks:
            row["verified"], row["verify_message"] = checks[row["name"]]
    return rows


def _builtin(name: str, architecture: str | None = None, args: dict[str, Any] | None = None) -> LoadedModel:
    """``mfcc``, or a seeded random-initialised network (``random-ARCH`` with the architecture's
    defaults, or ``random-BUNDLED`` with a bundled model's ``architecture`` and ``args``)."""
    import torch

    if name == "mfcc":
        encoder = build_encoder("mfcc")
    else:
        # A random-initialised CNN is a strong baseline that pretraining must beat; seed it so
        # every run and machine gets the same network.
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(0)
            encoder = build_encoder(architecture or name.removeprefix("random-"), args)
    identity = f"builtin:{name}:{encoder.spec.args_json()}".encode()
    return LoadedModel(name, encoder.eval(), hashlib.sha256(identity).hexdigest())


def _bundled_file(name: str, manifest_path: Path) -> tuple[dict[str, Any], Path] | None:
    """The manifest entry of bundled model ``name`` and its weight file (which must exist), or None."""
    for entry in read_manifest(manifest_path)["models"]:
        if entry["name"] == name:
            file = PACKAGE_DIR / entry["file"]
            if not file.exists():
                raise WeightsError(f"bundled model {name}: weight file {file} is missing")
            return entry, file
    return None


def load_model(name: str | None = None, manifest_path: Path = MANIFEST_PATH) -> LoadedModel:
    """Resolve a model name (see module docstring) to an encoder in eval mode."""
    name = name or default_model_name(manifest_path)
    if os.sep in name or name.endswith(".safetensors") or Path(name).is_file():
        if not Path(name).is_file():
            raise UsageError(f"--model {name}: no such checkpoint file")
        encoder, digest = load_encoder(name)
        return LoadedModel(name, encoder, digest)
    if name in BUILTIN:
        return _builtin(name)
    bundled = _bundled_file(name, manifest_path)
    if bundled is not None:
        entry, file = bundled
        encoder, digest = load_encoder(file, expected_sha256=entry["sha256"])
        return LoadedModel(name, encoder, digest)
    # random-NAME for a bundled NAME: its architecture and arguments, seeded random weights
    twin = _bundled_file(name.removeprefix("random-"), manifest_path) if name.startswith("random-") else None
    if twin is not None:
        meta = read_metadata(twin[1])
        return _builtin(name, meta["architecture"], json.loads(meta["encoder_args"]))
    raise UsageError(
        f"--model {name}: not a checkpoint file nor a known model ({', '.join(model_names(manifest_path))})"
    )
