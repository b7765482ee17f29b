"""Configuration of a multi-task model: the backbone spec plus the ordered task specs."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np
from transformers import PretrainedConfig

from .safety import check_config_safety
from .tasks import TaskSpec, check_unique_metric_keys
from .version import __version__

BACKBONE_LIBRARIES = ("timm", "transformers")
POOLING_MODES = ("auto", "cls", "mean", "pooler")
MODEL_INPUT_NAMES = (
    "pixel_values",
    "input_ids",
    "attention_mask",
    "token_type_ids",
    "input_values",
    "input_features",
    "features",
)
"""The one list of model inputs (``features``: cached backbone features): what `MultiTaskModel.forward` takes besides
labels, the row fields the collator keeps, the names no task may take."""


def _version() -> str:
    return __version__


class MultiTaskConfig(PretrainedConfig):
    r"""Configuration of [`MultiTaskModel`].

    Args:
        backbone (`str`): a timm model name (e.g. `"tf_efficientnet_lite0"`) or a transformers model id / local path.
        backbone_library (`str`): `"timm"` or `"transformers"`.
        backbone_config (`dict`, *optional*): the transformers backbone's own config (`AutoConfig.to_dict()`), kept so a
            saved model rebuilds offline without downloading anything.
        backbone_kwargs (`dict`, *optional*): extra keyword arguments for `timm.create_model` (e.g. `in_chans`).
        pooling (`str`): how a transformers backbone's hidden states become one vector: `"auto"` (pooled output of
            vision convnets, masked mean over tokens otherwise), `"cls"`, `"mean"` or `"pooler"`. timm backbones
            always use their own global pooling.
        tasks (`list[dict]`): the ordered task specs (see [`TaskSpec`]).
        backbone_license (`str`, *optional*): license of the pretrained backbone weights, for the model card.
        backbone_weights (`str`, *optional*): where the backbone's pretrained weights were loaded from (a Hub id such
            as `timm/resnet18.a1_in1k`, a local file or folder), written by `load_backbone_weights`; None when the
            backbone started from a random initialisation. Informational only (never read to load anything): the
            model card names a base model only when it is set.
        backbone_hub_id (`str`, *optional*): the Hub id of the model `backbone` is a local copy of (e.g. a model
            shipped in a pip package, resolved offline by a recipe), so the card names it instead of a local path.
    """

    model_type = "hf_mtl"

    backbone: str | None = None
    backbone_library: str = "timm"
    backbone_config: dict[str, Any] | None = None
    backbone_kwargs: dict[str, Any] | None = None
    pooling: str = "auto"
    tasks: list[dict[str, Any]] | None = None
    backbone_license: str | None = None
    backbone_weights: str | None = None
    backbone_hub_id: str | None = None
    hf_mtl_version: str | None = None

    def __post_init__(self, **kwargs: Any) -> None:
        if self.backbone_library not in BACKBONE_LIBRARIES:
            raise ValueError(
                f"backbone_library must be one of {BACKBONE_LIBRARIES}, got {self.backbone_library!r}"
            )
        if self.pooling not in POOLING_MODES:
            raise ValueError(f"pooling must be one of {POOLING_MODES}, got {self.pooling!r}")
        if self.backbone is not None and not isinstance(self.backbone, str):
            raise ValueError(f"backbone must be a timm model name or a transformers id/path, got {self.backbone!r}")
        if self.backbone_kwargs is not None and not isinstance(self.backbone_kwargs, dict):
            raise ValueError(
                f"backbone_kwargs must be a mapping of timm.create_model arguments, got {self.backbone_kwargs!r}"
            )
        if self.tasks is not None and not isinstance(self.tasks, (list, tuple)):
            raise ValueError(f"tasks must be a list of task specs (mappings: name, type, labels), got {self.tasks!r}")
        self.backbone_kwargs = dict(self.backbone_kwargs or {})
        self.set_tasks([TaskSpec.from_dict(task) for task in (self.tasks or [])])
        check_config_safety(self, kwargs)  # no code, file or URL named by a config is ever used (hf_mtl.safety)
        self._check_version()
        if self.hf_mtl_version is None:
            self.hf_mtl_version = _version()
        super().__post_init__(**kwargs)

    @classmethod
    def from_dict(cls, config_dict: dict[str, Any], **kwargs: Any) -> MultiTaskConfig:
        """A config.json of another model type (e.g. a plain backbone folder) is an error, not an empty model."""
        model_type = config_dict.get("model_type")
        if model_type not in (None, cls.model_type):
            raise ValueError(
                f"this config.json describes a {model_type!r} model, not an hf_mtl multi-task model (model_type "
                f"{cls.model_type!r}). To put task heads on that model use MultiTaskModel.from_backbone(<its folder or "
                "id>, tasks=[...]); to load a trained multi-task model, give the folder its save_pretrained wrote"
            )
        return super().from_dict(config_dict, **kwargs)

    def _check_version(self) -> None:
        """A config written by a newer major.minor hf_mtl may use fields this one does not know: say so up front."""
        if self.hf_mtl_version is None:
            return
        saved = tuple(int(x) for x in self.hf_mtl_version.split(".")[:2] if x.isdigit())
        ours = tuple(int(x) for x in _version().split(".")[:2] if x.isdigit())
        if saved > ours:
            raise ValueError(
                f"this config was written by hf_mtl {self.hf_mtl_version}, newer than the installed {_version()}; "
                "upgrade hf_mtl (`pip install -U hf-mtl`) to load it"
            )

    @property
    def task_specs(self) -> list[TaskSpec]:
        """The tasks as validated [`TaskSpec`] objects, in config order."""
        return [TaskSpec.from_dict(task) for task in self.tasks or []]

    @property
    def task_names(self) -> list[str]:
        return [task["name"] for task in self.tasks or []]

    def get_task(self, name: str) -> TaskSpec:
        for spec in self.task_specs:
            if spec.name == name:
                return spec
        raise KeyError(f"no task named {name!r}; the model's tasks are {self.task_names}")

    def set_tasks(self, specs: list[TaskSpec]) -> None:
        """Replace the task list (validated as on construction)."""
        names = [spec.name for spec in specs]
        duplicates = sorted({name for name in names if names.count(name) > 1})
        if duplicates:
            raise ValueError(f"duplicate task names {duplicates}: every task needs its own name")
        reserved = sorted(set(names) & {*MODEL_INPUT_NAMES, "labels"})
        if reserved:
            raise ValueError(
                f"task names {reserved} are reserved for model inputs / the label dict (a row field of that name would "
                "be read as both); rename the task and map its dataset column with `label_columns`"
            )
        check_unique_metric_keys(specs)
        self.tasks = [spec.to_dict() for spec in specs]

    def set_task_values(self, field: str, values: Mapping[str, Any]) -> None:
        """Write one per-output field (``thresholds``, ``pos_weight``) of several tasks: ``{task: [value per output]}``.

        The new specs are validated like any spec (length, range, whether the task type takes the field).
        """
        unknown = sorted(set(values) - set(self.task_names))
        if unknown:
            raise ValueError(f"{field} for unknown tasks {unknown}; the model's tasks are {self.task_names}")
        updated = []
        for spec in self.task_specs:
            if spec.name in values:
                flat = np.asarray(values[spec.name], dtype=np.float64).reshape(-1)
                spec = TaskSpec.from_dict({**spec.to_dict(), field: [float(v) for v in flat]})
            updated.append(spec)
        self.set_tasks(updated)
