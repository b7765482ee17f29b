"""Masked multi-task loss.

Per task ``t`` with weight ``w_t``: ``L = Σ_t w_t · (Σ present losses of t) / N_t``. ``N_t`` is the number of present
labels of ``t`` in the *effective* batch when the Trainer supplies it (all micro-batches of a gradient-accumulation
window on all processes), else in this batch. Missing labels (``-100`` or NaN) contribute nothing; a task with no
present label contributes an exact zero that keeps the graph connected, so a batch with no labels gives loss 0 and
finite (zero) gradients, and DDP never sees an unused head.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import torch

from .tasks import TaskSpec


def _at_least_float32(logits: torch.Tensor) -> torch.Tensor:
    """Losses are computed in at least float32: with float16 logits (an fp16 autocast head) a float16 sum of per-label
    losses overflows to inf at 65504 although the normalised loss is finite."""
    return logits.to(torch.promote_types(logits.dtype, torch.float32))


def task_loss_terms(
    spec: TaskSpec, logits: torch.Tensor, labels: torch.Tensor, label_smoothing: float = 0.0
) -> tuple[torch.Tensor, torch.Tensor]:
    """(sum of the task's per-label losses over present labels, number of present labels), in at least float32."""
    logits = _at_least_float32(logits)
    return spec.task_type.loss_terms(spec, logits, labels.to(logits.device), label_smoothing=label_smoothing)


def count_present_labels(specs: Sequence[TaskSpec], labels: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Number of present labels per task; tasks absent from ``labels`` count 0."""
    counts = {}
    for spec in specs:
        value = labels.get(spec.name)
        counts[spec.name] = spec.task_type.count_present(value) if value is not None else torch.tensor(0)
    return counts


def multitask_loss(
    specs: Sequence[TaskSpec],
    logits: Mapping[str, torch.Tensor],
    labels: Mapping[str, torch.Tensor],
    num_items: Mapping[str, torch.Tensor | int] | None = None,
    weights: Mapping[str, float | torch.Tensor] | None = None,
    label_smoothing: float = 0.0,
) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    """Weighted sum of masked per-task losses.

    Returns ``(total, per_task)`` where ``per_task[name]`` is the task's normalised loss (before its weight).
    ``num_items`` overrides the per-task normaliser (see module docstring); ``weights`` overrides ``spec.loss_weight``
    (used by dynamic task balancing). ``label_smoothing`` applies to classification targets (see
    `TaskType.loss_terms`).
    """
    total: torch.Tensor | None = None
    per_task: dict[str, torch.Tensor] = {}
    for spec in specs:
        task_logits = logits[spec.name]
        task_labels = labels.get(spec.name)
        if task_labels is None:  # zero times each logit, not times their sum: a float16 sum can overflow (inf·0 = NaN)
            loss = (_at_least_float32(task_logits) * 0.0).sum()
        else:
            loss_sum, count = task_loss_terms(spec, task_logits, task_labels, label_smoothing)
            normaliser = count if num_items is None else num_items[spec.name]
            normaliser = torch.as_tensor(normaliser, device=loss_sum.device, dtype=loss_sum.dtype).clamp(min=1)
            loss = loss_sum / normaliser
        per_task[spec.name] = loss
        weight = spec.loss_weight if weights is None else weights[spec.name]
        term = loss * weight
        total = term if total is None else total + term
    assert total is not None, "a multi-task model has at least one task"
    return total, per_task
