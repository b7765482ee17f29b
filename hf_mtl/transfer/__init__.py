"""Transfer-learning controls: freeze policies, layer-wise LR decay, gradual unfreezing, LoRA, frozen-feature cache,
and adding / replacing / removing tasks on a trained model."""

from .blocks import backbone_blocks, find_layer_list, unwrap_multitask_model
from .editing import add_task, remove_task, replace_task
from .feature_cache import backbone_fingerprint, cache_features, compute_features, preprocessing_fingerprint
from .freezing import (
    FREEZE_POLICIES,
    FreezeChoice,
    apply_freeze_policy,
    choose_freeze_policy,
    count_trainable_blocks,
    freeze_norm_statistics,
    keep_frozen_modules_in_eval,
    remove_frozen_eval_hooks,
    set_trainable_blocks,
    trainable_tasks,
)
from .layer_decay import DEFAULT_LAYER_DECAY, default_layer_decay, layer_depths, no_weight_decay_names, param_groups
from .lora import apply_lora, load_lora, lora_target_modules, merge_lora
from .unfreezing import GradualUnfreezingCallback

__all__ = [
    "DEFAULT_LAYER_DECAY",
    "FREEZE_POLICIES",
    "FreezeChoice",
    "GradualUnfreezingCallback",
    "add_task",
    "apply_freeze_policy",
    "apply_lora",
    "backbone_blocks",
    "backbone_fingerprint",
    "cache_features",
    "default_layer_decay",
    "choose_freeze_policy",
    "compute_features",
    "count_trainable_blocks",
    "find_layer_list",
    "freeze_norm_statistics",
    "keep_frozen_modules_in_eval",
    "layer_depths",
    "load_lora",
    "lora_target_modules",
    "merge_lora",
    "no_weight_decay_names",
    "param_groups",
    "preprocessing_fingerprint",
    "remove_frozen_eval_hooks",
    "remove_task",
    "replace_task",
    "set_trainable_blocks",
    "trainable_tasks",
    "unwrap_multitask_model",
]
