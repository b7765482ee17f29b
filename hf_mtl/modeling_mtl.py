"""The multi-task model: one shared backbone, one head per task."""

from __future__ import annotations

import logging
import os
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import timm
import torch
from torch import nn
from transformers import AutoModel, PreTrainedModel
from transformers.utils import ModelOutput

from .backbones import Backbone, backbone_config_dict, detect_backbone_library, load_timm_weights, read_state_dict
from .configuration_mtl import MultiTaskConfig
from .heads import TaskHead
from .losses import multitask_loss
from .safety import restore_default_modes, safe_loading_kwargs
from .tasks import TaskSpec

logger = logging.getLogger(__name__)

MODEL_SERVICES: dict[str, Callable[..., Any]] = {}
"""Model methods implemented above the core: ``predict`` (preprocessing and the pipeline), ``load_processor`` and
``push_to_hub`` (the sharing layer). The package ``__init__`` fills this, so the core imports nothing from those
layers and the sharing layer is imported on first use."""


def _service(name: str) -> Callable[..., Any]:
    service = MODEL_SERVICES.get(name)
    if service is None:
        raise RuntimeError(f"MultiTaskModel.{name} is provided by the hf_mtl package: `import hf_mtl` first")
    return service


@dataclass
class MultiTaskOutput(ModelOutput):
    """Output of [`MultiTaskModel`].

    Args:
        loss: weighted sum of the masked per-task losses (only when `labels` are given).
        logits: task name → raw outputs `(batch, n_outputs)` (multiclass: one per class; regression: values).
        task_losses: task name → that task's normalised loss, before its weight.
        pooled_features: the backbone's pooled features `(batch, num_features)`, shared by every head.
    """

    loss: torch.FloatTensor | None = None
    logits: dict[str, torch.Tensor] | None = None
    task_losses: dict[str, torch.Tensor] | None = None
    pooled_features: torch.FloatTensor | None = None


class MultiTaskPreTrainedModel(PreTrainedModel):
    config_class = MultiTaskConfig
    base_model_prefix = "mtl"
    main_input_name = "pixel_values"
    supports_gradient_checkpointing = False

    def _init_weights(self, module: nn.Module) -> None:
        """Only heads are ours to initialise; backbone modules keep their library's own init (or loaded weights)."""
        if isinstance(module, TaskHead):
            for layer in module.modules():
                if layer is not module and callable(getattr(layer, "reset_parameters", None)):
                    layer.reset_parameters()

    def should_save_on_this_rank(self, is_main_process: bool) -> bool:
        """``save_pretrained(is_main_process=...)`` decides, on a node's first process: the Trainer passes
        ``args.should_save``, true on every node's main process with ``save_on_each_node``. (transformers 5 also asks
        for global rank 0 once torch.distributed is up, which left the other nodes' model folders without weights.)
        A model sharded at load time keeps transformers' rule."""
        if self.is_distributed_loading_by_transformers:
            return super().should_save_on_this_rank(is_main_process)
        return is_main_process and int(os.environ.get("LOCAL_RANK", "0")) == 0

    def save_pretrained(self, save_directory: str | os.PathLike, *args: Any, **kwargs: Any) -> Any:
        """transformers' save, with the weights given the mode of the other files (safetensors writes them 0600)."""
        out = super().save_pretrained(save_directory, *args, **kwargs)
        if os.path.isdir(save_directory):
            restore_default_modes(save_directory)
        return out

    @staticmethod
    def _load_pretrained_model(model, state_dict, checkpoint_files, load_config, *args: Any, **kwargs: Any):
        """Load like transformers, then refuse a checkpoint whose heads do not match the config's tasks.

        transformers would print a generic size-mismatch report, or silently give a task random head weights; a task
        set or label count that differs from ``config.json`` is an error naming the task and both shapes instead.
        ``from_pretrained(..., ignore_mismatched_sizes=True)`` keeps transformers' behaviour (re-initialised heads).
        """
        info, offload_index = PreTrainedModel._load_pretrained_model(
            model, state_dict, checkpoint_files, load_config, *args, **kwargs
        )
        if not getattr(load_config, "ignore_mismatched_sizes", False):
            check_loaded_heads(model, info, getattr(load_config, "pretrained_model_name_or_path", None))
        return info, offload_index


def check_loaded_heads(model: nn.Module, info: Any, source: Any = None) -> None:
    """Raise when loaded weights and the config disagree on the task heads (``info``: transformers' loading report)."""
    source = f"checkpoint {os.fspath(source)!r}" if source else "the checkpoint"
    prefix = "heads."

    def task_of(key: str) -> str | None:
        key = key.removeprefix(f"{model.base_model_prefix}.")
        return key[len(prefix):].split(".")[0] if key.startswith(prefix) else None

    for key, saved, expected in sorted(info.mismatched_keys, key=lambda item: item[0]):
        task = task_of(key)
        where = f"task {task!r}: head tensor {key!r}" if task else f"backbone tensor {key!r}"
        raise ValueError(
            f"{source} does not match config.json: {where} has shape {tuple(saved)} in the weights but "
            f"{tuple(expected)} in the config (was the label list or head spec changed after saving?). Restore the "
            "saved config, or change tasks after loading with model.replace_task / add_task, or pass "
            "ignore_mismatched_sizes=True to re-initialise the mismatched tensors"
        )
    missing = sorted({task_of(k) for k in info.missing_keys} - {None})
    if missing:
        raise ValueError(
            f"{source} has no head weights for tasks {missing} that config.json lists; load the saved config "
            "unchanged and add new tasks afterwards with model.add_task (which starts their heads fresh on purpose)"
        )
    unexpected = sorted({task_of(k) for k in info.unexpected_keys} - {None})
    if unexpected:
        raise ValueError(
            f"{source} holds head weights for tasks {unexpected} that config.json does not list; load the saved "
            "config unchanged and drop tasks afterwards with model.remove_task"
        )


class MultiTaskModel(MultiTaskPreTrainedModel):
    """A shared backbone and one head per task; `forward` returns a [`MultiTaskOutput`]."""

    def __init__(self, config: MultiTaskConfig) -> None:
        super().__init__(config)
        if not config.tasks:
            raise ValueError("MultiTaskConfig has no tasks; give at least one task spec")
        if not config.backbone:
            raise ValueError("MultiTaskConfig has no backbone; give a timm model name or a transformers model id/path")
        self.backbone = Backbone(config)
        self.heads = nn.ModuleDict({spec.name: TaskHead(self.backbone.num_features, spec) for spec in config.task_specs})
        self._specs_cache: tuple[Any, list[TaskSpec]] | None = None
        self.main_input_name = self.backbone.input_names[0]
        self.post_init()

    @property
    def task_specs(self) -> list[TaskSpec]:
        """Validated task specs, cached while the config's task list is unchanged."""
        key = repr(self.config.tasks)
        if self._specs_cache is None or self._specs_cache[0] != key:
            self._specs_cache = (key, self.config.task_specs)
        return self._specs_cache[1]

    @classmethod
    def from_pretrained(cls, pretrained_model_name_or_path: str | os.PathLike | None, *model_args: Any, **kwargs: Any):
        """Load like transformers, but safetensors only: a folder or repo holding only pickled weights
        (``pytorch_model.bin``) is refused before anything is unpickled (see `hf_mtl.safety`)."""
        kwargs = safe_loading_kwargs(pretrained_model_name_or_path, kwargs)
        try:
            return super().from_pretrained(pretrained_model_name_or_path, *model_args, **kwargs)
        except Exception as err:
            if type(err).__name__ != "SafetensorError":
                raise
            # safetensors' error ("header too large") names no file: say which model's weights are unreadable
            raise OSError(
                f"the weights (model.safetensors) of {os.fspath(pretrained_model_name_or_path)!r} cannot be read: {err}. "
                "The file is corrupt or truncated; save or download it again"
            ) from err

    @classmethod
    def from_backbone(
        cls,
        backbone: str | os.PathLike,
        tasks: Sequence[TaskSpec | Mapping[str, Any]],
        *,
        library: str | None = None,
        weights: str | bool | None = True,
        pooling: str = "auto",
        backbone_kwargs: dict[str, Any] | None = None,
        backbone_license: str | None = None,
        **config_kwargs: Any,
    ) -> MultiTaskModel:
        """Put fresh task heads on a pretrained backbone.

        Args:
            backbone: a timm model name or a transformers model id / local folder.
            tasks: task specs (dicts or [`TaskSpec`]).
            library: `"timm"` or `"transformers"`; detected from the name when omitted.
            weights: `True` loads the backbone's pretrained weights the library's usual way (the Hub, or a local
                transformers folder), a path loads a timm weights file (safetensors or a PyTorch state dict),
                `False`/`None` keeps a random initialisation.
        """
        backbone = os.fspath(backbone)  # a local folder may come as a Path
        library = library or detect_backbone_library(backbone)
        specs = [TaskSpec.from_dict(dict(t) if isinstance(t, Mapping) else t) for t in tasks]
        backbone_config = backbone_config_dict(backbone) if library == "transformers" else None
        config = MultiTaskConfig(
            backbone=backbone,
            backbone_library=library,
            backbone_config=backbone_config,
            backbone_kwargs=backbone_kwargs or {},
            pooling=pooling,
            tasks=[s.to_dict() for s in specs],
            backbone_license=backbone_license,
            **config_kwargs,
        )
        model = cls(config)
        # post_init() ran in __init__ and re-initialises weights: pretrained weights are loaded after it.
        if weights:
            model.load_backbone_weights(weights)
        return model

    def load_backbone_weights(self, weights: str | bool = True) -> None:
        """Load pretrained backbone weights into this model (heads untouched)."""
        name = self.config.backbone
        if self.config.backbone_library == "timm":
            if weights is True:
                pretrained = timm.create_model(name, pretrained=True, num_classes=0, **self.config.backbone_kwargs)
                hub_id = (getattr(pretrained, "pretrained_cfg", None) or {}).get("hf_hub_id")
                state, source = pretrained.state_dict(), hub_id or f"timm pretrained {name}"
            else:
                state, source = read_state_dict(weights), str(weights)
            load_timm_weights(self.backbone.model, state, source=source)
        else:
            source = name if weights is True else str(weights)
            # safetensors only, and never a repo's own modeling code (a clear error instead of a prompt)
            pretrained = AutoModel.from_pretrained(source, trust_remote_code=False, **safe_loading_kwargs(source, {}))
            missing, unexpected = self.backbone.model.load_state_dict(pretrained.state_dict(), strict=False)
            if missing:
                raise ValueError(f"{source}: pretrained weights lack {len(missing)} backbone tensors, e.g. {missing[:3]}")
            if unexpected:
                logger.info("%s: ignored %d unexpected tensors", source, len(unexpected))
        logger.info("loaded pretrained backbone weights from %s", source)
        self.config.backbone_weights = source  # the card names a base model only when weights were loaded

    # -- editing tasks on a trained model -------------------------------------------------------------------------
    def _check_editable(self) -> None:
        if hasattr(self, "peft_config"):
            raise ValueError("edit tasks before applying LoRA or after merging it (hf_mtl.transfer.merge_lora)")

    def _new_head(self, spec: TaskSpec) -> TaskHead:
        head = TaskHead(self.backbone.num_features, spec)
        reference = next(self.parameters())
        return head.to(device=reference.device, dtype=reference.dtype)

    def add_task(self, spec: TaskSpec | Mapping[str, Any]) -> TaskSpec:
        """Add a task with a freshly initialised head (after the existing tasks); the backbone and other heads stay."""
        self._check_editable()
        spec = TaskSpec.from_dict(dict(spec) if isinstance(spec, Mapping) else spec)
        if spec.name in self.heads:
            raise ValueError(f"task {spec.name!r} already exists; use replace_task to give it a new head")
        self.config.set_tasks(self.task_specs + [spec])
        self.heads[spec.name] = self._new_head(spec)
        return spec

    def replace_task(self, spec: TaskSpec | Mapping[str, Any], old_name: str | None = None) -> TaskSpec:
        """Give task ``old_name`` (default: ``spec.name``) a new spec (e.g. a new label set) and a fresh head, in the
        same position."""
        self._check_editable()
        spec = TaskSpec.from_dict(dict(spec) if isinstance(spec, Mapping) else spec)
        old_name = old_name or spec.name
        names = self.config.task_names
        if old_name not in names:
            raise KeyError(f"no task named {old_name!r} to replace; the model's tasks are {names}")
        if spec.name != old_name and spec.name in names:
            raise ValueError(f"cannot rename {old_name!r} to {spec.name!r}: that task already exists")
        specs = [spec if s.name == old_name else s for s in self.task_specs]
        self.config.set_tasks(specs)
        heads = {s.name: (self._new_head(spec) if s.name == spec.name else self.heads[s.name]) for s in specs}
        self.heads = nn.ModuleDict(heads)
        return spec

    def remove_task(self, name: str) -> None:
        """Remove a task and its head; a model keeps at least one task."""
        self._check_editable()
        names = self.config.task_names
        if name not in names:
            raise KeyError(f"no task named {name!r} to remove; the model's tasks are {names}")
        if len(names) == 1:
            raise ValueError(f"cannot remove {name!r}: it is the model's only task")
        self.config.set_tasks([s for s in self.task_specs if s.name != name])
        del self.heads[name]

    def forward(
        self,
        pixel_values: torch.Tensor | None = None,
        input_ids: torch.Tensor | None = None,
        attention_mask: torch.Tensor | None = None,
        token_type_ids: torch.Tensor | None = None,
        input_values: torch.Tensor | None = None,
        features: torch.Tensor | None = None,
        labels: Mapping[str, torch.Tensor] | None = None,
        num_items_in_batch: Mapping[str, torch.Tensor | int] | None = None,
        return_dict: bool | None = None,
        **kwargs: Any,
    ) -> MultiTaskOutput | tuple:
        r"""
        features: precomputed pooled backbone features (the frozen-feature cache); skips the backbone.
        labels: task name → labels; missing labels are `-100` or NaN.
        num_items_in_batch: task name → present-label count of the effective batch (set by the Trainer).
        """
        if features is None:
            features = self.backbone(
                pixel_values=pixel_values,
                input_ids=input_ids,
                attention_mask=attention_mask,
                token_type_ids=token_type_ids,
                input_values=input_values,
            )
        logits = {name: head(features) for name, head in self.heads.items()}
        loss = task_losses = None
        if labels is not None:
            unknown = sorted(set(labels) - set(logits))
            if unknown:
                raise ValueError(f"labels for unknown tasks {unknown}; the model's tasks are {list(logits)}")
            loss, task_losses = multitask_loss(self.task_specs, logits, labels, num_items=num_items_in_batch)
        output = MultiTaskOutput(loss=loss, logits=logits, task_losses=task_losses, pooled_features=features)
        return output if return_dict is not False else output.to_tuple()

    def get_input_embeddings(self) -> nn.Module | None:
        """The transformers backbone's input embeddings, None for a timm backbone (accelerate's FSDP2 wrapping asks;
        transformers' default raises for a model that is not a plain transformers architecture)."""
        inner = self.backbone.model
        if self.backbone.library == "timm" or not hasattr(inner, "get_input_embeddings"):
            return None
        try:
            return inner.get_input_embeddings()
        except NotImplementedError:
            return None

    # -- sharing and prediction (hf_mtl.hub, hf_mtl.pipeline) ------------------------------------------------------
    def get_processor(self) -> Any:
        """The preprocessing saved with this model (at the revision it was loaded from), else the backbone's; cached."""
        processor = getattr(self, "_processor", None)
        if processor is None:
            processor = self._processor = _service("load_processor")(self)
        return processor

    def set_processor(self, processor: Any) -> None:
        """Use ``processor`` for `predict` and save it with the model on `push_to_hub`."""
        self._processor = processor

    def predict(
        self, inputs: Any, *, processor: Any = None, top_k: int | None = 1, batch_size: int = 32,
        threshold: float | None = None,
    ) -> list[dict[str, Any]] | dict[str, Any]:
        """Predict every task for raw inputs, in batches, in eval mode, without gradients.

        Args:
            inputs: one input or a list: PIL images, numpy arrays, image paths (image backbones) or texts.
            processor: preprocessing to use (default: [`get_processor`]).
            top_k: how many classes multiclass tasks return (None: every class).
            threshold: replaces every multilabel / binary task's thresholds for this call.

        Returns one dict per input (a dict for a single input): task name → `TaskType.decode` output, i.e. multilabel
        `{"labels", "scores"}` (labels over their thresholds), binary `{"label", "score"}`, multiclass
        `{"label", "score", "top_k"}`, regression `{"value"}`.
        """
        return _service("predict")(
            self, inputs, processor=processor, top_k=top_k, batch_size=batch_size, threshold=threshold
        )

    def push_to_hub(
        self,
        repo_id: str,
        commit_message: str | None = None,
        private: bool | None = None,
        token: str | bool | None = None,
        revision: str | None = None,
        create_pr: bool = False,
        **card_kwargs: Any,
    ):
        """Push config, safetensors weights, processor files and a generated model card (see `hf_mtl.hub`).

        `card_kwargs` (`metrics`, `per_label_metrics`, `datasets`, `training_args`, `processor`, ...) go to
        [`hf_mtl.hub.push_to_hub`]. Returns the `CommitInfo`.
        """
        return _service("push_to_hub")(
            self, repo_id, token=token, revision=revision, private=private, commit_message=commit_message,
            create_pr=create_pr, **card_kwargs,
        )
