"""Metrics on present labels: local evaluate modules, the Trainer's ``compute_metrics`` factory, per-label tables.

The metric scripts under this folder are `evaluate` modules loaded by path (``evaluate.load(metric_path(name))``), so
they work with the Hub unreachable; their arithmetic is scikit-learn, in ``hf_mtl.metrics.functional``.
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import evaluate
import numpy as np
import torch
from torch.utils.data import DataLoader

from ..data import MultiTaskDataCollator
from ..tasks import TASK_TYPES, TaskSpec, as_task_specs, metric_key
from .functional import (
    binary_scores,
    multiclass_scores,
    multilabel_scores,
    ordinal_scores,
    present,
    regression_scores,
)
from .thresholds import apply_thresholds, best_threshold, tune_thresholds

logger = logging.getLogger(__name__)

METRICS_DIR = Path(__file__).resolve().parent
MAIN_SCORE = "main_score"
"""Key of the mean over tasks of `TaskType.main_score`: one higher-is-better number for ``metric_for_best_model``."""

METRIC_MODULES = {name: task_type.metric_module for name, task_type in TASK_TYPES.items()}
"""Task type → the local evaluate module that scores it (``TaskType.metric_module``)."""

__all__ = [
    "MAIN_SCORE",
    "METRIC_MODULES",
    "ComputeMetrics",
    "Evaluation",
    "apply_thresholds",
    "best_threshold",
    "binary_scores",
    "build_compute_metrics",
    "compute_task_metrics",
    "evaluate_predictions",
    "load_metric",
    "metric_key",
    "metric_path",
    "multiclass_scores",
    "multilabel_scores",
    "ordinal_scores",
    "output_names",
    "per_label_metrics",
    "predictions_and_labels",
    "present",
    "regression_scores",
    "reported_metric_keys",
    "tune_thresholds",
]


def metric_path(task_type: str) -> str:
    """Folder of the local evaluate module for a task type (or a module name: multilabel, multiclass, ...)."""
    name = METRIC_MODULES.get(task_type, task_type)
    folder = METRICS_DIR / name
    if not (folder / f"{name}.py").is_file():
        raise ValueError(f"no hf_mtl metric module for {task_type!r}; known: {sorted(METRIC_MODULES)}")
    return str(folder)


def load_metric(task_type: str, **kwargs: Any):
    """``evaluate.load`` of the local module (in memory, own experiment id: safe in several processes at once)."""
    kwargs = {"keep_in_memory": True, "experiment_id": uuid.uuid4().hex, **kwargs}
    return evaluate.load(metric_path(task_type), **kwargs)


_LOADED: dict[str, Any] = {}


def _numpy(value: Any) -> np.ndarray:
    if isinstance(value, torch.Tensor):
        return value.detach().float().cpu().numpy()
    return np.asarray(value)


def output_names(spec: TaskSpec) -> list[str]:
    """One name per output column (``TaskSpec.output_names``; a binary task's output is its positive label)."""
    return spec.output_names


def activate(spec: TaskSpec, logits: Any) -> np.ndarray:
    """Logits → probabilities (values for regression) with the task type's own activation."""
    tensor = torch.as_tensor(_numpy(logits)).float()
    return spec.task_type.activate(spec, tensor).numpy()


def compute_task_metrics(
    spec: TaskSpec, logits: Any, labels: Any, metric: Any = None, per_label: bool = True
) -> tuple[dict[str, float], dict[str, dict[str, float | None]]]:
    """One task's ``({<task>_<metric>: value}, {label: {metric: value}})`` on its present labels.

    Keys: multilabel ``<task>_macro_<m>``, ``<task>_micro_<m>`` and ``<task>_<label>_<m>``; binary ``<task>_<m>``;
    multiclass ``<task>_accuracy``, ``<task>_macro_f1``, ``<task>_<class>_f1``; ordinal ``<task>_accuracy``,
    ``<task>_mae``, ``<task>_qwk``, ``<task>_<class>_f1``; regression ``<task>_mae``, ``<task>_rmse`` (and per output
    when there are several): each task type's ``compute_metrics``. Undefined metrics are left out (missing), never
    faked. ``per_label=False`` keeps the per-label keys out of the flat dict (they stay in the returned table).
    """
    if metric is None:
        module = spec.task_type.metric_module
        if module not in _LOADED:
            _LOADED[module] = load_metric(module)
        metric = _LOADED[module]
    scores = activate(spec, logits)
    labels = _numpy(labels).astype(np.float64)
    flat, table = spec.task_type.compute_metrics(spec, metric, scores, labels, per_label=per_label)
    flat.update({f"{spec.name}_{m}": v for m, v in spec.task_type.baseline_metrics(spec, labels).items()})
    undefined = sorted(k for k, v in flat.items() if v is None)
    if undefined:
        logger.info("task %r: %d metrics undefined on this eval set (no present labels / positives): %s",
                    spec.name, len(undefined), undefined[:10])
    return {k: float(v) for k, v in flat.items() if v is not None}, table


def _split_eval_prediction(eval_pred: Any) -> tuple[Mapping[str, Any], Mapping[str, Any]]:
    predictions = getattr(eval_pred, "predictions", None)
    labels = getattr(eval_pred, "label_ids", None)
    if predictions is None and isinstance(eval_pred, (tuple, list)):
        predictions, labels = eval_pred[0], eval_pred[1]
    if isinstance(predictions, (tuple, list)) and predictions and isinstance(predictions[0], Mapping):
        predictions = predictions[0]
    if not isinstance(predictions, Mapping) or not isinstance(labels, Mapping):
        raise ValueError(
            "compute_metrics expects predictions and labels as dicts task → array (what MultiTaskTrainer's eval loop "
            f"gives), got {type(predictions).__name__} and {type(labels).__name__}"
        )
    return predictions, labels


@dataclass
class Evaluation:
    """One evaluation's results: the flat ``{<task>_<metric>: value}`` the Trainer logs, the per-label table
    ``{task: {label: {metric: value or None}}}`` (None: undefined on this eval set) the model card shows, and the
    scores and labels behind them."""

    metrics: dict[str, float] = field(default_factory=dict)
    per_label: dict[str, dict[str, dict[str, float | None]]] = field(default_factory=dict)
    scores: dict[str, np.ndarray] = field(default_factory=dict, repr=False)
    """Per task, the activated outputs (probabilities, or values for regression) the metrics were computed from."""
    labels: dict[str, np.ndarray] = field(default_factory=dict, repr=False)
    """Per task, the encoded labels (``-100`` / NaN missing): with ``scores``, what the plots of ``hf_mtl.chart`` draw."""


def evaluate_predictions(
    task_specs: Any,
    predictions: Mapping[str, Any],
    labels: Mapping[str, Any],
    per_label: bool = True,
    loaded: dict[str, Any] | None = None,
) -> Evaluation:
    """Score every task of ``task_specs`` present in ``predictions`` / ``labels`` (dicts task → array).

    ``per_label=False`` keeps per-label keys out of ``metrics`` (hundreds of labels); ``per_label`` is filled anyway.
    ``loaded``: a cache of the loaded metric modules by name, kept across calls.
    """
    loaded = {} if loaded is None else loaded
    result = Evaluation()
    scores: list[float] = []
    for spec in as_task_specs(task_specs):
        if spec.name not in predictions or spec.name not in labels:
            continue
        module = spec.task_type.metric_module
        if module not in loaded:
            loaded[module] = load_metric(module)
        flat, task_table = compute_task_metrics(
            spec, predictions[spec.name], labels[spec.name], loaded[module], per_label=per_label
        )
        result.metrics.update(flat)
        result.scores[spec.name] = activate(spec, predictions[spec.name])
        result.labels[spec.name] = _numpy(labels[spec.name]).astype(np.float64)
        score = spec.task_type.main_score({k.removeprefix(f"{spec.name}_"): v for k, v in flat.items()})
        if score is not None:
            scores.append(score)
        result.per_label[spec.name] = {
            label: {m: v for m, v in values.items() if m in (*spec.task_type.metric_names, "f1", "support")}
            for label, values in task_table.items()
        }
    if scores:
        result.metrics[MAIN_SCORE] = float(np.mean(scores))
    return result


class ComputeMetrics:
    """A Trainer ``compute_metrics`` reporting ``<task>_<metric>`` (the Trainer prefixes ``eval_``) per task and label;
    the whole result of its last call, per-label table included, is ``.last`` (an [`Evaluation`]): what the model card
    and the scripts read, instead of parsing the flat keys back."""

    def __init__(self, task_specs: Any, per_label: bool = True) -> None:
        self.task_specs = task_specs
        self.per_label = per_label
        self.last = Evaluation()
        self._loaded: dict[str, Any] = {}

    def evaluate(self, eval_pred: Any) -> Evaluation:
        """Score ``eval_pred`` (an ``EvalPrediction`` or ``(predictions, labels)``) without touching ``.last``."""
        predictions, labels = _split_eval_prediction(eval_pred)
        return evaluate_predictions(self.task_specs, predictions, labels, self.per_label, self._loaded)

    def __call__(self, eval_pred: Any) -> dict[str, float]:
        self.last = self.evaluate(eval_pred)
        return dict(self.last.metrics)


def build_compute_metrics(task_specs: Any, per_label: bool = True) -> ComputeMetrics:
    """The Trainer ``compute_metrics`` of a multi-task model ([`ComputeMetrics`]).

    ``task_specs``: the specs, or the model / config (then thresholds written by [`tune_thresholds`] are used as soon
    as they are set). ``per_label=False`` keeps per-label keys out of the logs but still fills ``.last.per_label``.
    """
    return ComputeMetrics(task_specs, per_label=per_label)


def reported_metric_keys(compute_metrics: ComputeMetrics, task_specs: Any) -> set[str]:
    """The keys ``compute_metrics`` (a [`ComputeMetrics`]) reports, without the Trainer's ``eval_`` prefix.

    Found by scoring a tiny synthetic eval set in which every metric is defined (both values of every binary label,
    every class), so a ``metric_for_best_model`` typo is caught before training instead of at the first evaluation.
    The last evaluation (``.last``) is left as it was.
    """
    rng = np.random.default_rng(0)
    logits, labels = {}, {}
    for spec in as_task_specs(task_specs):
        logits[spec.name], labels[spec.name] = spec.task_type.example_eval(spec, rng)
    return set(compute_metrics.evaluate((logits, labels)).metrics)


def per_label_metrics(task_specs: Any, logits: Mapping[str, Any], labels: Mapping[str, Any]):
    """``{task: {label: {metric: value or None}}}`` for the model card's per-label table (None: undefined)."""
    return evaluate_predictions(task_specs, dict(logits), dict(labels)).per_label


def predictions_and_labels(model: Any, dataset: Any, collator: Any = None, batch_size: int = 64):
    """Run ``model`` over ``dataset`` and return ``(logits, labels)`` as dicts task → numpy array (for tuning)."""
    collator = collator or MultiTaskDataCollator(model.task_specs)
    loader = DataLoader(dataset, batch_size=batch_size, collate_fn=collator)
    logits: dict[str, list[np.ndarray]] = {}
    labels: dict[str, list[np.ndarray]] = {}
    was_training = model.training
    model.eval()
    device = next(model.parameters()).device
    with torch.no_grad():
        for batch in loader:
            batch_labels = batch.pop("labels", None)
            if batch_labels is None:
                raise ValueError("the dataset has no label columns for the model's tasks")
            out = model(**{k: v.to(device) if isinstance(v, torch.Tensor) else v for k, v in batch.items()})
            for name, value in out.logits.items():
                logits.setdefault(name, []).append(_numpy(value))
                labels.setdefault(name, []).append(_numpy(batch_labels[name]))
    model.train(was_training)
    return {k: np.concatenate(v) for k, v in logits.items()}, {k: np.concatenate(v) for k, v in labels.items()}


