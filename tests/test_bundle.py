"""Bundled models reach every install: the package carries its manifest and weights (package data)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

import mclx
from mclx.models.registry import MANIFEST_PATH, PACKAGE_DIR, read_manifest

REPO = Path(mclx.__file__).resolve().parent.parent
MCLX_BASE_1_SHA256 = "8870aa93b3b0d19f05ba9c3a6ed9162319de11454f513e571ee30e118cfa905c"  # MODEL_CARD, 2026-11


def test_package_manifest_equals_the_top_level_file() -> None:
    top = REPO / "weights_manifest.json"
    if not top.exists():
        pytest.skip("not a source checkout")
    assert MANIFEST_PATH.read_bytes() == top.read_bytes()


def test_every_bundled_file_is_inside_the_package_and_named_by_default() -> None:
    manifest = read_manifest()
    names = [m["name"] for m in manifest["models"]]
    assert manifest["default"] in [*names, "mfcc"]
    for entry in manifest["models"]:
        path = PACKAGE_DIR / entry["file"]
        assert path.resolve().is_relative_to(PACKAGE_DIR)
        assert path.stat().st_size == entry["bytes"]
        assert {"sha256", "architecture", "sample_rate", "window_s", "embedding_dim", "licence",
                "trained_on", "probe"} <= set(entry)  # fmt: skip


def test_mclx_base_1_stays_the_published_weights() -> None:
    """Published numbers name mclx-base-1; its weights may never change under that name."""
    from mclx.models.registry import load_model

    assert load_model("mclx-base-1").sha256 == MCLX_BASE_1_SHA256
    (entry,) = [m for m in read_manifest()["models"] if m["name"] == "mclx-base-1"]
    assert entry["sha256"] == MCLX_BASE_1_SHA256


@pytest.mark.slow
def test_a_wheel_install_lists_and_verifies_the_bundled_models(tmp_path: Path) -> None:
    wheels, target = tmp_path / "wheels", tmp_path / "site"
    subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q",
                    "-w", str(wheels), str(REPO)], check=True, cwd=tmp_path)  # fmt: skip
    (wheel,) = wheels.glob("mclx-*.whl")
    subprocess.run([sys.executable, "-m", "pip", "install", "--no-deps", "-q", "--target", str(target),
                    str(wheel)], check=True, cwd=tmp_path)  # fmt: skip
    env = {**os.environ, "PYTHONPATH": str(target)}
    where = subprocess.run([sys.executable, "-c", "import mclx; print(mclx.__file__)"], env=env,
                           cwd=tmp_path, capture_output=True, text=True, check=True)  # fmt: skip
    assert Path(where.stdout.strip()).is_relative_to(target)  # the installed copy, not the checkout
    done = subprocess.run([sys.executable, "-m", "mclx", "models", "--verify", "--json"], env=env,
                          cwd=tmp_path, capture_output=True, text=True)  # fmt: skip
    assert done.returncode == 0, done.stderr
    rows = {row["name"]: row for row in json.loads(done.stdout)}
    for entry in read_manifest()["models"]:
        assert rows[entry["name"]]["verified"] is True
    assert [r["name"] for r in rows.values() if r["default"]] == [read_manifest()["default"]]
