"""The learning-rate schedule: a pure function of the step."""

from __future__ import annotations

import math

from mclx.config import Config


def lr_at(step: int, config: Config) -> float:
    """Linear warm-up, then cosine decay to zero."""
    t = config.train
    if step < t.warmup_steps:
        return t.lr * (step + 1) / t.warmup_steps
    progress = (step - t.warmup_steps) / max(1, t.steps - t.warmup_steps)
    return t.lr * 0.5 * (1 + math.cos(math.pi * min(1.0, progress)))
