"""torchrun and embedding: the ranks of an embed job end with one store; rank variables alone shard
nothing."""

from __future__ import annotations

import json
import os
import shutil
import socket
from pathlib import Path

from .audio_fixtures import WriteAudio


def test_torchrun_embed_ends_with_one_store_equal_to_a_single_run(
    tmp_path: Path, write_audio: WriteAudio
) -> None:
    import subprocess
    import sys

    from .helpers import assert_same_store, run_cli

    for i in range(6):
        write_audio(f"{'sub/' if i % 2 else ''}t{i}.wav", seconds=1.5 + 0.5 * i, rate=16000, seed=i)
    single = run_cli("embed", str(tmp_path / "audio"), str(tmp_path / "single.h5"), "--model", "mfcc", "-q")
    assert single.returncode == 0, single.stderr
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).parents[1]), "OMP_NUM_THREADS": "1"}
    cmd = [sys.executable, "-m", "torch.distributed.run", "--nproc-per-node", "2", "--master-port", str(port),
           "-m", "mclx", "embed", str(tmp_path / "audio"), str(tmp_path / "out.h5"), "--model", "mfcc",
           "--workers", "1", "-q"]  # fmt: skip
    proc = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    shards = sorted(p.name for p in (tmp_path / "out.h5.shards").iterdir() if p.suffix == ".h5")
    assert shards == ["rank-0-of-2.h5", "rank-1-of-2.h5"]
    assert_same_store(tmp_path / "out.h5", tmp_path / "single.h5")
    # Other settings against the existing out.h5 (its shard stores deleted, as the README allows):
    # refused on every rank, out.h5 untouched.
    shutil.rmtree(tmp_path / "out.h5.shards")
    before = (tmp_path / "out.h5").read_bytes()
    proc = subprocess.run([*cmd, "--hop", "0.5"], capture_output=True, text=True, env=env, timeout=300)
    assert proc.returncode != 0
    assert "out.h5: existing store was made with other settings (hop_s)" in proc.stderr
    assert (tmp_path / "out.h5").read_bytes() == before


def test_rank_variables_alone_do_not_shard_an_embed_run(tmp_path: Path, write_audio: WriteAudio) -> None:
    from .helpers import run_cli

    for i in range(4):
        write_audio(f"t{i}.wav", seconds=1.0, rate=16000, seed=i)
    os.environ.update(RANK="1", WORLD_SIZE="4")  # a cluster's launcher, not torchrun
    try:
        proc = run_cli("embed", str(tmp_path / "audio"), str(tmp_path / "o.h5"), "--model", "mfcc", "--json")
    finally:
        del os.environ["RANK"], os.environ["WORLD_SIZE"]
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout)["files"] == 4
