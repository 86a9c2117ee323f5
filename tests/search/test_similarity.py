"""`mclx search` and `mclx index`: exact search equals a numpy reference, the FAISS index finds
what exact search finds (HNSW, and IVF-SQ8 whose candidates are re-scored with the exact rows),
a stale or foreign index is not used, a query path matches however it is spelled, and bad input
ends in one line (exit 2)."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import h5py
import numpy as np
import pytest

from mclx.errors import UsageError
from mclx.search import index as searchindex
from mclx.search import rows as searchrows
from mclx.search import similarity

from ..audio_fixtures import WriteAudio
from ..stores import make_store


def reference(db: np.ndarray, q: np.ndarray, k: int, drop: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The slow, obvious answer: every cosine similarity, sorted."""
    dbn = db / np.linalg.norm(db, axis=1, keepdims=True)
    qn = q / np.linalg.norm(q, axis=1, keepdims=True)
    s = qn @ dbn.T
    s[drop] = -np.inf
    order = np.argsort(-s, axis=1, kind="stable")[:, :k]
    return np.take_along_axis(s, order, axis=1), order


@pytest.mark.parametrize("centred", [True, False])
def test_exact_search_equals_numpy_reference(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, centred: bool
) -> None:
    """Centred (the default): cosines of the rows minus the mean of the store's embedded rows;
    raw: of the rows as stored. Rows offset by a common vector, as real embeddings are."""
    monkeypatch.setattr(searchrows, "CHUNK", 97)  # many chunks, the last one short
    rng = np.random.default_rng(0)
    x = (rng.standard_normal((1000, 24)) + 3.0 * rng.standard_normal(24)).astype(np.float32)
    paths = make_store(tmp_path / "s.h5", x, failed=(3, 500))
    queries = [paths[0], paths[10], paths[999]]
    hits = similarity.search(str(tmp_path / "s.h5"), queries, k=7, centred=centred)
    drop = np.zeros((3, 1000), bool)
    drop[:, [3, 500]] = True  # failed rows are never hits
    drop[[0, 1, 2], [0, 10, 999]] = True  # nor the query itself
    centre = np.delete(x, [3, 500], axis=0).astype(np.float64).mean(axis=0) if centred else 0.0
    scores, order = reference(x - centre, x[[0, 10, 999]] - centre, 7, drop)
    for j, q in enumerate(queries):
        mine = [h for h in hits if h.query == q]
        assert [h.rank for h in mine] == list(range(1, 8))
        assert [h.path for h in mine] == [paths[i] for i in order[j]]
        np.testing.assert_allclose([h.score for h in mine], scores[j], atol=1e-5)
    if not centred:
        assert min(h.score for h in hits) > 0.5  # the common offset makes every raw cosine high
    with_self = similarity.search(str(tmp_path / "s.h5"), [paths[10]], k=1, include_self=True)
    assert with_self[0].path == paths[10] and with_self[0].score == pytest.approx(1.0, abs=1e-5)


def test_segment_search_returns_moments(tmp_path: Path) -> None:
    x = np.random.default_rng(2).standard_normal((40, 16)).astype(np.float32)
    paths = make_store(tmp_path / "s.h5", x, segments=3)
    hits = similarity.search(str(tmp_path / "s.h5"), [paths[5]], k=4, level="segments")
    from mclx.store import read_store

    data = read_store(tmp_path / "s.h5")
    rows = [(r.path, s, e, v) for r in data.records if r.path != paths[5]
            for s, e, v in zip(r.starts, r.ends, r.segments, strict=True)]  # fmt: skip
    centre = np.concatenate([r.segments for r in data.records]).astype(np.float64).mean(axis=0)
    db = np.stack([v for *_, v in rows]) - centre  # centred by the mean of every segment row
    scores, order = reference(db, x[[5]] - centre, 4, np.zeros((1, len(rows)), bool))
    assert [(h.path, h.start_s, h.end_s) for h in hits] == [rows[i][:3] for i in order[0]]
    np.testing.assert_allclose([h.score for h in hits], scores[0], atol=1e-5)


def test_faiss_index_recall_and_staleness(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    pytest.importorskip("faiss")
    rng = np.random.default_rng(3)
    centres = rng.standard_normal((50, 32))
    x = (centres[rng.integers(0, 50, 4000)] + 0.5 * rng.standard_normal((4000, 32))).astype(np.float32)
    paths = make_store(tmp_path / "s.h5", x)
    meta = similarity.build_index(str(tmp_path / "s.h5"))
    assert meta["rows"] == 4000 and meta["kind"].startswith("HNSW")
    queries = paths[:200]
    exact = similarity.search(str(tmp_path / "s.h5"), queries, k=10, exact=True)
    approx = similarity.search(str(tmp_path / "s.h5"), queries, k=10)
    truth: dict[str, set[str]] = {}
    for h in exact:
        truth.setdefault(h.query, set()).add(h.path)
    recall = np.mean([h.path in truth[h.query] for h in approx])
    assert recall >= 0.95
    assert "stale" not in capsys.readouterr().err
    make_store(tmp_path / "s.h5", x[:3999])  # the store changed under its index
    again = similarity.search(str(tmp_path / "s.h5"), queries[:1], k=10)
    assert "stale" in capsys.readouterr().err
    assert {h.path for h in again} == truth[queries[0]]  # answered exactly instead


def clustered(n: int, dim: int, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    centres = rng.standard_normal((max(16, n // 200), dim))
    return (centres[rng.integers(0, len(centres), n)] + 0.6 * rng.standard_normal((n, dim))).astype(
        np.float32
    )


def test_ivf_index_reranks_candidates_with_exact_rows(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    pytest.importorskip("faiss")
    monkeypatch.setattr(searchindex, "HNSW_MAX", 1000)  # 20k rows: the IVF-SQ8 path
    x = clustered(20_000, 64, seed=4)
    paths = make_store(tmp_path / "s.h5", x, failed=(11,))
    meta = similarity.build_index(str(tmp_path / "s.h5"))
    assert meta["index"] == "ivf-sq8" and meta["rows"] == 19_999
    assert Path(f"{tmp_path / 's.h5'}.global.faiss").stat().st_size < x.nbytes / 3  # codes, not floats
    queries = paths[::100]
    approx = similarity.search(str(tmp_path / "s.h5"), queries, k=10)
    exact = similarity.search(str(tmp_path / "s.h5"), queries, k=10, exact=True)
    drop = np.zeros((len(queries), len(x)), bool)
    drop[:, 11] = True
    drop[np.arange(len(queries)), np.arange(0, len(x), 100)] = True
    centre = np.delete(x, 11, axis=0).astype(np.float64).mean(axis=0)  # the mean of the embedded rows
    scores, order = reference(x - centre, x[::100] - centre, 10, drop)
    truth: dict[str, set[str]] = {}
    for j, q in enumerate(queries):
        mine = [h for h in exact if h.query == q]
        assert [h.path for h in mine] == [paths[i] for i in order[j]]
        np.testing.assert_allclose([h.score for h in mine], scores[j], atol=1e-5)
        truth[q] = {h.path for h in mine}
    recall = np.mean([h.path in truth[h.query] for h in approx])
    assert recall >= 0.95, recall
    exact_score = {(h.query, h.path): h.score for h in exact}
    for h in approx:  # re-ranked: the score of every hit is its exact cosine, ranks follow it
        assert h.path != h.query and h.path != paths[11]
        if (h.query, h.path) in exact_score:
            assert h.score == pytest.approx(exact_score[h.query, h.path], abs=1e-5)
    for q in queries:
        mine = [h.score for h in approx if h.query == q]
        assert len(mine) == 10 and mine == sorted(mine, reverse=True)


def test_a_foreign_index_is_refused(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    pytest.importorskip("faiss")
    x = clustered(500, 16, seed=5)
    paths = make_store(tmp_path / "a.h5", x)
    make_store(tmp_path / "b.h5", clustered(500, 16, seed=6), failed=(0,))  # another store
    similarity.build_index(str(tmp_path / "b.h5"))
    for suffix in (".global.faiss", ".global.faiss.json"):
        shutil.copyfile(f"{tmp_path / 'b.h5'}{suffix}", f"{tmp_path / 'a.h5'}{suffix}")
    hits = similarity.search(str(tmp_path / "a.h5"), paths[:1], k=3)
    assert "stale" in capsys.readouterr().err
    _, order = reference(x, x[:1], 3, np.eye(1, len(x), dtype=bool))
    assert [h.path for h in hits] == [paths[i] for i in order[0]]


def test_query_path_matches_as_given_absolute_or_relative(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    (tmp_path / "music").mkdir()
    for name in ("a.wav", "b.wav"):
        (tmp_path / "music" / name).write_bytes(b"")
    x = np.eye(3, 4, dtype=np.float32)
    make_store(tmp_path / "s.h5", x)
    with h5py.File(tmp_path / "s.h5", "r+") as h:  # one path stored relative, one absolute, one as "./"
        stored = ["music/a.wav", str(tmp_path / "music" / "b.wav"), "./music/c.wav"]
        h["files/path"][:] = np.array([p.encode() for p in stored], dtype=object)
    rows = similarity.Rows("s.h5", "global")
    assert rows.find("music/a.wav") == 0  # as stored
    assert rows.find(str(tmp_path / "music" / "a.wav")) == 0  # absolute query, relative store
    assert rows.find("./music/../music/a.wav") == 0
    assert rows.find("music/b.wav") == 1  # relative query, absolute store
    assert rows.find("music/c.wav") == 2 and rows.find(str(tmp_path / "music" / "c.wav")) == 2
    assert rows.find("music/d.wav") == -1
    hits = similarity.search("s.h5", [str(tmp_path / "music" / "a.wav")], k=3)
    assert [h.path for h in hits] == stored[1:]  # its own file is left out


def test_bad_input_is_a_usage_error(tmp_path: Path) -> None:
    x = np.ones((3, 4), np.float32)
    paths = make_store(tmp_path / "s.h5", x, failed=(0, 1, 2))
    with pytest.raises(UsageError, match="no embedded rows"):
        similarity.search(str(tmp_path / "s.h5"), [paths[0]], k=3)
    make_store(tmp_path / "t.h5", np.eye(3, 4, dtype=np.float32))
    with pytest.raises(UsageError, match="-k 0"):
        similarity.search(str(tmp_path / "t.h5"), [paths[0]], k=0)
    with pytest.raises(UsageError, match="neither a path"):
        similarity.search(str(tmp_path / "t.h5"), ["/nowhere.wav"], k=1)
    noise = tmp_path / "noise.wav"
    noise.write_bytes(b"not audio at all")
    with pytest.raises(UsageError, match="another model"):  # the store's sha256 is not mfcc's
        similarity.search(str(tmp_path / "t.h5"), [str(noise)], k=1)


def mclx(*args: str, stdin: str = "") -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "mclx", *args], input=stdin, text=True, capture_output=True)


def test_cli_audio_query_json_and_stdin(tmp_path: Path, write_audio: WriteAudio) -> None:
    folder = tmp_path / "audio"
    for i, freq in enumerate((220.0, 880.0, 3000.0)):
        write_audio(f"t{i}.wav", seconds=3.0, freq=freq, directory=folder)
    done = mclx("embed", str(folder), str(tmp_path / "s.h5"), "--model", "mfcc", "--level", "both", "--quiet")
    assert done.returncode == 0, done.stderr
    copy = tmp_path / "query.wav"
    shutil.copyfile(folder / "t1.wav", copy)  # not in the store: embedded with the store's model
    out = mclx("search", str(tmp_path / "s.h5"), str(copy), "-k", "2", "--json")
    assert out.returncode == 0, out.stderr
    lines = [json.loads(line) for line in out.stdout.splitlines()]
    assert lines[0]["path"].endswith("t1.wav") and lines[0]["score"] > 0.999 and lines[0]["rank"] == 1
    assert [h["rank"] for h in lines] == [1, 2] and "start_s" not in lines[0]
    listed = mclx("search", str(tmp_path / "s.h5"), "-", "--json", "-k", "1", "--level", "segments",
                  stdin=f"{folder / 't0.wav'}\n{folder / 't2.wav'}\n")  # fmt: skip
    hits = [json.loads(line) for line in listed.stdout.splitlines()]
    assert [h["query"] for h in hits] == [str(folder / "t0.wav"), str(folder / "t2.wav")]
    assert all("start_s" in h and not h["path"].endswith(Path(h["query"]).name) for h in hits)
    table = mclx("search", str(tmp_path / "s.h5"), str(folder / "t0.wav"))
    assert table.returncode == 0 and "t1.wav" in table.stdout
    bad = mclx("search", str(tmp_path / "s.h5"), str(folder / "t0.wav"), "-k", "0")
    assert bad.returncode == 2 and len(bad.stderr.strip().splitlines()) == 1


def test_a_store_of_few_rows_is_searched_by_raw_cosine(tmp_path: Path) -> None:
    """Below MIN_CENTRE_ROWS embedded rows the store's own mean is mostly its rows: no centring."""
    rng = np.random.default_rng(5)
    x = (rng.standard_normal((searchrows.MIN_CENTRE_ROWS - 1, 8)) + 2.0).astype(np.float32)
    paths = make_store(tmp_path / "s.h5", x)
    hits = similarity.search(str(tmp_path / "s.h5"), [paths[0]], k=3)
    drop = np.zeros((1, len(x)), bool)
    drop[0, 0] = True
    scores, order = reference(x, x[[0]], 3, drop)
    assert [h.path for h in hits] == [paths[i] for i in order[0]]
    np.testing.assert_allclose([h.score for h in hits], scores[0], atol=1e-5)


def test_an_index_built_raw_does_not_serve_a_centred_search(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    pytest.importorskip("faiss")
    x = clustered(500, 16, seed=6)
    paths = make_store(tmp_path / "s.h5", x)
    similarity.build_index(str(tmp_path / "s.h5"), centred=False)
    capsys.readouterr()
    similarity.search(str(tmp_path / "s.h5"), [paths[0]], k=3)
    assert "built for a raw search" in capsys.readouterr().err
    similarity.search(str(tmp_path / "s.h5"), [paths[0]], k=3, centred=False)
    assert "stale" not in capsys.readouterr().err


def test_exact_search_of_many_queries_equals_one_query_at_a_time(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Fewer queries than dimensions divide the scores by the rows' lengths, more scale the rows
    first: both are the same cosine."""
    monkeypatch.setattr(searchrows, "CHUNK", 61)
    x = clustered(600, 24, seed=9)
    paths = make_store(tmp_path / "s.h5", x, failed=(7,))
    queries = paths[10:50]  # 40 queries > 24 dimensions
    together = similarity.search(str(tmp_path / "s.h5"), queries, k=5, exact=True)
    for q in (queries[0], queries[17], queries[39]):
        alone = similarity.search(str(tmp_path / "s.h5"), [q], k=5, exact=True)
        mine = [h for h in together if h.query == q]
        assert [h.path for h in mine] == [h.path for h in alone]
        np.testing.assert_allclose([h.score for h in mine], [h.score for h in alone], atol=1e-6)


@pytest.mark.parametrize(
    "hit",
    [
        similarity.Hit("q.flac", 1, '/m/a "quoted" \\ päth\t.flac', 0.123456789),
        similarity.Hit("/m/\udcff-not-utf8.flac", 10, "/m/ü.flac", -0.5, 1.25, 3.25),
        similarity.Hit("q", 2, "p", float("-0.0"), 0.0, 2.0),
    ],
)
def test_a_hits_json_line_is_json_dumps_of_it(hit: similarity.Hit) -> None:
    assert hit.json_line() == json.dumps(hit.as_json()) + "\n"


def test_a_search_lets_go_of_the_store(tmp_path: Path) -> None:
    """A long-lived process searching again and again keeps no descriptor of the store open."""
    import os

    paths = make_store(tmp_path / "s.h5", clustered(300, 16, seed=11))
    before = len(os.listdir("/proc/self/fd"))
    for _ in range(5):
        similarity.search(str(tmp_path / "s.h5"), paths[:3], k=3, exact=True)
    assert len(os.listdir("/proc/self/fd")) == before
