"""hf_mtl: transfer learning and multi-task / multi-label learning on timm and transformers backbones."""

__version__ = "0.1.0"

from transformers import AutoConfig, AutoModel

from .balancing import apply_pos_weight, build_balancer, compute_pos_weight
from .checkpointing import last_complete_checkpoint
from .configuration_mtl import MultiTaskConfig
from .data import MultiTaskDataCollator, mix_datasets, task_specs_from_features, validate_inputs, validate_labels
from .hub import PushToHubError
from .losses import count_present_labels, multitask_loss
from .modeling_mtl import MultiTaskModel, MultiTaskOutput
from .pipeline import PIPELINE_TASK, MultiTaskClassificationPipeline, register_pipeline
from .preprocessing import TimmImageProcessor, build_processor, dataset_transform, preprocess, register_processors
from .safety import UnsafeConfigError, UnsafeWeightsError
from .tasks import MISSING, TASK_TYPES, TaskSpec
from .trainer import MultiTaskTrainer
from .training_args import MultiTaskTrainingArguments
from .transfer import GradualUnfreezingCallback, apply_freeze_policy, apply_lora, cache_features

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
