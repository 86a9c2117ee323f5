"""Probe heads on synthetic features whose answer is known."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from mclx.probe import heads, metrics

from .helpers import blobs


def split3(n: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    idx = np.random.default_rng(seed).permutation(n)
    return idx[: n // 2], idx[n // 2 : 3 * n // 4], idx[3 * n // 4 :]


def fit_predict(
    head: str, kind: str, x: np.ndarray, y: np.ndarray, out: int
) -> tuple[np.ndarray, np.ndarray]:
    """Test-split predictions and targets of a head trained on the train split, tuned on valid."""
    tr, va, te = split3(len(x))
    xtr, xva, xte = heads.standardise(x[tr], x[va], x[te])
    fitted = heads.fit(head, kind, xtr, y[tr], xva, y[va], out, seed=0)
    return heads.predict(fitted, xte, kind), y[te]


@pytest.mark.parametrize("head", heads.HEADS)
def test_separable_classes_reach_high_accuracy(head: str) -> None:
    x, y = blobs(60, 4, 12, spread=1.0, seed=0)
    p, yte = fit_predict(head, "single", x, y, 4)
    assert metrics.accuracy(yte, p.argmax(axis=1)) >= 0.95
    assert p.shape == (len(yte), 4) and np.allclose(p.sum(axis=1), 1.0)


@pytest.mark.parametrize("head", heads.HEADS)
def test_random_labels_stay_near_chance(head: str) -> None:
    rng = np.random.default_rng(1)
    x, y = rng.standard_normal((800, 16)), rng.integers(0, 4, 800)
    p, yte = fit_predict(head, "single", x, y, 4)
    assert abs(metrics.accuracy(yte, p.argmax(axis=1)) - 0.25) < 0.1  # 200 test clips: sd 0.03


def test_a_linear_target_on_any_scale_gets_r2_near_one() -> None:
    rng = np.random.default_rng(2)
    x = rng.standard_normal((400, 8))
    y = 1000.0 + 50.0 * (x @ rng.standard_normal(8)) + 5.0 * rng.standard_normal(400)  # far from N(0, 1)
    p, yte = fit_predict("linear", "regression", x, y, 1)
    assert p.shape == yte.shape and metrics.r2(yte, p) >= 0.95


def test_learnable_tags_get_high_macro_auc() -> None:
    rng = np.random.default_rng(4)
    x = rng.standard_normal((400, 10))
    y = (x[:, :3] + 0.3 * rng.standard_normal((400, 3)) > 0.5).astype(np.float32)
    p, yte = fit_predict("linear", "multi", x, y, 3)
    assert metrics.macro(metrics.roc_auc, yte, p) >= 0.95


def test_random_tags_stay_near_chance_auc() -> None:
    rng = np.random.default_rng(5)
    x, y = rng.standard_normal((600, 10)), (rng.random((600, 3)) < 0.4).astype(np.float32)
    p, yte = fit_predict("mlp", "multi", x, y, 3)
    assert abs(metrics.macro(metrics.roc_auc, yte, p) - 0.5) < 0.1


def test_the_kept_weights_are_those_of_the_reported_validation_loss() -> None:
    """Early stopping must return the best epoch's weights, not the last epoch's."""
    x, y = blobs(20, 3, 20, spread=6.0, seed=6)  # overlapping: validation loss turns up again
    tr, va, _ = split3(len(x))
    xtr, xva = heads.standardise(x[tr], x[va])
    fitted = heads.fit("mlp", "single", xtr, y[tr], xva, y[va], 3, seed=0)
    with torch.no_grad():
        logits = fitted.model(torch.as_tensor(xva))
        loss = float(torch.nn.functional.cross_entropy(logits, torch.as_tensor(y[va])))
    assert loss == pytest.approx(fitted.valid_loss, rel=1e-5)
    chosen = fitted.chosen()
    assert chosen["lr"] in heads.LEARNING_RATES and chosen["weight_decay"] in heads.WEIGHT_DECAYS
    assert 1 <= chosen["epochs"] < heads.MAX_EPOCHS


def test_fitting_is_reproducible_per_seed() -> None:
    x, y = blobs(20, 3, 8, spread=2.0, seed=7)
    tr, va, te = split3(len(x))
    xtr, xva, xte = heads.standardise(x[tr], x[va], x[te])
    fits = [heads.fit("mlp", "single", xtr, y[tr], xva, y[va], 3, seed) for seed in (0, 0, 1)]
    runs = [heads.predict(f, xte, "single") for f in fits]
    assert np.array_equal(runs[0], runs[1]) and not np.array_equal(runs[0], runs[2])


def test_standardisation_uses_training_statistics_only() -> None:
    rng = np.random.default_rng(8)
    train = rng.standard_normal((100, 3)) * [1.0, 10.0, 0.0] + [0.0, 5.0, 7.0]  # third feature constant
    test = train + 100.0
    s_train, s_test = heads.standardise(train, test)
    assert np.allclose(s_train[:, :2].mean(axis=0), 0, atol=1e-5)
    assert np.allclose(s_train[:, :2].std(axis=0), 1, atol=1e-4)
    shift = 100.0 / train[:, 0].std()
    assert np.allclose(s_test[:, 0] - s_train[:, 0], shift, atol=1e-3)  # test's shift is kept, not removed
    assert np.allclose(s_test[:, 2], 100.0)  # a constant feature is shifted, not divided by ~0


def test_the_linear_head_reaches_its_optimum_and_ignores_the_seed() -> None:
    """Convex: the gradient vanishes at the fit, and seeds (or row order) change nothing."""
    x, y = blobs(40, 4, 20, spread=3.0, seed=9)
    x = x + 50.0  # far from zero mean: standardisation matters
    tr, va, te = split3(len(x))
    xtr, xva, xte = heads.standardise(x[tr], x[va], x[te])
    fits = [heads.fit("linear", "single", xtr, y[tr], xva, y[va], 4, seed) for seed in (0, 1, 7)]
    perm = np.random.default_rng(3).permutation(len(tr))
    fits.append(heads.fit("linear", "single", xtr[perm], y[tr][perm], xva, y[va], 4, seed=0))
    runs = [heads.predict(f, xte, "single") for f in fits]
    for other in runs[1:]:
        np.testing.assert_allclose(runs[0], other, atol=1e-4)
    l2 = fits[0].chosen()["l2"]
    assert l2 in heads.L2_GRID
    model = fits[0].model
    w = model.weight.detach().double().requires_grad_()
    b = model.bias.detach().double().requires_grad_()
    loss = torch.nn.functional.cross_entropy(torch.as_tensor(xtr).double() @ w.T + b, torch.as_tensor(y[tr]))
    (loss + 0.5 * l2 * w.pow(2).sum()).backward()
    assert w.grad is not None and float(w.grad.abs().max()) < 1e-4  # float32 storage of the weights
