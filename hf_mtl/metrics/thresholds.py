"""Per-label decision thresholds tuned on a validation set and stored in the model config (``TaskSpec.thresholds``).

Prediction (``TaskType.decode``), the pipeline, metrics and the model card all read the thresholds from the config, so
tuning once and saving the model is enough.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any

import numpy as np
import torch
from sklearn.metrics import precision_recall_curve

from ..tasks import as_task_specs, present_mask

logger = logging.getLogger(__name__)

OBJECTIVES = ("f1", "precision", "recall")


def best_threshold(scores: Any, labels: Any, objective: str = "f1", target: float | None = None) -> float | None:
    """The threshold (predict positive when ``score >= threshold``) that suits ``objective`` on present labels.

    ``f1``: maximise F1. ``precision``: the lowest threshold whose precision reaches ``target`` (most recall at that
    precision). ``recall``: the highest threshold whose recall reaches ``target`` (most precision at that recall).
    None when the label has no present positive, or no threshold reaches the target.
    """
    if objective not in OBJECTIVES:
        raise ValueError(f"unknown threshold objective {objective!r}; choose one of {OBJECTIVES}")
    if objective != "f1" and (target is None or not 0 < target <= 1):
        raise ValueError(f"objective {objective!r} needs a target in (0, 1], got {target!r}")
    scores = np.asarray(scores, dtype=np.float64).reshape(-1)
    labels = np.asarray(labels, dtype=np.float64).reshape(-1)
    mask = present_mask(labels)
    y, s = labels[mask].astype(int), scores[mask]
    if y.sum() == 0:
        return None
    precision, recall, thresholds = precision_recall_curve(y, s)
    precision, recall = precision[:-1], recall[:-1]  # the last point has no threshold
    if objective == "f1":
        f1 = np.where(precision + recall > 0, 2 * precision * recall / np.maximum(precision + recall, 1e-12), 0.0)
        return float(thresholds[int(np.argmax(f1))])
    if objective == "precision":
        ok = np.flatnonzero(precision >= target)
        return float(thresholds[ok[0]]) if ok.size else None
    ok = np.flatnonzero(recall >= target)
    return float(thresholds[ok[-1]]) if ok.size else None


def tune_thresholds(
    task_specs: Any,
    logits: Mapping[str, Any],
    labels: Mapping[str, Any],
    objective: str = "f1",
    target: float | None = None,
    from_logits: bool = True,
) -> dict[str, list[float]]:
    """Per-label thresholds for every task whose type uses them (multilabel, binary): ``{task: [threshold per label]}``.

    ``logits`` / ``labels``: dicts task → ``(N, L)`` arrays (missing labels -100/NaN), e.g. from ``trainer.predict``.
    A label that cannot be tuned (no present positive, target unreachable) keeps its current threshold (or 0.5).
    """
    tuned: dict[str, list[float]] = {}
    for spec in as_task_specs(task_specs):
        if not spec.task_type.uses_thresholds or spec.name not in logits or spec.name not in labels:
            continue
        n = spec.output_size
        scores = torch.as_tensor(np.asarray(logits[spec.name], dtype=np.float32)).reshape(-1, n)
        scores = spec.task_type.activate(spec, scores).numpy() if from_logits else scores.numpy()
        task_labels = np.asarray(labels[spec.name], dtype=np.float64).reshape(-1, n)
        current = spec.thresholds or [0.5] * n
        values = []
        for j, name in enumerate(spec.output_names):
            value = best_threshold(scores[:, j], task_labels[:, j], objective, target)
            if value is None:
                logger.warning("task %r, label %r: cannot tune a threshold (%s); keeping %.3f",
                               spec.name, name, "no present positive" if task_labels[:, j].max(initial=0) != 1
                               else f"{objective} target {target} unreachable", current[j])
                value = current[j]
            values.append(float(value))
        tuned[spec.name] = values
    return tuned


def apply_thresholds(config_or_model: Any, thresholds: Mapping[str, Any]) -> None:
    """Write ``{task: [threshold per label]}`` into the model config's task specs (validated like any spec)."""
    config = getattr(config_or_model, "config", config_or_model)
    config.set_task_values("thresholds", thresholds)
