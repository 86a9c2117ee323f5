"""How far the configuration travels: the modules `run_training` takes it through, and how often it
climbs back up to a calling module.

Runs a tiny semi-supervised training (synthetic tones, two of them labelled, 2 steps on the CPU,
stopped after one and resumed) under a
profiler that records every call of an mclx function that takes or returns the configuration: the
``Config``, one of its sections (``DataConfig``, ``ViewsConfig``, ...), its resolved data paths,
the ``TrainPlan`` that holds them, or an object holding one of those (the step function, the
checkpointer). Each such call hangs under the nearest such call above it, from ``run_training``
down; the ``__init__`` that ``@dataclass`` generates is left out (building a record visits no
code of its module). Counted:

- modules entered: the distinct modules of those functions, ``run_training``'s own included;
- climbs back: the distinct (callee module, caller module) pairs of those calls, each a return
  from one module up to a different one that called it (a call made on every step counts once);
  and, finer, the distinct (caller, callee) function pairs in different modules.

    python benchmarks/config_path.py           # the counts
    python benchmarks/config_path.py --calls   # and the calls, indented as they nest
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
from pathlib import Path
from types import FrameType
from typing import Any

import numpy as np
import soundfile as sf

CARRIERS = {"Config", "DataConfig", "ModelConfig", "ViewsConfig", "LossConfig", "TrainConfig", "TrainPlan",
            "DataPaths"}  # fmt: skip
CONFIG = """
[data]
audio = ["audio"]
labels = "labels.csv"
cache = "cache"
[model]
architecture = "melcnn"
embedding_dim = 16
projection_dim = 8
channels = [4, 8]
[views]
segment_s = 0.5
[loss]
kind = "semisupcon"
[train]
steps = 2
batch_size = 4
checkpoint_every = 2
log_every = 1
device = "cpu"
"""


def is_carrier(value: object, holder: bool = True) -> bool:
    """Whether ``value`` is the config (or a part of it), or, with ``holder``, an mclx object that
    holds one (the step function, the checkpointer, the progress report)."""
    kind = type(value)
    if isinstance(value, tuple):
        return any(is_carrier(v, holder) for v in value)
    if not kind.__module__.startswith("mclx"):
        return False
    if kind.__name__ in CARRIERS:
        return True
    return holder and any(is_carrier(v, False) for v in getattr(value, "__dict__", {}).values())


def takes_config(frame: FrameType) -> bool:
    code = frame.f_code
    names = code.co_varnames[: code.co_argcount + code.co_kwonlyargcount]
    return any(is_carrier(frame.f_locals.get(name)) for name in names)


def trace(folder: Path) -> list[tuple[int, str, str]]:
    """(depth, module, function) of every call that takes or returns the config, in call order;
    depth counts only such calls."""
    from mclx.train import run_training

    nodes: list[list[Any]] = []  # [parent index, module, function, takes, returns]
    live: dict[int, int] = {}  # id(frame) -> its node

    def profile(frame: FrameType, event: str, arg: Any) -> None:
        if id(frame) in live and event == "return":
            nodes[live.pop(id(frame))][4] |= is_carrier(arg)
            return
        if event != "call" or not frame.f_globals.get("__name__", "").startswith("mclx"):
            return
        if frame.f_code.co_qualname.startswith("__create_fn__"):
            return
        root = frame.f_code.co_name == "run_training"
        if not live and not root:
            return
        up = frame.f_back
        while up is not None and id(up) not in live:
            up = up.f_back
        parent = live[id(up)] if up is not None else -1
        live[id(frame)] = len(nodes)
        takes = root or takes_config(frame)
        nodes.append([parent, frame.f_globals["__name__"], frame.f_code.co_qualname, takes, False])

    sys.setprofile(profile)
    try:  # a run stopped after its first step, then resumed: both ways into a run
        run_training(str(folder / "tiny.toml"), str(folder / "run"), False, [], quiet=True, stop_after=1)
        run_training(str(folder / "tiny.toml"), str(folder / "run"), True, [], quiet=True)
    finally:
        sys.setprofile(None)
    kept: dict[int, int] = {}  # node -> depth among the kept nodes
    calls = []
    for i, (parent, module, name, takes, returns) in enumerate(nodes):
        while parent >= 0 and parent not in kept:
            parent = nodes[parent][0]
        if takes or returns:
            kept[i] = kept[parent] + 1 if parent >= 0 else 0
            calls.append((kept[i], module, name))
    return calls


def count(calls: list[tuple[int, str, str]]) -> tuple[list[str], set[tuple[str, str]]]:
    modules = list(dict.fromkeys(module for _, module, _ in calls))
    climbs: set[tuple[str, str]] = set()
    stack: list[tuple[str, str]] = []
    for depth, module, name in calls:
        del stack[depth:]
        if stack and stack[-1][0] != module:
            climbs.add((f"{stack[-1][0]}:{stack[-1][1]}", f"{module}:{name}"))
        stack.append((module, name))
    return modules, climbs


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--calls", action="store_true", help="print the calls, indented as they nest")
    args = parser.parse_args()
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        (folder / "audio").mkdir()
        for i in range(4):
            t = np.arange(16000 * 2) / 16000
            sf.write(folder / "audio" / f"{i}.wav", 0.3 * np.sin(2 * np.pi * (200 + 50 * i) * t), 16000)
        (folder / "labels.csv").write_text("path,label\naudio/0.wav,a\naudio/1.wav,b\n")
        (folder / "tiny.toml").write_text(CONFIG)
        calls = trace(folder)
    modules, climbs = count(calls)
    if args.calls:
        seen, path = set(), []
        for depth, module, name in calls:
            del path[depth:]
            path.append(f"{module}:{name}")
            if tuple(path) not in seen:
                seen.add(tuple(path))
                print(f"{'  ' * depth}{path[-1]}")
    print(f"modules entered: {len(modules)} ({', '.join(modules)})")
    rooms = sorted({(callee.split(":")[0], caller.split(":")[0]) for caller, callee in climbs})
    print(f"climbs back to a calling module: {len(rooms)} module pairs")
    for callee_module, caller_module in rooms:
        print(f"  {callee_module} -> {caller_module}")
    print(f"... made by {len(climbs)} function pairs")
    for caller, callee in sorted(climbs):
        print(f"  {callee} -> {caller}")


if __name__ == "__main__":
    main()
