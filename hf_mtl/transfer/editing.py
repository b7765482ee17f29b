"""Tasks on a trained model: add a task, replace a task's head (e.g. a new label set), remove a task.

The backbone and the other heads are kept as they are; the config's task list changes with the heads, so
``save_pretrained`` / ``from_pretrained`` round-trip the edited model.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from torch import nn

from ..tasks import TaskSpec
from .blocks import unwrap_multitask_model


def add_task(model: nn.Module, spec: TaskSpec | Mapping[str, Any]) -> TaskSpec:
    """Add a task with a freshly initialised head (after the existing tasks): `MultiTaskModel.add_task`."""
    return unwrap_multitask_model(model).add_task(spec)


def replace_task(model: nn.Module, spec: TaskSpec | Mapping[str, Any], old_name: str | None = None) -> TaskSpec:
    """Give task ``old_name`` (default: ``spec.name``) a new spec and a fresh head: `MultiTaskModel.replace_task`."""
    return unwrap_multitask_model(model).replace_task(spec, old_name=old_name)


def remove_task(model: nn.Module, name: str) -> None:
    """Remove a task and its head; a model keeps at least one task: `MultiTaskModel.remove_task`."""
    unwrap_multitask_model(model).remove_task(name)
