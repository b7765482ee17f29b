"""LogME against a direct, slow maximisation of the closed-form evidence; masking, order and task-type paths."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from scipy.optimize import minimize

from hf_mtl.advise import logme
from hf_mtl.advise.logme import logme_targets


def direct_evidence(f: np.ndarray, y: np.ndarray, alpha: float, beta: float) -> float:
    """The closed form with dense matrices (no spectrum): log p(y | F, alpha, beta)."""
    n, d = f.shape
    a = alpha * np.eye(d) + beta * f.T @ f
    m = beta * np.linalg.solve(a, f.T @ y)
    logdet = np.linalg.slogdet(a)[1]
    return (d / 2 * math.log(alpha) + n / 2 * math.log(beta) - alpha / 2 * m @ m
            - beta / 2 * np.sum((f @ m - y) ** 2) - logdet / 2 - n / 2 * math.log(2 * math.pi))


def slow_logme(f: np.ndarray, y: np.ndarray) -> float:
    """Grid over log alpha, log beta, then Nelder-Mead from the best grid point; divided by N."""
    def negative(x):
        return -direct_evidence(f, y, math.exp(x[0]), math.exp(x[1]))

    grid = [(a, b) for a in np.linspace(-8, 8, 17) for b in np.linspace(-8, 8, 17)]
    start = min(grid, key=negative)
    best = minimize(negative, start, method="Nelder-Mead", options={"xatol": 1e-10, "fatol": 1e-12, "maxiter": 20000})
    return -best.fun / len(y)


@pytest.mark.parametrize("n,d", [(60, 8), (20, 30)])
def test_matches_direct_evidence_maximisation(n, d):
    rng = np.random.default_rng(n)
    f = rng.normal(size=(n, d))
    y = f @ rng.normal(size=d) * 0.5 + rng.normal(size=n)
    assert logme(f, y, "regression") == pytest.approx(slow_logme(f, y), rel=1e-6)
    labels = (y > 0).astype(np.float64)
    assert logme(f, labels, "binary") == pytest.approx(slow_logme(f, labels), rel=1e-6)


def test_multiclass_is_the_mean_over_one_hot_columns():
    rng = np.random.default_rng(1)
    f = rng.normal(size=(50, 6))
    ids = rng.integers(0, 3, size=50)
    expected = np.mean([slow_logme(f, (ids == c).astype(np.float64)) for c in range(3)])
    assert logme(f, torch.tensor(ids), "multiclass") == pytest.approx(expected, rel=1e-6)
    # a class that never occurs (an all-zero column, unbounded evidence) is left out of the mean
    assert logme(f, ids, "multiclass", num_outputs=4) == pytest.approx(logme(f, ids, "multiclass"), rel=1e-12)


def test_masked_labels_change_nothing():
    rng = np.random.default_rng(2)
    f = rng.normal(size=(80, 10))
    labels = (rng.random((80, 3)) < 0.4).astype(np.float32)
    missing = rng.random((80, 3)) < 0.3
    masked = np.where(missing, -100.0, labels)
    per_label = [logme(f[~missing[:, j]], labels[~missing[:, j], j], "binary") for j in range(3)]
    assert logme(f, masked, "multilabel") == pytest.approx(np.mean(per_label), rel=1e-10)
    with_nan = np.where(missing, np.nan, labels)
    assert logme(f, with_nan, "multilabel") == pytest.approx(np.mean(per_label), rel=1e-10)
    # multiclass: -100 rows are dropped
    ids = rng.integers(0, 4, size=80)
    drop = rng.random(80) < 0.25
    assert logme(f, np.where(drop, -100, ids), "multiclass", num_outputs=4) == pytest.approx(
        logme(f[~drop], ids[~drop], "multiclass", num_outputs=4), rel=1e-10)
    # regression: NaN rows dropped
    values = rng.normal(size=80)
    assert logme(f, np.where(drop, np.nan, values), "regression") == pytest.approx(
        logme(f[~drop], values[~drop], "regression"), rel=1e-10)


def test_invariant_to_sample_order():
    rng = np.random.default_rng(3)
    f = rng.normal(size=(70, 12))
    labels = np.where(rng.random((70, 4)) < 0.2, -100.0, (rng.random((70, 4)) < 0.5).astype(float))
    order = rng.permutation(70)
    assert logme(f[order], labels[order], "multilabel") == pytest.approx(logme(f, labels, "multilabel"), rel=1e-10)


def test_informative_features_score_higher_than_noise():
    rng = np.random.default_rng(4)
    signal = rng.normal(size=(300, 1))
    good = np.hstack([signal, rng.normal(size=(300, 7))])
    noise = rng.normal(size=(300, 8))
    y = signal[:, 0] + 0.1 * rng.normal(size=300)
    assert logme(good, y, "regression") > logme(noise, y, "regression") + 0.5
    ids = (signal[:, 0] > 0).astype(int) + (signal[:, 0] > 1).astype(int)
    assert logme(good, ids, "multiclass") > logme(noise, ids, "multiclass")


def test_task_spec_and_bad_input():
    from hf_mtl import TaskSpec

    f = np.random.default_rng(5).normal(size=(30, 4))
    spec = TaskSpec(name="kind", type="multiclass", labels=["a", "b", "c", "d"])
    ids = np.arange(30) % 3
    assert logme(f, ids, spec) == pytest.approx(logme(f, ids, "multiclass", num_outputs=4))
    with pytest.raises(ValueError, match="unknown task type"):
        logme(f, ids, "ranking")
    with pytest.raises(ValueError, match="30 rows but the labels have 29"):
        logme(f, ids[:29], "multiclass")
    with pytest.raises(ValueError, match=r"class ids must lie in \[0, 2\)"):
        logme(f, ids, "multiclass", num_outputs=2)
    all_missing = np.full((30, 2), -100.0)
    assert math.isnan(logme(f, all_missing, "multilabel"))
    assert logme_targets(f, np.ones((30, 1))).shape == (1,)
