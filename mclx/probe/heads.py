"""Probe heads: a linear model trained to convergence, and a one-hidden-layer MLP, in torch.

Inputs are standardised with the training split's statistics (regression targets too, then
mapped back). The linear head (logistic regression, per-tag logistic, linear regression) is a
convex problem: L-BFGS from zero weights reaches its optimum, so its result does not depend
on the seed; only its L2 strength is chosen, by the loss on the validation split. The MLP is
trained by AdamW with its learning rate, weight decay and epoch (early stopping) chosen on the
validation split, and varies with the seed. ``fit`` never sees the test split.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

import numpy as np
import torch
from torch import nn

HEADS = ("linear", "mlp")
L2_GRID = (1e-4, 1e-3, 1e-2, 1e-1, 1.0)  # linear head: weight of 0.5 * ||W||^2 against the mean loss
LBFGS_ITERATIONS = 500
LEARNING_RATES = (1e-3, 1e-2)
WEIGHT_DECAYS = (1e-3, 1e-1)
MAX_EPOCHS = 300
PATIENCE = 25  # epochs without a lower validation loss before a grid point stops
HIDDEN = 256
DROPOUT = 0.2
FULL_BATCH = 8192
MINIBATCH = 2048
# Below this many multiply-adds per step, one CPU thread is faster: the heads' matrices are
# small, and torch's thread pool then costs more in synchronisation than it saves (2.5x slower
# with 2 threads on a shared 2-core machine for an MLP on 750 x 512 features).
ONE_THREAD_BELOW = 200_000_000


@dataclass(frozen=True)
class Fitted:
    """A trained head and what was chosen on the validation split."""

    model: nn.Module
    hyperparameters: dict[str, float]  # linear: l2; mlp: lr, weight_decay, epochs (the epoch kept)
    valid_loss: float
    y_mean: float = 0.0  # regression targets were trained as (y - y_mean) / y_std
    y_std: float = 1.0

    def chosen(self) -> dict[str, float]:
        return dict(self.hyperparameters)


def describe() -> dict[str, str]:
    """The heads and their training, as stated in the results."""
    return {
        "linear": (
            "logistic regression (single-label), per-tag logistic (multi-label), linear regression; "
            f"trained to convergence by L-BFGS from zero weights (seed-independent), L2 strength in "
            f"{list(L2_GRID)} chosen by the validation loss"
        ),
        "mlp": f"one hidden layer of {HIDDEN} units, ReLU, dropout {DROPOUT}",
        "training": (
            f"inputs standardised with training-split statistics; MLP: AdamW, learning rate in "
            f"{list(LEARNING_RATES)}, weight decay in {list(WEIGHT_DECAYS)} and the epoch (at most "
            f"{MAX_EPOCHS}, early stopping with patience {PATIENCE}) chosen by the validation loss; "
            f"full batch up to {FULL_BATCH} clips, else minibatches of {MINIBATCH}; the test split is "
            "scored once"
        ),
    }


def standardise(train: np.ndarray, *others: np.ndarray) -> list[np.ndarray]:
    """(n_i, D) float32 arrays shifted and scaled by the mean and std of ``train`` only.

    A feature constant on train is only shifted (scaling it would blow up noise elsewhere).
    """
    mean = train.mean(axis=0)
    std = train.std(axis=0)
    std = np.where(std > 1e-8 * np.maximum(1.0, np.abs(mean)), std, 1.0)
    return [((a - mean) / std).astype(np.float32) for a in (train, *others)]


def build(head: str, dim: int, out: int) -> nn.Module:
    if head == "linear":
        return nn.Linear(dim, out)
    if head == "mlp":
        return nn.Sequential(nn.Linear(dim, HIDDEN), nn.ReLU(), nn.Dropout(DROPOUT), nn.Linear(HIDDEN, out))
    raise ValueError(f"unknown head {head!r}")


def _loss(kind: str) -> nn.Module:
    if kind == "single":
        return nn.CrossEntropyLoss()
    if kind == "multi":
        return nn.BCEWithLogitsLoss()
    return nn.MSELoss()


def _target(y: np.ndarray, kind: str, device: torch.device, mean: float, std: float) -> torch.Tensor:
    if kind == "single":
        return torch.as_tensor(y, dtype=torch.long, device=device)
    if kind == "regression":
        return torch.as_tensor((y - mean) / std, dtype=torch.float32, device=device).unsqueeze(1)
    return torch.as_tensor(y, dtype=torch.float32, device=device)


@contextmanager
def _cpu_threads(device: torch.device, work: int) -> Iterator[None]:
    previous = torch.get_num_threads()
    if device.type == "cpu" and work < ONE_THREAD_BELOW:
        torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(previous)


def fit(
    head: str,
    kind: str,
    x_train: np.ndarray,
    y_train: np.ndarray,
    x_valid: np.ndarray,
    y_valid: np.ndarray,
    out_dim: int,
    seed: int,
    device: torch.device | str = "cpu",
) -> Fitted:
    """Train ``head`` on (n, D) standardised features; the lowest validation loss wins.

    y: (n,) int64 classes ("single"), (n, C) float32 multi-hot ("multi") or (n,) float
    values ("regression"); ``out_dim`` is C, or 1 for regression.
    """
    device = torch.device(device)
    y_mean, y_std = 0.0, 1.0
    if kind == "regression":
        y_mean, y_std = float(np.mean(y_train)), float(np.std(y_train)) or 1.0
    xt = torch.as_tensor(x_train, dtype=torch.float32, device=device)
    xv = torch.as_tensor(x_valid, dtype=torch.float32, device=device)
    yt = _target(y_train, kind, device, y_mean, y_std)
    yv = _target(y_valid, kind, device, y_mean, y_std)
    loss_fn = _loss(kind)
    if head == "linear":
        with _cpu_threads(device, min(len(xt), FULL_BATCH) * xt.shape[1] * out_dim):
            return _fit_linear(xt, yt, xv, yv, out_dim, loss_fn, y_mean, y_std)
    width = HIDDEN if head == "mlp" else out_dim
    best: tuple[float, dict[str, torch.Tensor], float, float, int] | None = None
    with _cpu_threads(device, min(len(xt), FULL_BATCH) * xt.shape[1] * width):
        for lr, wd in itertools.product(LEARNING_RATES, WEIGHT_DECAYS):
            torch.manual_seed(seed)
            model = build(head, xt.shape[1], out_dim).to(device)
            opt = torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=wd)
            order = torch.Generator().manual_seed(seed)
            best_here, stale = float("inf"), 0
            for epoch in range(1, MAX_EPOCHS + 1):
                model.train()
                for rows in _batches(len(xt), order):
                    opt.zero_grad(set_to_none=True)
                    loss_fn(model(xt[rows]), yt[rows]).backward()
                    opt.step()
                model.eval()
                with torch.inference_mode():
                    v = float(loss_fn(model(xv), yv))
                if v < best_here - 1e-7:
                    best_here, stale = v, 0
                    if best is None or v < best[0]:
                        state = {k: t.detach().clone() for k, t in model.state_dict().items()}
                        best = (v, state, lr, wd, epoch)
                else:
                    stale += 1
                    if stale >= PATIENCE:
                        break
    if best is None:  # the validation loss was NaN at every epoch
        raise FloatingPointError("the probe's validation loss is not finite (NaN or inf features?)")
    valid_loss, state, lr, wd, epoch = best
    model = build(head, xt.shape[1], out_dim).to(device)
    model.load_state_dict(state)
    return Fitted(model.eval(), {"lr": lr, "weight_decay": wd, "epochs": epoch}, valid_loss, y_mean, y_std)


def _fit_linear(
    xt: torch.Tensor, yt: torch.Tensor, xv: torch.Tensor, yv: torch.Tensor, out_dim: int,
    loss_fn: nn.Module, y_mean: float, y_std: float,
) -> Fitted:  # fmt: skip
    """The linear head at the optimum of mean loss + l2/2 ||W||^2 for each l2 of the grid (strong
    to weak, each started from the last optimum); the lowest validation loss wins. float64."""
    x64, v64 = xt.double(), xv.double()
    y64 = yt if yt.dtype == torch.long else yt.double()
    yv64 = yv if yv.dtype == torch.long else yv.double()
    w = torch.zeros(out_dim, xt.shape[1], dtype=torch.float64, device=xt.device, requires_grad=True)
    b = torch.zeros(out_dim, dtype=torch.float64, device=xt.device, requires_grad=True)
    best: tuple[float, float, torch.Tensor, torch.Tensor] | None = None
    for l2 in sorted(L2_GRID, reverse=True):
        opt = torch.optim.LBFGS(
            [w, b], lr=1.0, max_iter=LBFGS_ITERATIONS, tolerance_grad=1e-9, tolerance_change=1e-12,
            history_size=20, line_search_fn="strong_wolfe",
        )  # fmt: skip

        def closure(l2: float = l2, opt: torch.optim.LBFGS = opt) -> torch.Tensor:
            opt.zero_grad()
            loss = loss_fn(x64 @ w.T + b, y64) + 0.5 * l2 * w.pow(2).sum()
            loss.backward()
            return loss

        opt.step(closure)
        with torch.no_grad():
            v = float(loss_fn(v64 @ w.T + b, yv64))
        if math.isfinite(v) and (best is None or v < best[0]):
            best = (v, l2, w.detach().clone(), b.detach().clone())
    if best is None:
        raise FloatingPointError("the probe's validation loss is not finite (NaN or inf features?)")
    valid_loss, l2, weight, bias = best
    model = nn.Linear(xt.shape[1], out_dim).to(xt.device)
    with torch.no_grad():
        model.weight.copy_(weight.float())
        model.bias.copy_(bias.float())
    return Fitted(model.eval(), {"l2": l2}, valid_loss, y_mean, y_std)


def _batches(n: int, generator: torch.Generator) -> list[torch.Tensor | slice]:
    if n <= FULL_BATCH:
        return [slice(None)]
    perm = torch.randperm(n, generator=generator)
    return list(perm.split(MINIBATCH))


def predict(fitted: Fitted, x: np.ndarray, kind: str) -> np.ndarray:
    """(n, C) class probabilities ("single"), (n, C) tag probabilities ("multi") or (n,) values;
    float64."""
    device = next(fitted.model.parameters()).device
    with torch.inference_mode():
        # float64 before the sigmoid: float32 probabilities saturate to exactly 1.0 and tie
        out = fitted.model(torch.as_tensor(x, dtype=torch.float32, device=device)).double()
        if kind == "single":
            out = torch.softmax(out, dim=-1)
        elif kind == "multi":
            out = torch.sigmoid(out)
        else:
            out = out.squeeze(1) * fitted.y_std + fitted.y_mean
    return out.cpu().numpy()
