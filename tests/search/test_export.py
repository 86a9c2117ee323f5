"""`mclx export`: the Parquet table read back with pyarrow equals the store, row for row."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from mclx.search.export import export_parquet
from mclx.store import read_attrs, read_store

from ..stores import make_store

pq = pytest.importorskip("pyarrow.parquet")


def test_file_rows_equal_the_store(tmp_path: Path) -> None:
    x = np.random.default_rng(0).standard_normal((25, 6)).astype(np.float32)
    make_store(tmp_path / "s.h5", x, failed=(4,), segments=2)
    assert export_parquet(str(tmp_path / "s.h5"), str(tmp_path / "s.parquet"), rows_per_group=10) == 25
    f = pq.ParquetFile(tmp_path / "s.parquet")
    assert f.metadata.num_row_groups == 3  # written a group at a time
    table = f.read()
    store = read_store(tmp_path / "s.h5")
    assert table.column("path").to_pylist() == store.paths
    assert table.column("status").to_pylist() == [r.status for r in store.records]
    assert table.column("error").to_pylist() == [r.error for r in store.records]
    assert table.column("duration_s").to_pylist() == [r.duration_s for r in store.records]
    emb = table.column("embedding").to_pylist()
    assert emb[4] is None
    for r, e in zip(store.records, emb, strict=True):
        if r.global_ is not None:
            np.testing.assert_array_equal(np.asarray(e, np.float32), r.global_)
    meta = {k.decode(): v.decode() for k, v in f.schema_arrow.metadata.items()}
    attrs = read_attrs(tmp_path / "s.h5")
    assert meta["model_sha256"] == attrs["model_sha256"] and json.loads(meta["dim"]) == 6


def test_segment_rows_and_cli(tmp_path: Path) -> None:
    x = np.random.default_rng(1).standard_normal((7, 5)).astype(np.float32)
    make_store(tmp_path / "s.h5", x, failed=(2,), segments=3)
    done = subprocess.run([sys.executable, "-m", "mclx", "export", str(tmp_path / "s.h5"),
                           str(tmp_path / "seg.parquet"), "--level", "segments", "--quiet"],
                          capture_output=True, text=True)  # fmt: skip
    assert done.returncode == 0, done.stderr
    table = pq.read_table(tmp_path / "seg.parquet")
    store = read_store(tmp_path / "s.h5")
    want = [(r.path, s, e, v) for r in store.records if r.segments is not None
            for s, e, v in zip(r.starts, r.ends, r.segments, strict=True)]  # fmt: skip
    assert table.num_rows == len(want) == 18
    assert table.column("path").to_pylist() == [w[0] for w in want]
    assert table.column("start_s").to_pylist() == [w[1] for w in want]
    np.testing.assert_array_equal(np.asarray(table.column("embedding").to_pylist(), np.float32),
                                  np.stack([w[3] for w in want]))  # fmt: skip
    argv = [sys.executable, "-m", "mclx", "export", str(tmp_path / "s.h5"), str(tmp_path / "x.parquet")]
    other = subprocess.run([*argv, "--level", "frames"], capture_output=True, text=True)
    assert other.returncode == 2 and "--level frames" in other.stderr


def test_the_duckdb_recipe_answers_what_mclx_search_answers(tmp_path: Path) -> None:
    """docs/search-and-export.md's similarity query, run by DuckDB over the export, gives the hits
    and scores of `mclx search` (centred rows), failed rows left out."""
    duckdb = pytest.importorskip("duckdb")
    from mclx.search import search

    page = (Path(__file__).parents[2] / "docs" / "search-and-export.md").read_text()
    sql = page.split("<!-- duckdb-similarity -->\n```sql\n", 1)[1].split("```", 1)[0]
    rng = np.random.default_rng(3)
    x = (rng.standard_normal((150, 8)) + 2.0).astype(np.float32)  # >= 100 rows: search centres
    paths = make_store(tmp_path / "s.h5", x, failed=(7,))
    export_parquet(str(tmp_path / "s.h5"), str(tmp_path / "out.parquet"))
    query = paths[3]
    sql = sql.replace("FLOAT[512]", "FLOAT[8]").replace("range(1, 513)", "range(1, 9)")
    sql = sql.replace("'/music/a.flac'", f"'{query}'").replace(
        "'out.parquet'", f"'{tmp_path / 'out.parquet'}'"
    )
    rows = duckdb.sql(sql).fetchall()
    hits = search(str(tmp_path / "s.h5"), [query], k=10)
    assert [p for p, _ in rows] == [h.path for h in hits]
    np.testing.assert_allclose([s for _, s in rows], [h.score for h in hits], atol=1e-5)
