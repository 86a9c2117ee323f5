"""Probe heads: linear and one-hidden-layer MLP, trained full-batch in torch.

Inputs are standardised with statistics of the training split; learning rate and weight
decay are chosen on the validation split only, with early stopping on it; the test split
is touched once, by the chosen model.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from torch import nn

GRID = [(1e-3, 1e-4), (1e-3, 1e-2), (1e-2, 1e-4), (1e-2, 1e-2)]  # (lr, weight decay)
MAX_EPOCHS = 400
PATIENCE = 30
HIDDEN = 256


@dataclass(frozen=True)
class Split:
    """Standardised features (float32) and targets of one split."""

    x: torch.Tensor
    y: torch.Tensor


def standardise(train: np.ndarray, *others: np.ndarray) -> list[np.ndarray]:
    mean, std = train.mean(axis=0), train.std(axis=0) + 1e-6
    return [(a - mean) / std for a in (train, *others)]


def build(head: str, dim: int, out: int, seed: int) -> nn.Module:
    torch.manual_seed(seed)
    if head == "linear":
        return nn.Linear(dim, out)
    return nn.Sequential(nn.Linear(dim, HIDDEN), nn.ReLU(), nn.Dropout(0.2), nn.Linear(HIDDEN, out))


def _loss(kind: str) -> nn.Module:
    return {"single": nn.CrossEntropyLoss(), "multi": nn.BCEWithLogitsLoss(), "regression": nn.MSELoss()}[
        kind
    ]


def fit(head: str, kind: str, train: Split, valid: Split, out: int, seed: int) -> nn.Module:
    """The head with the lowest validation loss over the grid and epochs."""
    loss_fn = _loss(kind)
    best: tuple[float, dict[str, torch.Tensor]] | None = None
    model = build(head, train.x.shape[1], out, seed)
    for lr, wd in GRID:
        model = build(head, train.x.shape[1], out, seed)
        opt = torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=wd)
        stale, best_here = 0, float("inf")
        for _ in range(MAX_EPOCHS):
            model.train()
            opt.zero_grad()
            loss_fn(_squeeze(model(train.x), kind), train.y).backward()
            opt.step()
            model.eval()
            with torch.no_grad():
                v = float(loss_fn(_squeeze(model(valid.x), kind), valid.y))
            if v < best_here - 1e-6:
                best_here, stale = v, 0
                if best is None or v < best[0]:
                    best = (v, {k: t.clone() for k, t in model.state_dict().items()})
            else:
                stale += 1
                if stale >= PATIENCE:
                    break
    assert best is not None
    model.load_state_dict(best[1])
    return model.eval()


def _squeeze(out: torch.Tensor, kind: str) -> torch.Tensor:
    return out.squeeze(-1) if kind == "regression" else out


def predict(model: nn.Module, x: torch.Tensor, kind: str) -> np.ndarray:
    """Class probabilities (N, C), tag probabilities (N, C) or values (N,)."""
    with torch.no_grad():
        out = _squeeze(model(x), kind)
        if kind == "single":
            out = torch.softmax(out, dim=-1)
        elif kind == "multi":
            out = torch.sigmoid(out)
    return out.cpu().numpy()
