"""`mclx train`: contrastive pretraining of an encoder, the training wing of mclx.

- ``plan``: everything a run works out before its first step (config, data paths, labels,
  the state resumed from, ranks, device), then the tracks decoded into the cache;
- ``data``: the config's data paths, the audio files they name, the decoded-track cache;
- ``labels``: per-track supervision read from a CSV;
- ``batch``: what one step trains on (tracks, views and their segments, their layout over
  ranks, the loss's target);
- ``model``: the encoder with the head the loss sees (projection MLP or CPC);
- ``losses``: the contrastive losses as functions of plain tensors;
- ``augment``: batched augmentations on the device;
- ``loop``: :func:`run_training`, the step, the progress report and the schedule;
- ``rundir``: what a run writes to its directory and reads back on ``--resume``.
"""

from __future__ import annotations

from mclx.train.batch import batches, make_batch, target_matrix
from mclx.train.loop import Progress, Step, lr_at, run_training
from mclx.train.model import build_model
from mclx.train.plan import TrainData, TrainPlan, make_train_plan, prepare_data

__all__ = [
    "Progress",
    "Step",
    "TrainData",
    "TrainPlan",
    "batches",
    "build_model",
    "lr_at",
    "make_batch",
    "make_train_plan",
    "prepare_data",
    "run_training",
    "target_matrix",
]
