"""Metric computations on present labels only (scikit-learn inside), shared by the evaluate modules and the Trainer.

Inputs are arrays with missing labels as ``-100`` or NaN. A metric that a label's present entries cannot define (no
present entry; no positive for F1 / average precision; one class only for ROC-AUC) is ``None``: reported as missing,
never as a crash or a made-up 0.5. Macro averages are over the labels where the metric is defined.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
from sklearn import metrics as skm

from ..tasks import MISSING, BinaryTask, MultiClassTask, OrdinalTask, RegressionTask
from ..tasks import present_mask as present

BINARY_METRICS = BinaryTask.metric_names
MULTICLASS_METRICS = MultiClassTask.metric_names
ORDINAL_METRICS = OrdinalTask.metric_names
REGRESSION_METRICS = RegressionTask.metric_names

__all__ = [
    "MISSING",
    "binary_scores",
    "multiclass_scores",
    "multilabel_scores",
    "ordinal_scores",
    "present",
    "regression_scores",
]


def _mean(values: Sequence[float | None]) -> float | None:
    defined = [v for v in values if v is not None]
    return float(np.mean(defined)) if defined else None


def binary_scores(scores: np.ndarray, labels: np.ndarray, threshold: float = 0.5) -> dict[str, float | None]:
    """ROC-AUC, average precision, F1 at ``threshold`` and accuracy of one label's present entries."""
    scores, labels = np.asarray(scores, dtype=np.float64).reshape(-1), np.asarray(labels, dtype=np.float64).reshape(-1)
    mask = present(labels)
    y, s = labels[mask].astype(int), scores[mask]
    n_pos = int(y.sum())
    out: dict[str, float | None] = dict.fromkeys(BINARY_METRICS)
    out.update(support=n_pos, count=int(mask.sum()))
    if y.size == 0:
        return out
    pred = (s >= threshold).astype(int)
    out["accuracy"] = float(skm.accuracy_score(y, pred))
    if n_pos > 0:
        out["average_precision"] = float(skm.average_precision_score(y, s))
        out["f1"] = float(skm.f1_score(y, pred, zero_division=0))
    if 0 < n_pos < y.size:
        out["roc_auc"] = float(skm.roc_auc_score(y, s))
    return out


def binary_scores_columns(scores: np.ndarray, labels: np.ndarray, thresholds: Sequence[float]) -> list[dict]:
    """[`binary_scores`] of every column of ``(N, L)`` arrays at once: one sort per column, no Python loop over labels
    (per-label scikit-learn calls cost ~30 ms per label, 5 minutes per evaluation of a 10,000-tag task).

    Same definitions as scikit-learn: ROC-AUC counts tied scores as half, average precision steps at each distinct
    score (``average_precision_score``), F1 and accuracy at each label's threshold."""
    scores, labels = np.asarray(scores, dtype=np.float64), np.asarray(labels, dtype=np.float64)
    n, width = scores.shape
    mask = present(labels)
    y = np.where(mask, labels, 0.0) > 0.5
    count, n_pos = mask.sum(0), (y & mask).sum(0)
    n_neg = count - n_pos
    pred = scores >= np.asarray(thresholds, dtype=np.float64)[None, :]
    correct = ((pred == y) & mask).sum(0)
    tp, fp, fn = (pred & y & mask).sum(0), (pred & ~y & mask).sum(0), (~pred & y & mask).sum(0)
    # descending score per column, absent entries last; a tie group ends where the next present score differs
    order = np.argsort(np.where(mask, -scores, np.inf), axis=0, kind="stable")
    s = np.take_along_axis(scores, order, axis=0)
    m = np.take_along_axis(mask, order, axis=0)
    pos = np.take_along_axis(y, order, axis=0) & m
    neg = ~np.take_along_axis(y, order, axis=0) & m
    tps, fps = np.cumsum(pos, axis=0), np.cumsum(neg, axis=0)
    rows = np.arange(n)[:, None]
    nxt_differs = np.ones_like(m)
    nxt_differs[:-1] = (s[1:] != s[:-1]) | ~m[1:]
    end = nxt_differs & m
    group_end = np.minimum.accumulate(np.where(end, rows, n - 1)[::-1], axis=0)[::-1]
    starts = np.zeros_like(m)
    starts[0] = True
    starts[1:] = end[:-1]
    group_start = np.maximum.accumulate(np.where(starts, rows, 0), axis=0)
    tps_end, fps_end = np.take_along_axis(tps, group_end, axis=0), np.take_along_axis(fps, group_end, axis=0)
    precision_end = tps_end / np.maximum(tps_end + fps_end, 1)
    with np.errstate(invalid="ignore", divide="ignore"):
        average_precision = (pos * precision_end).sum(0) / n_pos
        fps_before = np.where(group_start > 0, np.take_along_axis(fps, np.maximum(group_start - 1, 0), axis=0), 0)
        beaten = (n_neg[None, :] - fps_end) + 0.5 * (fps_end - fps_before)  # negatives below, and half the ties
        roc_auc = (pos * beaten).sum(0) / (n_pos * n_neg)
        accuracy = correct / count
        f1 = 2 * tp / np.maximum(2 * tp + fp + fn, 1)
    out = []
    for j in range(width):
        row: dict[str, float | None] = dict.fromkeys(BINARY_METRICS)
        row.update(support=int(n_pos[j]), count=int(count[j]))
        if count[j]:
            row["accuracy"] = float(accuracy[j])
            if n_pos[j]:
                row["average_precision"], row["f1"] = float(average_precision[j]), float(f1[j])
            if 0 < n_pos[j] < count[j]:
                row["roc_auc"] = float(roc_auc[j])
        out.append(row)
    return out


def multilabel_scores(
    probabilities: np.ndarray,
    labels: np.ndarray,
    thresholds: Sequence[float] | float | None = None,
    label_names: Sequence[str] | None = None,
) -> dict[str, Any]:
    """Per-label, macro and micro binary metrics of an ``(N, L)`` multilabel (or ``(N,)``/``(N, 1)`` binary) task.

    Returns ``{"per_label": {name: {metric: value}}, "macro": {...}, "micro": {...}}``; micro pools every present
    entry of every label.
    """
    probs = np.asarray(probabilities, dtype=np.float64)
    labels = np.asarray(labels, dtype=np.float64)
    probs = probs.reshape(probs.shape[0], -1)
    labels = labels.reshape(probs.shape)
    n = probs.shape[1]
    names = list(label_names) if label_names is not None else [str(i) for i in range(n)]
    if len(names) != n:
        raise ValueError(f"{len(names)} label names for {n} outputs")
    if thresholds is None:
        thresholds = [0.5] * n
    elif np.isscalar(thresholds):
        thresholds = [float(thresholds)] * n
    if len(thresholds) != n:
        raise ValueError(f"{len(thresholds)} thresholds for {n} outputs")
    per_label = dict(zip(names, binary_scores_columns(probs, labels, thresholds)))
    macro = {m: _mean([per_label[name][m] for name in names]) for m in BINARY_METRICS}
    # micro: pool present entries; F1/accuracy use each label's own threshold
    mask = present(labels)
    y = labels[mask].astype(int)
    s = probs[mask]
    pred = (probs >= np.asarray(thresholds)[None, :])[mask].astype(int)
    micro: dict[str, float | None] = dict.fromkeys(BINARY_METRICS)
    if y.size:
        micro["accuracy"] = float(skm.accuracy_score(y, pred))
        if y.sum() > 0:
            micro["f1"] = float(skm.f1_score(y, pred, zero_division=0))
            micro["average_precision"] = float(skm.average_precision_score(y, s))
        if 0 < y.sum() < y.size:
            micro["roc_auc"] = float(skm.roc_auc_score(y, s))
    return {"per_label": per_label, "macro": macro, "micro": micro}


def multiclass_scores(
    probabilities: np.ndarray, labels: np.ndarray, label_names: Sequence[str] | None = None
) -> dict[str, Any]:
    """Accuracy, macro-F1 (scikit-learn's, over classes seen in references or predictions) and per-class F1."""
    probs = np.asarray(probabilities, dtype=np.float64)
    probs = probs.reshape(probs.shape[0], -1)
    labels = np.asarray(labels, dtype=np.float64).reshape(-1)
    names = list(label_names) if label_names is not None else [str(i) for i in range(probs.shape[1])]
    mask = present(labels)
    y, pred = labels[mask].astype(int), probs[mask].argmax(axis=1)
    out: dict[str, Any] = {"accuracy": None, "macro_f1": None, "per_label": _per_class_f1(y, pred, names)}
    if y.size:
        out["accuracy"] = float(skm.accuracy_score(y, pred))
        out["macro_f1"] = float(skm.f1_score(y, pred, average="macro", zero_division=0))
    return out


def _per_class_f1(y: np.ndarray, pred: np.ndarray, names: Sequence[str]) -> dict[str, dict[str, float | None]]:
    """``{class: {f1, support}}``; a class without support in ``y`` has F1 None."""
    per_class = skm.f1_score(y, pred, labels=list(range(len(names))), average=None, zero_division=0) if y.size else []
    out = {}
    for c, name in enumerate(names):
        support = int((y == c).sum())
        out[name] = {"f1": float(per_class[c]) if support else None, "support": support}
    return out


def ordinal_scores(predictions: np.ndarray, labels: np.ndarray, label_names: Sequence[str]) -> dict[str, Any]:
    """Accuracy, MAE in classes and quadratic weighted kappa of predicted class ids, plus per-class F1.

    Kappa is None when it is undefined (fewer than two distinct classes among references and predictions).
    """
    names = list(label_names)
    labels = np.asarray(labels, dtype=np.float64).reshape(-1)
    mask = present(labels)
    y, pred = labels[mask].astype(int), np.asarray(predictions, dtype=np.int64).reshape(-1)[mask]
    out: dict[str, Any] = dict.fromkeys(ORDINAL_METRICS)
    out["per_label"] = _per_class_f1(y, pred, names)
    if y.size:
        out["accuracy"] = float(skm.accuracy_score(y, pred))
        out["mae"] = float(np.abs(y - pred).mean())
        if len(set(y.tolist()) | set(pred.tolist())) > 1:
            kappa = skm.cohen_kappa_score(y, pred, labels=list(range(len(names))), weights="quadratic")
            out["qwk"] = float(kappa) if np.isfinite(kappa) else None
    return out


def regression_scores(
    predictions: np.ndarray, labels: np.ndarray, label_names: Sequence[str] | None = None
) -> dict[str, Any]:
    """MAE and RMSE per output (present values only) and their mean over outputs."""
    preds = np.asarray(predictions, dtype=np.float64)
    preds = preds.reshape(preds.shape[0], -1)
    labels = np.asarray(labels, dtype=np.float64).reshape(preds.shape)
    names = list(label_names) if label_names is not None else [str(i) for i in range(preds.shape[1])]
    per_label = {}
    for j, name in enumerate(names):
        mask = present(labels[:, j])
        y, p = labels[mask, j], preds[mask, j]
        per_label[name] = {
            "mae": float(skm.mean_absolute_error(y, p)) if y.size else None,
            "rmse": float(np.sqrt(skm.mean_squared_error(y, p))) if y.size else None,
            "count": int(mask.sum()),
        }
    return {"per_label": per_label, **{m: _mean([per_label[n][m] for n in names]) for m in REGRESSION_METRICS}}
