"""The data side of the advice: labelled samples per task and per label, label means (prevalence of 0/1 labels), and
how unequal the tasks' amounts of labelled data are."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import torch

from ..metrics import output_names
from ..tasks import TaskSpec

__all__ = ["data_report", "gini"]


def gini(values: Sequence[float]) -> float:
    """Gini coefficient of non-negative amounts: 0 when all tasks have as much labelled data, towards 1 when one
    task has (nearly) all of it."""
    x = np.sort(np.asarray(values, dtype=np.float64))
    if len(x) == 0 or x.sum() == 0:
        return 0.0
    n = len(x)
    return float((2 * np.arange(1, n + 1) - n - 1) @ x / (n * x.sum()))


def data_report(specs: Sequence[TaskSpec], labels: Mapping[str, torch.Tensor]) -> dict[str, Any]:
    """``{"num_samples", "tasks": {task: {...}}, "labelled_max_over_min", "labelled_gini"}`` from encoded labels.

    Per task: rows with at least one present label, and per output (label, class or value) the present count and
    the mean of the target column (the prevalence of a 0/1 label, the share of a class, the mean of a value).
    """
    tasks: dict[str, Any] = {}
    num_samples = 0
    for spec in specs:
        targets = spec.task_type.evidence_targets(labels[spec.name], spec.output_size).numpy()
        num_samples = max(num_samples, len(targets))
        present = ~np.isnan(targets)
        means = np.where(present, targets, 0.0).sum(0) / np.maximum(present.sum(0), 1)
        per_label = {
            name: {"present": int(present[:, k].sum()),
                   "mean": None if not present[:, k].any() else round(float(means[k]), 6)}
            for k, name in enumerate(output_names(spec))
        }
        tasks[spec.name] = {
            "type": spec.type,
            "labelled_samples": int(present.any(1).sum()),
            "missing_share": round(float(1 - present.mean()), 6) if present.size else 1.0,
            "labels": per_label,
        }
    amounts = [t["labelled_samples"] for t in tasks.values()]
    return {
        "num_samples": num_samples,
        "tasks": tasks,
        "labelled_max_over_min": round(max(amounts) / max(min(amounts), 1), 4),
        "labelled_gini": round(gini(amounts), 6),
    }
