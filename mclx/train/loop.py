"""`mclx train`: contrastive pretraining, read top to bottom in :func:`run_training`.

What the run needs is worked out once (:mod:`mclx.train.plan`); then the loop: build the model,
prepare the data, restore, and for each step the step function, logging and checkpoints.
Every random choice of step k (tracks, segment starts, augmentations) is drawn from
generators seeded with (seed, k), so a run resumed at step k continues exactly as if it
had never stopped: on the CPU the final weights are bit-identical.
"""

from __future__ import annotations

import contextlib
import math
import sys
import time
from collections.abc import Iterator
from typing import Any

import torch
from torch import Tensor, nn

from mclx.config import Config
from mclx.distributed import any_rank, mean_over_ranks
from mclx.errors import Interrupted, TrainingDiverged, WeightsError, one_line
from mclx.signals import stop_on_signals
from mclx.train import losses
from mclx.train.augment import chain
from mclx.train.batch import ViewLayout, batches, effective_views, make_candidates, make_target
from mclx.train.model import TrainedModel, build_model
from mclx.train.plan import TrainData, TrainPlan, make_train_plan, prepare_data
from mclx.train.rundir import STATE, Checkpointer, MetricsLog, exclusive


def run_training(
    config_path: str,
    out_dir: str | None,
    resume: bool,
    overrides: list[str],
    quiet: bool = False,
    stop_after: int | None = None,
) -> dict[str, Any]:
    """Train from a TOML config; returns a summary (steps, final_loss, wall_s, examples_per_s, out_dir).

    ``stop_after``: checkpoint and return after this many steps in total, as if the run had
    been interrupted there (``--resume`` continues it).
    """
    plan = make_train_plan(config_path, out_dir, resume, overrides, quiet, stop_after)
    main, start, end, train = plan.rank.main, plan.start, plan.end, plan.config.train
    with exclusive(plan.out) if main else contextlib.nullcontext():  # one run writes to out
        torch.manual_seed(train.seed)
        model = build_model(plan.config)
        data = prepare_data(plan, model.encoder.spec.sample_rate)
        # From here a signal stops the run after a whole step (a second one at once).
        with stop_on_signals(second_interrupts=True) as stop, Progress(plan) as progress:
            step_fn = Step(plan, data, model)  # on the device, its optimiser restored when resuming
            files = Checkpointer(plan.out, plan.resolved, data.identity, main)
            progress.log.start(start)  # a fresh metrics.jsonl, or its rows up to start
            files.write_config()
            if start == 0 and train.snapshot_every:
                files.snapshot(model, 0)  # the learning curves' step 0: the initialisation
            done = start
            try:
                for step, (x, tracks) in zip(range(start, end), progress.batches(data), strict=True):
                    loss = step_fn(step, x, tracks)
                    done = step + 1
                    logging = progress.step_done(done, loss, step_fn.lr)
                    if progress.stopping(stop.is_set(), logging):
                        files.save(model, step_fn.optimizer, progress.checked(done))
                        raise Interrupted(
                            f"interrupted after step {done}; add --resume to continue ({plan.out})"
                        )
                    if train.snapshot_every and done % train.snapshot_every == 0:
                        files.snapshot(model, progress.checked(done))
                    if done % train.checkpoint_every == 0 and done < end:
                        files.save(model, step_fn.optimizer, progress.checked(done))
                files.save(model, step_fn.optimizer, progress.checked(done))
            except KeyboardInterrupt:  # a second signal: stop at once, the last checkpoint stands
                raise Interrupted(
                    f"stopped during step {done + 1}; --resume continues from the last checkpoint"
                ) from None
    return progress.summary(data, done)


class Step:
    """One optimisation step of the model on a batch; everything it needs chosen once: the view
    layout, the augmentation chain, the loss's target, the forward (DDP, compiled) and precision."""

    def __init__(self, plan: TrainPlan, data: TrainData, model: TrainedModel) -> None:
        config, device = plan.config, plan.device
        self.config, self.device, self.rank, self.amp = config, device, plan.rank, plan.amp
        self.model = model.to(device)
        self.optimizer = torch.optim.AdamW(
            model.parameters(), lr=config.train.lr, weight_decay=config.train.weight_decay
        )
        if plan.state is not None:
            try:
                model.load_state_dict(plan.state["model"])
                self.optimizer.load_state_dict(plan.state["optimizer"])
            except Exception as exc:  # from another architecture or size
                raise WeightsError(f"{plan.out / STATE}: cannot resume from it ({one_line(exc)})") from None
        net: nn.Module = model
        if plan.rank.world > 1:
            net = nn.parallel.DistributedDataParallel(
                model, device_ids=[device.index] if device.type == "cuda" else None
            )
        self.forward = torch.compile(net) if config.train.compile else net
        if device.type == "cuda":
            torch.backends.cudnn.benchmark = True
            torch.backends.cuda.matmul.allow_tf32 = torch.backends.cudnn.allow_tf32 = True
        self.layout = ViewLayout.build(effective_views(config), config.train.batch_size, plan.rank, device)
        rate = model.encoder.spec.sample_rate
        self.augment = chain(config.views.augment, config.views.augment_p, rate, self.layout.groups)
        self.loss = self._cpc_loss if config.loss.kind == "cpc" else self._contrastive_loss
        self.target = make_target(config, data.labels, self.layout.n_views)
        self.candidates = make_candidates(config, self.layout.n_views)
        self.lr = float("nan")

    def _contrastive_loss(self, z_local: Tensor, tracks: Tensor) -> Tensor:
        """This rank's (V * b, P) projections of the global tracks (B,) -> the loss of its anchors."""
        z = self.layout.gather(z_local)
        candidates = self.candidates(tracks) if self.candidates is not None else None
        t = self.config.loss.temperature
        return losses.contrastive_loss(z, self.target(tracks), t, self.layout.anchors, candidates)

    def _cpc_loss(self, out: tuple[Tensor, Tensor], tracks: Tensor) -> Tensor:
        """This rank's ((steps * b, D) embeddings, (k, b, D) predictions) -> CPC's loss, the actual
        futures of every rank's tracks as candidates."""
        z_local, predictions = out
        z = self.layout.gather(z_local).reshape(self.layout.n_views, len(tracks), -1)  # (steps, B, D)
        b = len(tracks) // self.rank.world
        anchors = torch.arange(self.rank.rank * b, (self.rank.rank + 1) * b, device=z.device)
        future = z[self.config.loss.cpc_context :]
        return losses.cpc_loss(predictions, future, self.config.loss.temperature, anchors)

    def __call__(self, step: int, x: Tensor, tracks: Tensor) -> Tensor:
        """Train on step ``step``'s segments x (M, samples) of the global tracks (B,); the loss."""
        self.lr = lr_at(step, self.config)
        for group in self.optimizer.param_groups:
            group["lr"] = self.lr
        x = x.to(self.device, non_blocking=True)
        tracks = tracks.to(self.device, non_blocking=True)
        seed = self.config.train.seed * 1_000_003 + step * 7919 + self.rank.rank
        x = self.augment(x, torch.Generator(device=self.device).manual_seed(seed))
        self.model.train()
        with torch.autocast(self.device.type, dtype=torch.bfloat16, enabled=self.amp):
            out = self.forward(x, self.layout.pool)  # (V * b, P) view-major; CPC: (embeddings, predictions)
        loss = self.loss(out, tracks)
        self.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        if self.config.train.grad_clip > 0:
            torch.nn.utils.clip_grad_norm_(self.model.parameters(), self.config.train.grad_clip)
        self.optimizer.step()
        return loss


def lr_at(step: int, config: Config) -> float:
    """The learning-rate schedule, a pure function of the step: linear warm-up, then cosine decay
    to zero."""
    t = config.train
    if step < t.warmup_steps:
        return t.lr * (step + 1) / t.warmup_steps
    progress = (step - t.warmup_steps) / max(1, t.steps - t.warmup_steps)
    return t.lr * 0.5 * (1 + math.cos(math.pi * min(1.0, progress)))


class Progress:
    """What the loop reports: the progress bar, metrics.jsonl on logging steps, the summary, and the
    guard against a diverged loss. The first step whose loss was not finite is kept on the device
    (no per-step sync) and read on logging steps and before anything is written
    (:meth:`checked`), so no checkpoint holds a diverged model."""

    def __init__(self, plan: TrainPlan) -> None:
        self.plan = plan
        self.log = MetricsLog(plan.out / "metrics.jsonl", plan.rank.main)
        self.first_bad = torch.full((), -1, dtype=torch.long, device=plan.device)
        self.loss: Tensor | None = None
        self.loss_value, self.examples = float("nan"), 0

    def __enter__(self) -> Progress:
        from tqdm import tqdm

        show = self.plan.report and sys.stderr.isatty()
        self.stack = contextlib.ExitStack()
        bar = tqdm(total=self.plan.end, initial=self.plan.start, unit="step", file=sys.stderr,
                   dynamic_ncols=True, disable=not show)  # fmt: skip
        self.bar = self.stack.enter_context(bar)
        self.t0 = self.last_log = time.monotonic()
        return self

    def __exit__(self, *exc: object) -> None:
        self.wall = time.monotonic() - self.t0
        self.stack.close()

    def batches(self, data: TrainData) -> Iterator[tuple[Tensor, Tensor]]:
        p = self.plan
        gen = batches(p.start, p.end, p.config, data.cache, p.rank, p.device.type == "cuda",
                      labelled=data.labelled)  # fmt: skip
        return self.stack.enter_context(contextlib.closing(gen))

    def step_done(self, done: int, loss: Tensor, lr: float) -> bool:
        """Count step ``done``; on a logging step, read the loss and log it. Whether it logged."""
        self.loss = loss
        self.first_bad = torch.where(
            (self.first_bad < 0) & ~torch.isfinite(loss.detach()), done, self.first_bad
        )
        self.examples += self.plan.config.train.batch_size
        self.bar.update(1)
        if not (done % self.plan.config.train.log_every == 0 or done == self.plan.end):
            return False
        # Reading the loss waits for the device: only on logging steps, so that on a GPU the next
        # batch is prepared while this one still runs.
        self.checked(done)
        self.loss_value = float(mean_over_ranks(loss.detach()))
        now = time.monotonic()
        rate_s = self.examples / max(now - self.last_log, 1e-9)
        self.examples, self.last_log = 0, now
        self.log.write(
            {"step": done, "loss": round(self.loss_value, 6), "lr": lr, "examples_per_s": round(rate_s, 2)}
        )
        self.bar.set_postfix(loss=f"{self.loss_value:.4f}", ex_s=f"{rate_s:.1f}")
        return True

    def stopping(self, asked: bool, logging: bool) -> bool:
        """Whether to stop after this step, a signal having been ``asked`` for. Several ranks must
        agree on the step they stop at: they compare on logging steps."""
        if self.plan.rank.world == 1:
            return asked
        return logging and any_rank(asked, self.plan.device)

    def checked(self, done: int) -> int:
        """``done``, once no step so far had a non-finite loss (else TrainingDiverged)."""
        bad = int(self.first_bad)
        if bad >= 0:
            assert self.loss is not None
            lr = self.plan.config.train.lr
            raise TrainingDiverged(
                f"the loss became non-finite at step {bad} (loss {float(self.loss.detach()):g}); nothing "
                f"after the last checkpoint was saved. Lower train.lr (now {lr:g}) or set "
                "train.precision = 'fp32'"
            )
        return done

    def summary(self, data: TrainData, done: int) -> dict[str, Any]:
        trained, batch = done - self.plan.start, self.plan.config.train.batch_size
        summary = {
            "steps": self.plan.config.train.steps,
            "trained_steps": trained,
            "final_loss": self.loss_value,
            "wall_s": round(self.wall, 2),
            "examples_per_s": round(trained * batch / max(self.wall, 1e-9), 2),
            "tracks": len(data.cache.lengths),
            "skipped": len(data.cache.skipped),
            "out_dir": str(self.plan.out),
        }
        if self.plan.report:
            encoder = self.plan.out / "encoder.safetensors"
            print(f"mclx train: {trained} steps in {self.wall:.1f} s, final loss {self.loss_value:.4f}, "
                  f"{summary['examples_per_s']} tracks/s -> {encoder}", file=sys.stderr)  # fmt: skip
        return summary
