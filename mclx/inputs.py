"""Which files an embed run reads: paths, recursive directories, stdin lists, shards."""

from __future__ import annotations

import hashlib
import os
import sys
from collections import Counter
from collections.abc import Iterable
from pathlib import Path
from typing import TextIO

from mclx.errors import UsageError
from mclx.formats import AUDIO_EXTENSIONS

__all__ = ["AUDIO_EXTENSIONS", "expand_inputs", "skipped_summary", "walk_audio"]
APPLEDOUBLE = "._ (macOS metadata)"


def parse_path_list(stream: TextIO | None = None, null: bool = False) -> list[str]:
    """Paths read from a stream, one per line (or NUL-separated), as given.

    Lines: blank ones are skipped; a line that names an existing file is that path, whatever it
    starts or ends with (``#1 hit.wav``, `` lead.wav``); otherwise a line starting with ``#`` is
    a comment, and other lines lose the spaces around them (indented or padded lists).
    """
    stream = stream if stream is not None else sys.stdin
    text = stream.read()
    if null:
        return [item for item in text.split("\0") if item]
    paths = []
    for line in text.splitlines():
        if os.path.lexists(line):
            paths.append(line)
        elif line.strip() and not line.lstrip().startswith("#"):
            paths.append(line.strip())
    return paths


def walk_audio(directory: str, skipped: Counter[str] | None = None) -> list[str]:
    """Audio files under ``directory`` (recursive, by extension), sorted; symlink loops cut.

    Every other file is counted in ``skipped`` by its extension (macOS "._" resource forks,
    which carry audio extensions but hold metadata, under their own key).
    """
    found: list[str] = []
    seen: set[tuple[int, int]] = set()
    for root, dirs, files in os.walk(directory, followlinks=True):
        st = os.stat(root)
        key = (st.st_dev, st.st_ino)
        if key in seen:
            dirs[:] = []
            continue
        seen.add(key)
        dirs.sort()
        for name in sorted(files):
            ext = os.path.splitext(name)[1].lower()
            if name.startswith("._"):
                ext = APPLEDOUBLE
            elif ext in AUDIO_EXTENSIONS:
                found.append(os.path.join(root, name))
                continue
            if skipped is not None:
                skipped[ext or "no extension"] += 1
    return found


def skipped_summary(skipped: Counter[str], shown: int = 6) -> str:
    """'412 files skipped: not audio (.jpg 230, .txt 12, ...)', or '' when none were."""
    total = sum(skipped.values())
    if not total:
        return ""
    parts = [f"{ext} {n}" for ext, n in skipped.most_common(shown)]
    more = ", ..." if len(skipped) > shown else ""
    return f"{total} file{'s' if total != 1 else ''} skipped: not audio ({', '.join(parts)}{more})"


def expand_inputs(
    inputs: Iterable[str],
    stdin: TextIO | None = None,
    null: bool = False,
    skipped: Counter[str] | None = None,
) -> list[str]:
    """Files in input order, duplicates dropped. A missing input path is a usage error.

    Files named directly (or on stdin) are kept whatever their extension: the decoders say
    whether they can read them. Directory walks count what they leave out in ``skipped``.
    """
    files: list[str] = []
    for item in inputs:
        if item == "-":
            files.extend(parse_path_list(stdin, null=null))
        elif os.path.isdir(item):
            files.extend(walk_audio(item, skipped))
        elif os.path.exists(item) or os.path.islink(item):
            files.append(item)
        else:
            raise UsageError(f"input {item}: no such file or directory")
    return list(dict.fromkeys(files))


def path_shard(path: str, num_shards: int) -> int:
    """Stable shard of a path: the same on every machine and Python run (no hash seed)."""
    digest = hashlib.sha1(path.encode("utf-8", "surrogateescape")).digest()
    return int.from_bytes(digest[:8], "big") % num_shards


def parse_shard(spec: str | None) -> tuple[int, int] | None:
    """'I/N' (0 <= I < N) -> (I, N); None without a flag (RANK/WORLD_SIZE alone shard nothing)."""
    if spec is None:
        return None
    try:
        index_s, count_s = spec.split("/")
        index, count = int(index_s), int(count_s)
    except ValueError:
        raise UsageError(f"--shard {spec}: expected I/N, e.g. 0/4") from None
    if count < 1 or not 0 <= index < count:
        raise UsageError(f"--shard {spec}: need 0 <= I < N")
    return index, count


def shard_store_path(output: str, rank: int, world: int) -> str:
    """Where rank ``rank`` of a torchrun embed writes: OUTPUT.h5.shards/rank-R-of-N.h5."""
    out = Path(output)
    return str(out.with_name(out.name + ".shards") / f"rank-{rank}-of-{world}.h5")


def select_shard(files: list[str], shard: tuple[int, int] | None) -> list[str]:
    if shard is None:
        return files
    index, count = shard
    return [f for f in files if path_shard(f, count) == index]


def check_output_writable(output: str) -> None:
    """Fail before any work if OUTPUT cannot be created where the user asked."""
    parent = Path(output).parent
    if not parent.is_dir():
        raise UsageError(f"output {output}: directory {parent} does not exist")
    if not os.access(parent, os.W_OK | os.X_OK):
        raise UsageError(f"output {output}: directory {parent} is not writable")
    if Path(output).is_dir():
        raise UsageError(f"output {output}: is a directory")
