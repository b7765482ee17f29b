"""LogME: how well frozen features suit a task, without training (You et al., "LogME: Practical Assessment of
Pre-trained Models for Transfer Learning", ICML 2021).

For each target column y, a Bayesian linear model ``y = F w + noise`` with prior ``w ~ N(0, 1/alpha)`` and noise
precision ``beta`` has a closed-form marginal likelihood (evidence). LogME maximises it over ``alpha`` and ``beta``
with MacKay's fixed-point updates and reports ``log evidence / N``; a task's score is the mean over its targets.
Higher means the features explain the labels better with a simpler linear model.

Everything runs in float64 on one spectrum of the features per distinct missing-label mask (targets that miss the same
rows share it): the SVD of the present rows, or with fewer rows than features the eigendecomposition of their block of
one Gram matrix (same singular values and left vectors, a fraction of the cost). The fixed point runs for all targets
at once, in the singular basis, so each iteration is O(min(N, D)).
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import torch

__all__ = ["logme", "logme_targets", "evidence"]

MAX_ITERATIONS = 1000
TOLERANCE = 1e-12


def _as_numpy(value: Any) -> np.ndarray:
    if isinstance(value, torch.Tensor):
        return value.detach().cpu().double().numpy()
    return np.asarray(value, dtype=np.float64)


def _maximise(sigma: np.ndarray, z: np.ndarray, outside: np.ndarray, n: int, d: int) -> tuple[np.ndarray, ...]:
    """Fixed point of alpha, beta for every target column at once; returns (evidence / n, alpha, beta).

    ``sigma`` (k,): squared singular values of F; ``z`` (k, T): the targets in the left singular basis; ``outside``
    (T,): the targets' squared norm outside the span of F. The other ``d - k`` directions of w have eigenvalue 0.
    """
    t = z.shape[1]
    alpha, beta, moving = np.ones(t), np.ones(t), np.ones(t, dtype=bool)
    s = sigma[:, None]
    with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
        for _ in range(MAX_ITERATIONS):
            denom = alpha + beta * s
            gamma = (beta * s / denom).sum(0)
            mm = ((beta * np.sqrt(s) * z / denom) ** 2).sum(0)  # |posterior mean of w|²
            residual = ((alpha * z / denom) ** 2).sum(0) + outside  # |y - F m|², free of cancellation
            new_alpha, new_beta = gamma / mm, (n - gamma) / residual
            # a target the features fit exactly drives beta up until n - gamma rounds to 0: it stops where it was
            moving &= np.isfinite(new_alpha) & np.isfinite(new_beta) & (new_alpha > 0) & (new_beta > 0)
            if not moving.any():
                break
            change = np.maximum(np.abs(new_alpha / alpha - 1), np.abs(new_beta / beta - 1))[moving].max()
            alpha, beta = np.where(moving, new_alpha, alpha), np.where(moving, new_beta, beta)
            if change < TOLERANCE:
                break
    return evidence(sigma, z, outside, n, d, alpha, beta) / n, alpha, beta


def evidence(sigma: np.ndarray, z: np.ndarray, outside: np.ndarray, n: int, d: int, alpha: Any, beta: Any) -> np.ndarray:
    """Log evidence of the Bayesian linear model at ``(alpha, beta)`` per target column, from the SVD of F."""
    s = sigma[:, None]
    denom = alpha + beta * s
    mm = ((beta * np.sqrt(s) * z / denom) ** 2).sum(0)
    residual = ((alpha * z / denom) ** 2).sum(0) + outside
    logdet = np.log(denom).sum(0) + (d - len(sigma)) * np.log(alpha)
    return (d / 2 * np.log(alpha) + n / 2 * np.log(beta) - alpha / 2 * mm - beta / 2 * residual - logdet / 2
            - n / 2 * math.log(2 * math.pi))


def logme_targets(features: Any, targets: Any) -> np.ndarray:
    """LogME (log maximum evidence / N) of each column of ``targets`` (N, T) on ``features`` (N, D); NaN marks a
    missing target, and each column is scored on its present rows only (one SVD per distinct mask).
    A column with fewer than 2 present rows, or all zero (a class that never occurs), scores NaN."""
    f = _as_numpy(features)
    y = _as_numpy(targets)
    if f.ndim != 2:
        raise ValueError(f"features must be a 2-D array (samples, features), got shape {f.shape}")
    y = y.reshape(len(y), -1)
    if len(y) != len(f):
        raise ValueError(f"features have {len(f)} rows but the labels have {len(y)}")
    if not np.isfinite(f).all():
        raise ValueError("features contain NaN or inf: the backbone's outputs cannot be scored")
    present = ~np.isnan(y)
    scores = np.full(y.shape[1], np.nan)
    # torch's linear algebra keeps to torch's thread count; numpy's OpenBLAS threads spin on a busy machine (a 210 x
    # 1280 SVD beside three other processes: 0.25 CPU-s with OpenBLAS's default threads, 0.02 with one)
    features_t, gram = torch.from_numpy(f), None
    # targets with the same present rows share one spectrum
    groups: dict[bytes, list[int]] = {}
    for column in range(y.shape[1]):
        groups.setdefault(present[:, column].tobytes(), []).append(column)
    for columns in groups.values():
        rows = present[:, columns[0]]
        n = int(rows.sum())
        if n < 2:
            continue
        # an all-zero target (a class absent from the data) has unbounded evidence (noise-free): no information
        columns = [c for c in columns if np.any(y[rows, c] != 0)]
        if not columns:
            continue
        ym = y[rows][:, columns]
        if n <= f.shape[1]:  # fewer rows than features: the rows' Gram matrix holds the same spectrum, n x n
            gram = gram if gram is not None else features_t @ features_t.T
            index = torch.from_numpy(np.flatnonzero(rows))
            squared, left = torch.linalg.eigh(gram[index][:, index])
            squared = squared.clamp_min(0.0)
        else:
            left, singular, _ = torch.linalg.svd(features_t[torch.from_numpy(rows)], full_matrices=False)
            squared = singular**2
        left = left.numpy()
        z = left.T @ ym
        outside = np.maximum((ym**2).sum(0) - (z**2).sum(0), 0.0)
        scores[columns] = _maximise(squared.numpy(), z, outside, n, f.shape[1])[0]
    return scores


def logme(features: Any, labels: Any, task_type: Any, num_outputs: int | None = None) -> float:
    """LogME of one task: the mean over its targets of log maximum evidence / N (You et al., 2021).

    Args:
        features: (N, D) frozen features (e.g. the ``features`` column of the feature cache).
        labels: the task's label tensor as the collator builds it: class ids (N,) for multiclass, 0/1 (N,) or
            (N, L) for binary / multilabel, values (N,) or (N, K) for regression; -100 or NaN marks a missing label.
        task_type: a task type name (``"multilabel"``, ``"multiclass"``, ...) or a [`TaskSpec`].
        num_outputs: number of classes of a multiclass task (default: the task spec's, else the largest id + 1).
    """
    from ..tasks import TASK_TYPES, TaskSpec

    if isinstance(task_type, TaskSpec):
        num_outputs = num_outputs if num_outputs is not None else task_type.output_size
        kind = task_type.task_type
    elif task_type in TASK_TYPES:
        kind = TASK_TYPES[task_type]
    else:
        raise ValueError(f"unknown task type {task_type!r}; choose one of {sorted(TASK_TYPES)}")
    labels = torch.as_tensor(np.asarray(labels) if not isinstance(labels, torch.Tensor) else labels)
    targets = kind.evidence_targets(labels, num_outputs)
    scores = logme_targets(features, targets)
    if np.isnan(scores).all():
        return float("nan")
    return float(np.nanmean(scores))
