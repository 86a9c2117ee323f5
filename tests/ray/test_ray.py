"""`mclx embed --engine ray` and mclx.ray.Embedder on a real local Ray runtime.

Each store made on Ray is compared with the store a local run makes of the same files: the
same rows in the same order, statuses and reasons, and vectors within 1e-5. The clusters are
started and shut down here (never `ray stop`); faults are real: an encoder actor that exits,
a node removed, a driver killed with SIGKILL.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from mclx.embed import EmbedSettings, embed
from mclx.inputs import walk_audio
from mclx.ray import Embedder, RaySettings, embed_on_ray
from mclx.ray.engine import ACTOR_DELAY_HOOK, ACTOR_EXIT_HOOK
from mclx.store import read_store

from ..conftest import WriteAudio
from ..helpers import arrays, run_cli

try:
    import ray
    from ray import cluster_utils
except ImportError:  # the extra is not installed: only the test of that case runs
    ray = cluster_utils = None

needs_ray = pytest.mark.skipif(ray is None, reason="needs the ray extra: pip install 'mclx[ray]'")

# Short windows, small batches: many batches from few short files.
ARGS = ["--model", "mfcc", "--level", "both", "--window", "0.5", "--hop", "0.25", "--batch-size", "4", "-q"]
LOCAL = EmbedSettings(
    model="mfcc", level="both", window_s=0.5, hop_s=0.25, batch_size=4, workers=1, quiet=True
)


@pytest.fixture(scope="module")
def cluster() -> Iterator[str]:
    """One local node with two CPUs (one encoder actor, one decoding slot); yields its address."""
    c = cluster_utils.Cluster(initialize_head=True, head_node_args={"num_cpus": 2})
    try:
        yield c.address
    finally:
        c.shutdown()


@pytest.fixture
def corpus(write_audio: WriteAudio, tmp_path: Path) -> list[str]:
    """12 files in nested folders, as a directory walk lists them: 10 tones, one shorter than a
    window (zero-padded), one that is not audio."""
    root = tmp_path / "audio"
    for i in range(10):
        sub = root / ["", "a", "a/b", "c"][i % 4]
        ext = ["wav", "flac", "ogg"][i % 3]
        write_audio(f"{i:02d}.{ext}", seconds=1.0 + 0.3 * i, rate=[22050, 16000, 44100][i % 3],
                    freq=200 + 70 * i, seed=i, directory=sub)  # fmt: skip
    write_audio("short.wav", seconds=0.2, rate=22050, directory=root / "c")
    (root / "a" / "b" / "corrupt.wav").write_bytes(b"RIFF\x00\x00garbage" * 40)
    files = walk_audio("audio")  # paths as a user in tmp_path gives them
    assert len(files) == 12
    return files


@pytest.fixture
def reference(corpus: list[str], tmp_path: Path) -> Path:
    """The local single-process store of the corpus."""
    out = tmp_path / "local.h5"
    summary = embed(corpus, str(out), LOCAL)
    assert (summary.ok, summary.failed) == (11, 1)
    return out


def assert_stores_match(a: Path, b: Path, atol: float = 1e-5) -> None:
    """Same datasets, rows and order; text and counts equal, floats within ``atol`` (NaN = NaN)."""
    xa, xb = arrays(a), arrays(b)
    assert xa.keys() == xb.keys()
    for key in xa:
        if key == "files/mtime_ns":
            continue
        if xa[key].dtype.kind == "f":
            np.testing.assert_allclose(xa[key], xb[key], rtol=0, atol=atol, err_msg=key)
        else:
            np.testing.assert_array_equal(xa[key], xb[key], err_msg=key)


@needs_ray
def test_ray_store_equals_the_local_store(corpus: list[str], reference: Path, cluster: str) -> None:
    out = Path("ray.h5")
    done = run_cli("embed", "audio", str(out), *ARGS, "--engine", "ray", "--ray-address", cluster, "--json")
    assert done.returncode == 1, done.stderr  # finished, one input failed
    summary = json.loads(done.stdout)
    assert (summary["files"], summary["ok"], summary["failed"]) == (12, 11, 1)
    assert_stores_match(reference, out, atol=0)  # on the CPU, bit for bit: the same windows and batch shapes
    store = read_store(out)
    assert store.paths == corpus
    short = next(r for r in store.records if r.path.endswith("short.wav"))
    assert short.segment_count == 1 and short.ends[0] == pytest.approx(0.2, abs=1e-3)
    (bad,) = [r for r in store.records if r.status == "failed"]
    assert bad.path.endswith("corrupt.wav") and bad.error  # equal to the local one: compared above
    assert not Path("ray.h5.journal").exists()


@needs_ray
def test_an_encoder_actor_that_dies_loses_and_repeats_nothing(
    corpus: list[str], reference: Path, cluster: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    marker = tmp_path / "actor-exited"
    monkeypatch.setenv(ACTOR_EXIT_HOOK, f"3:{marker}")  # the driver hands MCLX_* to the workers
    out = tmp_path / "ray.h5"
    summary = embed_on_ray(corpus, str(out), LOCAL, RaySettings(address=cluster, actors=1))
    assert marker.exists(), "no actor exited: the test proves nothing"
    assert (summary.ok, summary.failed, summary.skipped) == (11, 1, 0)
    assert {"first_batch", "take", "actor.load", "actor.idle", "actor.call"} <= summary.stage_s.keys()
    assert 0 < summary.stage_s["actor.forward"] <= summary.stage_s["actor.call"]
    assert_stores_match(reference, out)
    assert len(set(read_store(out).paths)) == 12


@pytest.mark.slow
@needs_ray
def test_driver_killed_with_sigkill_resumes_skipping_files_done(
    write_audio: WriteAudio, tmp_path: Path, cluster: str
) -> None:
    for i in range(24):
        write_audio(f"{i:02d}.wav", seconds=2.5, freq=150 + 25 * i, seed=i, directory=tmp_path / "many")
    files = walk_audio("many")
    embed(files, str(tmp_path / "local.h5"), LOCAL)
    out, journal = tmp_path / "out.h5", tmp_path / "out.h5.journal"
    args = ["embed", "many", str(out), *ARGS, "--engine", "ray", "--ray-address", cluster]
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).parents[2]), "MCLX_JOURNAL_EVERY_S": "0.05"}
    proc = subprocess.Popen([sys.executable, "-m", "mclx", *args], env=env, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 180
    while time.monotonic() < deadline and not list(journal.glob("chunk-*.npz")) and proc.poll() is None:
        time.sleep(0.01)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert not out.exists(), "the run finished before the kill: the test proves nothing"
    assert list(journal.glob("chunk-*.npz"))
    resumed = run_cli(*args, "--json")
    assert resumed.returncode == 0, resumed.stderr
    summary = json.loads(resumed.stdout)
    assert 0 < summary["skipped"] < 24 and summary["ok"] == 24
    assert_stores_match(tmp_path / "local.h5", out)
    assert not journal.exists()


@pytest.mark.slow
@needs_ray
def test_a_node_leaving_mid_run_loses_nothing(corpus: list[str], reference: Path, tmp_path: Path) -> None:
    # The head runs only the driver; the work is on two worker nodes of 2 CPUs, one of which
    # goes away while files are in flight (the one running the encoder actor when it is found).
    c = cluster_utils.Cluster(initialize_head=True, head_node_args={"num_cpus": 0})
    try:
        workers = [c.add_node(num_cpus=2) for _ in range(2)]
        c.wait_for_nodes()
        ray.init(address=c.address, logging_level="WARNING", log_to_driver=False)  # to find the actor
        out, journal = tmp_path / "ray.h5", tmp_path / "ray.h5.journal"
        args = ["embed", "audio", str(out), *ARGS, "--engine", "ray", "--ray-address", c.address]
        args += ["--ray-actors", "1", "--json"]  # one actor: the node left has room for it and a decoder
        env = {**os.environ, "PYTHONPATH": str(Path(__file__).parents[2]), "MCLX_JOURNAL_EVERY_S": "0.05"}
        env[ACTOR_DELAY_HOOK] = "0.2"  # batches of 4 windows: the run lasts seconds after its first file
        proc = subprocess.Popen(
            [sys.executable, "-m", "mclx", *args], env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE
        )
        deadline = time.monotonic() + 180
        while time.monotonic() < deadline and not list(journal.glob("chunk-*.npz")) and proc.poll() is None:
            time.sleep(0.01)
        assert proc.poll() is None, "the run finished before a node left: the test proves nothing"
        c.remove_node(_node_with_the_actor(workers), allow_graceful=False)
        stdout, stderr = proc.communicate(timeout=300)
        assert proc.returncode == 1, stderr.decode()
        summary = json.loads(stdout)
        assert (summary["ok"], summary["failed"]) == (11, 1)
        assert_stores_match(reference, out)
    finally:
        ray.shutdown()
        c.shutdown()


def _node_with_the_actor(workers: list[Any]) -> Any:
    """The worker node that runs the encoder actor now (asked of the cluster's actor table)."""
    from ray._private.state import actors  # the public state API needs the dashboard

    alive = actors(actor_state_name="ALIVE").values()
    nodes = {a["Address"]["NodeID"] for a in alive if "WindowEncoder" in a["ActorClassName"]}
    (node,) = [w for w in workers if w.node_id in nodes]
    return node


@needs_ray
def test_embedder_in_a_user_pipeline_gives_the_vectors_of_mclx_embed(
    corpus: list[str], reference: Path, cluster: str
) -> None:
    # A worker's working directory is not the driver's: the pipeline reads absolute paths.
    by_path = {os.path.abspath(r.path): r for r in read_store(reference).records}
    paths = list(by_path)
    kwargs = {"model": "mfcc", "level": "both", "window": 0.5, "hop": 0.25, "batch_size": 4}
    ray.init(address=cluster, logging_level="WARNING", log_to_driver=False)
    try:
        ds = ray.data.from_items([{"path": p} for p in paths])
        rows = ds.map_batches(
            Embedder, fn_constructor_kwargs=kwargs, batch_size=5, compute=ray.data.ActorPoolStrategy(size=1)
        ).take_all()
        two = [{"path": p, "bytes": Path(p).read_bytes()} for p in paths[:2]]
        from_bytes = ray.data.from_items(two).map_batches(Embedder, fn_constructor_kwargs=kwargs).take_all()
    finally:
        ray.shutdown()
    assert sorted(r["path"] for r in rows) == sorted(paths)
    for row in rows:
        ref = by_path[row["path"]]
        assert (row["status"], row["error"]) == (ref.status, ref.error)
        assert row["global"].dtype == np.float32 and row["global"].shape == (80,)
        if ref.status == "failed":
            assert np.isnan(row["global"]).all() and row["segment_count"] == 0
            continue
        np.testing.assert_allclose(row["global"], ref.global_, rtol=0, atol=1e-5)
        assert row["segment_count"] == ref.segment_count
        np.testing.assert_allclose(row["segments"], ref.segments, rtol=0, atol=1e-5)
        np.testing.assert_allclose(row["start_s"], ref.starts, rtol=0, atol=1e-9)
        np.testing.assert_allclose(row["end_s"], ref.ends, rtol=0, atol=1e-9)
        assert row["duration_s"] == pytest.approx(ref.duration_s)
    for row in from_bytes:
        np.testing.assert_allclose(row["global"], by_path[row["path"]].global_, rtol=0, atol=1e-5)


def test_without_ray_the_engine_is_a_usage_error_naming_the_extra(corpus: list[str], tmp_path: Path) -> None:
    fake = tmp_path / "no-ray" / "ray"
    fake.mkdir(parents=True)
    (fake / "__init__.py").write_text("raise ImportError('No module named ray')\n")
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(fake.parent), str(Path(__file__).parents[2])])}
    done = subprocess.run(
        [sys.executable, "-m", "mclx", "embed", "audio", "out.h5", "--engine", "ray"],
        capture_output=True, text=True, env=env, timeout=120,
    )  # fmt: skip
    assert done.returncode == 2
    assert "mclx[ray]" in done.stderr
    assert not Path("out.h5").exists()
    local = run_cli("embed", "audio", "out.h5", "--ray-address", "auto")
    assert local.returncode == 2 and "--engine ray" in local.stderr


@needs_ray
def test_an_address_where_no_cluster_answers_is_a_usage_error(corpus: list[str]) -> None:
    import socket

    with socket.socket() as closed:  # a free port, then nothing listens on it
        closed.bind(("127.0.0.1", 0))
        port = closed.getsockname()[1]
    done = run_cli("embed", "audio", "out.h5", "--engine", "ray", "--ray-address", f"127.0.0.1:{port}")
    assert done.returncode == 2
    assert f"--ray-address 127.0.0.1:{port}: cannot reach a Ray cluster" in done.stderr
    assert not Path("out.h5").exists() and not Path("out.h5.journal").exists()


def test_an_encoder_actor_runs_as_many_torch_threads_as_the_cpus_it_reserved() -> None:
    import torch

    from mclx.embed import make_plan
    from mclx.ray.engine import ClusterPlan, _WindowEncoder

    settings = EmbedSettings(model="mfcc", device="cpu", precision="fp32", batch_size=4, quiet=True)
    before = torch.get_num_threads()
    try:
        _WindowEncoder(settings, make_plan(settings).attrs["model_sha256"], threads=3)
        assert torch.get_num_threads() == 3  # whatever OMP_NUM_THREADS the node's environment holds
    finally:
        torch.set_num_threads(before)
    # The CPUs the actors leave run the decode tasks; GPU actors reserve none.
    assert ClusterPlan("cpu", actors=1, cpus=2, gpus=0, actor_cpus=1).decoders == 1
    assert ClusterPlan("cpu", actors=4, cpus=16, gpus=0, actor_cpus=2).decoders == 8
    assert ClusterPlan("cuda", actors=2, cpus=16, gpus=2, actor_cpus=None).decoders == 16
