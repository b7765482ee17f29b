"""hf_mtl: transfer learning and multi-task / multi-label learning on timm and transformers backbones.

``import hf_mtl`` loads the core (config, task types, heads, losses, backbones, model) and registers the model with
transformers' ``AutoConfig`` / ``AutoModel``, the processors and the ``multi-task-classification`` pipeline. Everything
else (data, metrics, training, transfer, sharing) is imported on first use of one of its names, like transformers'
own lazy package, so loading a model or running a local metric never imports the Trainer.
"""

import sys
from typing import TYPE_CHECKING

from transformers import AutoConfig, AutoModel
from transformers.utils.import_utils import _LazyModule

from . import modeling_mtl
from .configuration_mtl import MultiTaskConfig
from .losses import count_present_labels, multitask_loss
from .modeling_mtl import MultiTaskModel, MultiTaskOutput
from .pipeline import PIPELINE_TASK, MultiTaskClassificationPipeline, predict, register_pipeline
from .preprocessing import TimmImageProcessor, build_processor, dataset_transform, preprocess, register_processors
from .safety import UnsafeConfigError, UnsafeWeightsError
from .tasks import MISSING, TASK_TYPES, TaskSpec
from .version import __version__

_EAGER = {
    "MISSING": MISSING,
    "PIPELINE_TASK": PIPELINE_TASK,
    "TASK_TYPES": TASK_TYPES,
    "MultiTaskConfig": MultiTaskConfig,
    "MultiTaskModel": MultiTaskModel,
    "MultiTaskOutput": MultiTaskOutput,
    "MultiTaskClassificationPipeline": MultiTaskClassificationPipeline,
    "TaskSpec": TaskSpec,
    "TimmImageProcessor": TimmImageProcessor,
    "build_processor": build_processor,
    "dataset_transform": dataset_transform,
    "preprocess": preprocess,
    "count_present_labels": count_present_labels,
    "multitask_loss": multitask_loss,
    "UnsafeConfigError": UnsafeConfigError,
    "UnsafeWeightsError": UnsafeWeightsError,
    "__version__": __version__,
}
"""Public names of the core, the processors and the pipeline: imported with the package."""

_LAZY = {
    "trainer": ["MultiTaskTrainer"],
    "training_args": ["MultiTaskTrainingArguments"],
    "transfer": ["GradualUnfreezingCallback", "apply_freeze_policy", "apply_lora", "cache_features"],
    "data": ["MultiTaskDataCollator", "mix_datasets", "task_specs_from_features", "validate_inputs", "validate_labels"],
    "balancing": ["apply_pos_weight", "build_balancer", "compute_pos_weight"],
    "checkpointing": ["last_complete_checkpoint"],
    "hub": ["PushToHubError"],
}
"""Submodule → public names it defines, imported on first access of one of them."""

_SUBMODULES = (
    "backbones", "cli", "configuration_mtl", "heads", "losses", "metrics", "modeling_mtl", "nonfinite", "pipeline",
    "preprocessing", "safety", "scripts", "tasks", "version",
)


def _load_processor(model):
    from .processor_loading import load_processor

    return load_processor(model)


def _push_to_hub(model, *args, **kwargs):
    from .hub import push_to_hub

    return push_to_hub(model, *args, **kwargs)


# Model methods that live above the core (prediction, sharing): the core names them, the package provides them.
modeling_mtl.MODEL_SERVICES.update(predict=predict, load_processor=_load_processor, push_to_hub=_push_to_hub)

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
    "MultiTaskTrainer",
    "MultiTaskTrainingArguments",
    "GradualUnfreezingCallback",
    "apply_freeze_policy",
    "apply_lora",
    "cache_features",
    "TaskSpec",
    "TimmImageProcessor",
    "build_processor",
    "dataset_transform",
    "preprocess",
    "MultiTaskDataCollator",
    "mix_datasets",
    "task_specs_from_features",
    "validate_inputs",
    "validate_labels",
    "apply_pos_weight",
    "build_balancer",
    "compute_pos_weight",
    "count_present_labels",
    "multitask_loss",
    "last_complete_checkpoint",
    "PushToHubError",
    "UnsafeConfigError",
    "UnsafeWeightsError",
]
"""The public names: every name of ``_EAGER`` (but ``__version__``) and of ``_LAZY``."""

if TYPE_CHECKING:
    from .balancing import apply_pos_weight, build_balancer, compute_pos_weight
    from .checkpointing import last_complete_checkpoint
    from .data import MultiTaskDataCollator, mix_datasets, task_specs_from_features, validate_inputs, validate_labels
    from .hub import PushToHubError
    from .trainer import MultiTaskTrainer
    from .training_args import MultiTaskTrainingArguments
    from .transfer import GradualUnfreezingCallback, apply_freeze_policy, apply_lora, cache_features
else:
    sys.modules[__name__] = _LazyModule(
        __name__,
        globals()["__file__"],
        {**{name: [] for name in _SUBMODULES}, **_LAZY},
        module_spec=__spec__,
        extra_objects=_EAGER,
    )
