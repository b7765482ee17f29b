"""Tasks on a trained model: add a task, replace a task's head (e.g. a new label set), remove a task.

The backbone and the other heads are kept as they are; the config's task list changes with the heads, so
``save_pretrained`` / ``from_pretrained`` round-trip the edited model.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from torch import nn

from ..heads import TaskHead
from ..tasks import TaskSpec
from .blocks import unwrap_multitask_model


def _editable(model: nn.Module):
    if hasattr(model, "peft_config"):
        raise ValueError("edit tasks before applying LoRA or after merging it (hf_mtl.transfer.merge_lora)")
    return unwrap_multitask_model(model)


def _new_head(base, spec: TaskSpec) -> TaskHead:
    head = TaskHead(base.backbone.num_features, spec)
    reference = next(base.parameters())
    return head.to(device=reference.device, dtype=reference.dtype)


def add_task(model: nn.Module, spec: TaskSpec | Mapping[str, Any]) -> TaskSpec:
    """Add a task with a freshly initialised head (after the existing tasks)."""
    base = _editable(model)
    spec = TaskSpec.from_dict(dict(spec) if isinstance(spec, Mapping) else spec)
    if spec.name in base.heads:
        raise ValueError(f"task {spec.name!r} already exists; use replace_task to give it a new head")
    specs = base.task_specs + [spec]
    base.config.set_tasks(specs)
    base.heads[spec.name] = _new_head(base, spec)
    return spec


def replace_task(model: nn.Module, spec: TaskSpec | Mapping[str, Any], old_name: str | None = None) -> TaskSpec:
    """Give task ``old_name`` (default: ``spec.name``) a new spec and a fresh head, in the same position."""
    base = _editable(model)
    spec = TaskSpec.from_dict(dict(spec) if isinstance(spec, Mapping) else spec)
    old_name = old_name or spec.name
    names = base.config.task_names
    if old_name not in names:
        raise KeyError(f"no task named {old_name!r} to replace; the model's tasks are {names}")
    if spec.name != old_name and spec.name in names:
        raise ValueError(f"cannot rename {old_name!r} to {spec.name!r}: that task already exists")
    specs = [spec if s.name == old_name else s for s in base.task_specs]
    base.config.set_tasks(specs)
    heads = {s.name: (_new_head(base, spec) if s.name == spec.name else base.heads[s.name]) for s in specs}
    base.heads = nn.ModuleDict(heads)
    return spec


def remove_task(model: nn.Module, name: str) -> None:
    """Remove a task and its head; a model keeps at least one task."""
    base = _editable(model)
    names = base.config.task_names
    if name not in names:
        raise KeyError(f"no task named {name!r} to remove; the model's tasks are {names}")
    if len(names) == 1:
        raise ValueError(f"cannot remove {name!r}: it is the model's only task")
    base.config.set_tasks([s for s in base.task_specs if s.name != name])
    del base.heads[name]
