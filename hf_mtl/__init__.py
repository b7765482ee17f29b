"""hf_mtl: transfer learning and multi-task / multi-label learning on timm and transformers backbones.

``import hf_mtl`` loads the core (config, task types, heads, losses, backbones, model) and registers the model with
transformers' ``AutoConfig`` / ``AutoModel``, the processors and the ``multi-task-classification`` pipeline. Everything
else (data, metrics, training, transfer, sharing) is imported on first use of one of its names, like transformers'
own lazy package, so loading a model or running a local metric never imports the Trainer.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from transformers import AutoConfig, AutoModel

from . import modeling_mtl
from .configuration_mtl import MultiTaskConfig
from .losses import count_present_labels, multitask_loss
from .modeling_mtl import MultiTaskModel, MultiTaskOutput
from .pipeline import PIPELINE_TASK, MultiTaskClassificationPipeline, register_pipeline
from .preprocessing import TimmImageProcessor, build_processor, dataset_transform, preprocess, register_processors
from .safety import UnsafeConfigError, UnsafeWeightsError
from .tasks import MISSING, TASK_TYPES, TaskSpec
from .version import __version__ as __version__

_LAZY: dict[str, str] = {
    "MultiTaskTrainer": "trainer",
    "MultiTaskTrainingArguments": "training_args",
    "GradualUnfreezingCallback": "transfer",
    "apply_freeze_policy": "transfer",
    "apply_lora": "transfer",
    "cache_features": "transfer",
    "MultiTaskDataCollator": "data",
    "mix_datasets": "data",
    "task_specs_from_features": "data",
    "validate_inputs": "data",
    "validate_labels": "data",
    "apply_pos_weight": "balancing",
    "build_balancer": "balancing",
    "compute_pos_weight": "balancing",
    "last_complete_checkpoint": "checkpointing",
    "PushToHubError": "hub",
}
"""Public name → the submodule that defines it, imported on first access."""

# Model methods that live above the core (prediction, sharing): the core names them, this package says where they are.
modeling_mtl.MODEL_SERVICES.update(
    predict="hf_mtl.pipeline:predict",
    load_processor="hf_mtl.hub:load_processor",
    push_to_hub="hf_mtl.hub:push_to_hub",
)

AutoConfig.register(MultiTaskConfig.model_type, MultiTaskConfig, exist_ok=True)
AutoModel.register(MultiTaskConfig, MultiTaskModel, exist_ok=True)
register_processors()
register_pipeline()

__all__ = [
    "MISSING",
    "PIPELINE_TASK",
    "TASK_TYPES",
    "MultiTaskConfig",
    "MultiTaskModel",
    "MultiTaskOutput",
    "MultiTaskClassificationPipeline",
    "TaskSpec",
    "TimmImageProcessor",
    "build_processor",
    "dataset_transform",
    "preprocess",
    "UnsafeConfigError",
    "UnsafeWeightsError",
    "count_present_labels",
    "multitask_loss",
    "MultiTaskTrainer",
    "MultiTaskTrainingArguments",
    "GradualUnfreezingCallback",
    "apply_freeze_policy",
    "apply_lora",
    "cache_features",
    "MultiTaskDataCollator",
    "mix_datasets",
    "task_specs_from_features",
    "validate_inputs",
    "validate_labels",
    "apply_pos_weight",
    "build_balancer",
    "compute_pos_weight",
    "last_complete_checkpoint",
    "PushToHubError",
]


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(f".{module}", __name__), name)
    globals()[name] = value  # later lookups skip __getattr__
    return value


def __dir__() -> list[str]:
    return sorted({*globals(), *__all__})


if TYPE_CHECKING:
    from .balancing import apply_pos_weight, build_balancer, compute_pos_weight
    from .checkpointing import last_complete_checkpoint
    from .data import MultiTaskDataCollator, mix_datasets, task_specs_from_features, validate_inputs, validate_labels
    from .hub import PushToHubError
    from .trainer import MultiTaskTrainer
    from .training_args import MultiTaskTrainingArguments
    from .transfer import GradualUnfreezingCallback, apply_freeze_policy, apply_lora, cache_features
