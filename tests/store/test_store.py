"""The HDF5 store at scale: info from counts alone, resumes that read only keys, bounded memory."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import h5py
import numpy as np
import pytest
from typer.testing import CliRunner

from mclx.cli import app
from mclx.store import FileRecord, write_store

from ..helpers import run_cli, settings


@pytest.fixture
def reads(monkeypatch: pytest.MonkeyPatch) -> Iterator[list[str]]:
    """Names of the HDF5 datasets sliced while the test runs."""
    seen: list[str] = []
    original = h5py.Dataset.__getitem__

    def spy(self, args, new_dtype=None):  # type: ignore[no-untyped-def]
        seen.append(self.name)
        return original(self, args, new_dtype)

    monkeypatch.setattr(h5py.Dataset, "__getitem__", spy)
    yield seen


def write_contract_store(path: Path, files: int, segments_per_file: int, dim: int = 4) -> None:
    """A format-1 store written directly with h5py: every 10th file failed, the rest ok."""
    text = h5py.string_dtype("utf-8")
    status = np.array(["failed" if i % 10 == 9 else "ok" for i in range(files)], dtype=object)
    counts = np.where(status == "ok", segments_per_file, 0).astype(np.int64)
    starts = np.concatenate([[0], np.cumsum(counts)[:-1]]).astype(np.int64)
    rows = int(counts.sum())
    with h5py.File(path, "w") as h:
        attrs = {
            "format": "mclx-embeddings", "format_version": 1, "mclx_version": "0", "model": "mfcc",
            "model_sha256": "x", "model_config": "{}", "sample_rate": 16000, "window_s": 3.0,
            "hop_s": 3.0, "dim": dim, "level": "both", "pooling": "mean", "precision": "fp32",
            "created_utc": "2026-01-01T00:00:00+00:00", "argv": "[]",
        }  # fmt: skip
        h.attrs.update(attrs)
        f = h.create_group("files")
        f.create_dataset("path", data=[f"d/{i:06d}.wav" for i in range(files)], dtype=text)
        f.create_dataset("status", data=list(status), dtype=text)
        f.create_dataset("error", data=["bad" if s == "failed" else "" for s in status], dtype=text)
        f.create_dataset("duration_s", data=np.where(status == "ok", 3.0 * segments_per_file, np.nan))
        f.create_dataset("size_bytes", data=np.arange(files, dtype=np.int64))
        f.create_dataset("mtime_ns", data=np.arange(files, dtype=np.int64))
        f.create_dataset("segment_start", data=starts)
        f.create_dataset("segment_count", data=counts)
        h.create_dataset("global", data=np.zeros((files, dim), np.float32))
        s = h.create_group("segments")
        s.create_dataset("embedding", data=np.zeros((rows, dim), np.float32))
        s.create_dataset("file", data=np.repeat(np.arange(files, dtype=np.int64), counts))
        s.create_dataset("start_s", data=np.zeros(rows))
        s.create_dataset("end_s", data=np.zeros(rows))


def test_info_counts_a_million_segment_rows_without_reading_embeddings(
    tmp_path: Path, reads: list[str]
) -> None:
    store = tmp_path / "big.h5"
    write_contract_store(store, files=10_000, segments_per_file=111)  # 9,000 ok: 999,000 rows
    reads.clear()
    result = CliRunner().invoke(app, ["info", str(store), "--json"])
    assert result.exit_code == 0, result.output
    info = json.loads(result.stdout)
    assert (info["files"], info["ok"], info["failed"]) == (10_000, 9_000, 1_000)
    assert info["segments"] == 999_000
    assert info["audio_s"] == pytest.approx(9_000 * 333.0)
    assert info["failures"][0] == {"path": "d/000009.wav", "error": "bad"}
    assert len(info["failures"]) == 1_000
    assert not {"/global", "/segments/embedding", "/segments/start_s", "/segments/end_s"} & set(reads)


def test_a_resume_reads_only_the_keys_of_the_earlier_store(
    write_audio, tmp_path: Path, reads: list[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    from mclx.embed import local, run

    files = [str(write_audio(f"{i}.wav", seconds=2.0, freq=200 + 50 * i)) for i in range(4)]
    out = str(tmp_path / "o.h5")
    run.embed(files[:3], out, settings(level="both"))
    before_loop: list[str] = []
    loop = local.LocalEngine.run
    monkeypatch.setattr(
        local.LocalEngine, "run", lambda self, *a: (before_loop.extend(reads), loop(self, *a))[1]
    )
    reads.clear()
    summary = run.embed(files, out, settings(level="both"))
    assert (summary.skipped, summary.ok) == (3, 4)
    assert before_loop, "the earlier store was not read at all: the spy proves nothing"
    assert not {"/global", "/segments/embedding"} & set(before_loop)


def test_finished_files_leave_memory_once_journaled(
    write_audio, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from mclx.embed import ledger, run

    files = [str(write_audio(f"{i}.wav", seconds=2.0, freq=200 + 50 * i)) for i in range(6)]
    held: list[int] = []
    journal = ledger.Ledger.write_journal

    def check(self):  # type: ignore[no-untyped-def]
        journal(self)
        held.append(sum(r is not None and r.segments is not None for r in self.records))

    monkeypatch.setattr(ledger.Ledger, "write_journal", check)
    summary = run.embed(files, str(tmp_path / "o.h5"), settings(level="both", batch_size=1))
    assert summary.ok == 6 and held
    assert max(held) == 0


ODD_NAMES = ["Artist [feat. Y].wav", "Live [live] [2019].wav", "Bold [/b] close.wav", "[red]x[/red].wav"]


def _odd_store(path: Path, names: list[str], model: str = "mfcc") -> Path:
    attrs = {"format": "mclx-embeddings", "format_version": 1, "mclx_version": "test", "model": model,
             "model_sha256": "0" * 64, "model_config": "{}", "sample_rate": 16000, "window_s": 1.0,
             "hop_s": 1.0, "dim": 2, "level": "global", "pooling": "mean", "precision": "fp32",
             "created_utc": "", "argv": "[]"}  # fmt: skip
    records = [FileRecord(f"./{n}", "failed", f"cannot decode {n}", 0.0, 0, 0) for n in names]
    records.append(FileRecord("./ok.wav", "ok", "", 1.0, 1, 1, global_=np.zeros(2, np.float32)))
    write_store(path, attrs, records)
    return path


def test_info_prints_paths_with_brackets_verbatim(tmp_path: Path) -> None:
    """A store's paths, model and errors are user text, never rich markup (an outside review's defect 1:
    brackets such as "[feat. Y]" vanished from `mclx info`, and "[/b]" raised a markup error)."""
    store = _odd_store(tmp_path / "odd [v2].h5", ODD_NAMES, model="runs/[x]/encoder.safetensors")
    done = run_cli("info", str(store))
    assert done.returncode == 0, done.stderr
    for name in ODD_NAMES:
        assert f"./{name}: cannot decode {name}" in done.stdout
    assert "odd [v2].h5" in done.stdout and "runs/[x]/encoder.safetensors" in done.stdout


def test_fingerprint_written_at_commit_equals_the_one_computed_from_an_older_store(tmp_path: Path) -> None:
    from mclx.store import FINGERPRINT, store_fingerprint

    from ..stores import make_store

    x = np.random.default_rng(0).standard_normal((300, 8)).astype(np.float32)
    make_store(tmp_path / "s.h5", x, failed=(7,), segments=2)
    written = store_fingerprint(tmp_path / "s.h5")
    with h5py.File(tmp_path / "s.h5", "r+") as h:  # as a store made before the attribute existed
        assert h.attrs[FINGERPRINT] == written
        del h.attrs[FINGERPRINT]
    assert store_fingerprint(tmp_path / "s.h5") == written
    make_store(tmp_path / "t.h5", x[:299], segments=2)  # one file fewer
    assert store_fingerprint(tmp_path / "t.h5") != written


@pytest.mark.parametrize("layout", ["chunked", "contiguous", "gzip"])
def test_matrix_rows_at_any_positions_equal_hdf5_reads(tmp_path: Path, layout: str) -> None:
    from mclx.store import MatrixRows

    x = np.random.default_rng(1).standard_normal((1000, 6)).astype(np.float32)
    with h5py.File(tmp_path / "m.h5", "w") as h:
        opts = {
            "chunked": {"chunks": (64, 6)},
            "contiguous": {},
            "gzip": {"chunks": (64, 6), "compression": "gzip"},
        }
        h.create_dataset("x", data=x, **opts[layout])  # type: ignore[arg-type]
    ids = np.array([999, 0, 63, 64, 500, 63, 998])
    with MatrixRows(tmp_path / "m.h5", "x") as rows:
        np.testing.assert_array_equal(rows.take(ids), x[ids])
        assert rows.take(np.zeros(0, np.int64)).shape == (0, 6)
        buf = np.full((100, 6), np.nan, dtype=np.float32)  # one buffer reused, as exact search does
        for lo, n in [(0, 100), (30, 100), (63, 2), (900, 100), (999, 1), (0, 64)]:
            np.testing.assert_array_equal(rows.read_into(lo, buf[:n]), x[lo : lo + n])
        with pytest.raises(ValueError, match="do not fit"):
            rows.read_into(950, buf)
        with pytest.raises(IndexError):
            rows.take(np.array([3, 1000]))


def test_the_store_keeps_the_mean_of_its_embedded_rows_and_a_merge_recomputes_it(tmp_path: Path) -> None:
    from mclx.store import merge_stores, store_mean

    from ..stores import make_store

    rng = np.random.default_rng(7)
    x = rng.standard_normal((30, 6)).astype(np.float32)
    make_store(tmp_path / "a.h5", x[:20], failed=(4,))
    mean, rows = store_mean(tmp_path / "a.h5", "global")
    assert rows == 19 and mean is not None
    np.testing.assert_allclose(mean, np.delete(x[:20], 4, axis=0).mean(axis=0), atol=1e-6)
    make_store(tmp_path / "b.h5", x[20:], start=20)
    merge_stores(str(tmp_path / "m.h5"), [str(tmp_path / "a.h5"), str(tmp_path / "b.h5")])
    merged, rows = store_mean(tmp_path / "m.h5", "global")
    assert rows == 29 and merged is not None
    np.testing.assert_allclose(merged, np.delete(x, 4, axis=0).mean(axis=0), atol=1e-6)
