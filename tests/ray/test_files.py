"""The Ray decode task: windows cut as a local run cuts them, packed across files into full batches."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

from mclx.embed.file import FileWindows
from mclx.embed.windows import Window
from mclx.errors import DecodeError
from mclx.ray import files
from mclx.ray.files import decode_task, files_per_task

from ..conftest import WriteAudio

RATE, WINDOW, HOP, CHUNK = 16000, 8000, 4000, 4  # 0.5 s windows every 0.25 s, batches of 4


def _decode(paths: list[Path]) -> list[dict[str, np.ndarray]]:
    batch = {"index": np.arange(len(paths)), "path": np.array([str(p) for p in paths], dtype=object)}
    return list(decode_task(batch, RATE, WINDOW, HOP, CHUNK))


def test_windows_of_consecutive_files_fill_every_chunk_but_the_last(write_audio: WriteAudio) -> None:
    paths = [
        write_audio(f"{i}.wav", seconds=s, rate=16000, freq=300 + 100 * i)
        for i, s in enumerate((1.0, 1.7, 0.3))
    ]
    chunks = _decode(paths)
    assert [len(c["index"]) for c in chunks[:-1]] == [CHUNK] * (len(chunks) - 1)
    rows = {k: np.concatenate([c[k] for c in chunks]) for k in chunks[0]}
    expected = [(i, list(FileWindows(str(p), RATE, WINDOW, HOP))) for i, p in enumerate(paths)]
    assert sum(len(w) for _, w in expected) > CHUNK  # several files share a chunk
    row = 0
    for index, windows in expected:
        for number, (win, samples) in enumerate(windows):
            assert (rows["index"][row], rows["window"][row]) == (index, number)
            assert (rows["start"][row], rows["end"][row]) == (win.start, win.end)
            assert rows["samples"][row].tobytes() == samples.tobytes()  # bit for bit the local windows
            last = number == len(windows) - 1
            assert rows["count"][row] == (len(windows) if last else -1)
            assert np.isnan(rows["duration_s"][row]) != last
            assert rows["error"][row] == ""
            row += 1
    assert row == len(rows["index"])
    assert rows["duration_s"][rows["count"] >= 0] == pytest.approx([1.0, 1.7, 0.3], abs=1e-3)


def test_a_file_that_fails_midway_is_one_error_row_and_its_unsent_windows_go(
    write_audio: WriteAudio, monkeypatch: pytest.MonkeyPatch
) -> None:
    good = write_audio("good.wav", seconds=1.0, rate=16000)
    bad = Path("bad.wav")

    class Breaks(FileWindows):
        def __iter__(self) -> Iterator[tuple[Window, np.ndarray]]:
            if self.path == str(bad):
                yield Window(0, WINDOW), np.ones(WINDOW, np.float32)
                yield Window(HOP, HOP + WINDOW), np.ones(WINDOW, np.float32)
                raise DecodeError("truncated after two windows")
            yield from super().__iter__()

    monkeypatch.setattr(files, "FileWindows", Breaks)
    chunks = _decode([bad, good, good])
    rows = {k: np.concatenate([c[k] for c in chunks]) for k in chunks[0]}
    failed = rows["index"] == 0
    assert failed.sum() == 1  # the windows read before the failure were never sent
    assert rows["error"][failed][0] == "truncated after two windows" and rows["window"][failed][0] == -1
    assert set(rows["index"][~failed]) == {1, 2} and (rows["error"][~failed] == "").all()
    assert [len(c["index"]) for c in chunks[:-1]] == [CHUNK] * (len(chunks) - 1)


def test_files_per_task_keeps_two_tasks_per_decoder_and_at_most_sixteen_files() -> None:
    assert files_per_task(48, 1) == 16
    assert files_per_task(16, 1) == 8
    assert files_per_task(3, 4) == 1
    assert files_per_task(10**6, 100) == files.MAX_FILES_PER_TASK == 16
