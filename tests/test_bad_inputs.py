"""The bad-input table: every kind of bad input hf_mtl is given gets ONE clear error, raised where the input enters.

Each case is a row of ``CASES``: an id, where the input enters (config, training arguments, data, loading, recipe,
Hub), a trigger that feeds the bad input through the real public API, the exception type the user gets, and substrings
the message must contain (the task / column / row / file / key at fault, and what to do). ``test_bad_input`` runs every
row; ``test_table_lists_every_case`` keeps the table below in step with ``CASES``.

Data errors surface before any work could be lost: when ``MultiTaskTrainer(...)`` is built (labels of the train and
eval datasets are encoded once, raw inputs of a ``dataset_transform`` dataset are checked: texts for None / empty,
images for a missing file or an unreadable header), so no step runs and no checkpoint is written. Only an image whose
header is valid but whose data is corrupt gets past that cheap check; it fails at the first batch that reads it, with
an error naming the file (case ``data-image-truncated``), unless ``validate_images="decode"`` decodes every image up
front (case ``data-image-truncated-decode``).

Unsafe inputs are in ``tests/test_security.py``, not here: a folder or Hub repo holding only pickled weights, a timm
weights file with a pickle payload, remote-code keys (``auto_map``) in a config, a backbone given as an import string,
``backbone_kwargs`` that would make timm read files, a head activation outside the registry.

| id | where | bad input | error |
|---|---|---|---|
| config-task-name-empty | config | task name `""` | ValueError |
| config-task-name-not-identifier | config | task name `"my task"` | ValueError |
| config-task-name-duplicate | config | two tasks named `tags` | ValueError |
| config-task-name-reserved | config | a task named `input_ids` | ValueError |
| config-task-type-unknown | config | type `"multi-label"` | ValueError |
| config-task-missing-type | config | a task spec without `type` | ValueError |
| config-task-unknown-key | config | `label:` instead of `labels:` | ValueError |
| config-task-not-a-mapping | config | `tasks: ["tags"]` | ValueError |
| config-tasks-not-a-list | config | `tasks: "tags"` | ValueError |
| config-labels-empty | config | `labels: []` | ValueError |
| config-labels-duplicate | config | `labels: [x, x]` | ValueError |
| config-labels-not-a-list | config | `labels: "abc"` | ValueError |
| config-num-outputs-mismatch | config | 3 labels, `num_outputs: 2` | ValueError |
| config-multiclass-one-class | config | multiclass with 1 class | ValueError |
| config-binary-three-labels | config | binary with 3 labels | ValueError |
| config-hidden-sizes-invalid | config | `hidden_sizes: "16"` | ValueError |
| config-dropout-out-of-range | config | `dropout: 1.0` | ValueError |
| config-dropout-not-a-number | config | `dropout: "0.1"` | ValueError |
| config-activation-unknown | config | `activation: "os.system"` | ValueError |
| config-loss-weight-negative | config | `loss_weight: -1` | ValueError |
| config-pos-weight-length | config | 2 pos_weight entries, 3 labels | ValueError |
| config-pos-weight-not-positive | config | `pos_weight: [1, 0, 1]` | ValueError |
| config-thresholds-length | config | 1 threshold, 3 labels | ValueError |
| config-thresholds-outside-0-1 | config | `thresholds: [1.5]` | ValueError |
| config-regression-thresholds | config | thresholds on a regression task | ValueError |
| config-backbone-library-unknown | config | `backbone_library: "keras"` | ValueError |
| config-pooling-unknown | config | `pooling: "max"` | ValueError |
| config-no-tasks | config | a model without tasks | ValueError |
| config-backbone-timm-typo | config | timm name with a typo | ValueError |
| config-backbone-folder-not-a-model | config | a folder without config.json | ValueError |
| config-backbone-kwargs-unknown | config | `backbone_kwargs: {in_chanz: 1}` | ValueError |
| training-freeze-policy-unknown | training | `freeze_policy="heads_only"` | ValueError |
| training-trainable-task-unknown | training | `trainable_tasks=["nope"]` | ValueError |
| training-task-balancing-unknown | training | `task_balancing="equal"` | ValueError |
| training-task-balancing-kwargs | training | a keyword the balancer does not take | ValueError |
| training-lora-targets-nothing | training | `lora_target_modules` matching no layer | ValueError |
| training-metric-for-best-model-typo | training | `metric_for_best_model="eval_tags_f1"` (the model reports `eval_tags_macro_f1`) | ValueError |
| data-label-column-missing | data | train rows without the `score` column | ValueError |
| data-label-columns-unknown-task | data | `label_columns={"knd": ...}` (a task name typo) | ValueError |
| data-multilabel-wrong-length | data | 2 values for 3 labels | ValueError |
| data-multilabel-value-not-binary | data | multilabel value `2` | ValueError |
| data-multilabel-unknown-name | data | label name `"q"` | ValueError |
| data-multiclass-unknown-class | data | class `"w"` | ValueError |
| data-multiclass-id-out-of-range | data | class id `7` of 3 | ValueError |
| data-binary-unknown-name | data | binary label `"maybe"` | ValueError |
| data-regression-not-a-number | data | regression value `"high"` | ValueError |
| data-regression-infinite | data | regression value `inf` | ValueError |
| data-regression-missing-marker | data | regression value `-100` (the in-tensor missing marker) | ValueError |
| data-regression-wrong-length | data | 3 values for a 2-output regression | ValueError |
| data-eval-bad-label | data | a bad label in the eval dataset | ValueError |
| data-train-empty | data | a train dataset with 0 rows | ValueError |
| data-eval-empty | data | an eval dataset with 0 rows | ValueError |
| data-input-column-missing | data | `dataset_transform` of a column the data lacks | ValueError |
| data-text-empty | data | text `"  "` | ValueError |
| data-text-none | data | text None | ValueError |
| data-text-not-a-string | data | text `42` | ValueError |
| data-image-file-missing | data | image path that does not exist | ValueError |
| data-image-corrupt-file | data | an image file holding garbage | ValueError |
| data-image-corrupt-bytes | data | a datasets Image() with garbage bytes | ValueError |
| data-image-truncated | data | a PNG cut in half (valid header) | ValueError |
| data-image-truncated-decode | data | the same, with `validate_images="decode"`: found before step 1 | ValueError |
| data-no-model-input | data | rows without pixel_values / input_ids | ValueError |
| data-ragged-input | data | pixel_values of different sizes | ValueError |
| data-known-label-column-missing | data | `known_label_columns` names no column | ValueError |
| data-feature-type-unguessable | data | task from a string feature | ValueError |
| data-labels-for-unknown-task | data | forward with labels of task `nope` | ValueError |
| load-head-label-count-mismatch | loading | config.json with 4 labels, weights with 3 | ValueError |
| load-head-missing | loading | config.json task without head weights | ValueError |
| load-head-extra | loading | weights of a task config.json lacks | ValueError |
| load-no-weights | loading | a folder with config.json only | UnsafeWeightsError (OSError) |
| load-not-a-multitask-model | loading | a plain BERT folder given as a multi-task model | ValueError |
| load-config-newer-version | loading | config.json from hf_mtl 99.0 | ValueError |
| recipe-unknown-key | recipe | `learning_rat:` | RecipeError |
| recipe-wrong-type | recipe | `max_steps: ten` | RecipeError |
| recipe-file-missing | recipe | a recipe path that does not exist | RecipeError |
| recipe-invalid-yaml | recipe | a YAML syntax error | RecipeError |
| recipe-bad-task | recipe | `tasks[0]` of unknown type | RecipeError |
| recipe-train-file-missing | recipe | `train_file` that does not exist | RecipeError |
| recipe-backbone-unresolvable | recipe | `backbone` typo | RecipeError |
| recipe-eval-split-empty | recipe | `max_eval_samples: 0` (an empty eval split) | RecipeError |
| recipe-empty-text | recipe | an empty text in the data | RecipeError |
| recipe-corrupt-image | recipe | a corrupt image file in the data | RecipeError |
| hub-repo-not-found | Hub | from_pretrained of a repo that does not exist | OSError |
| hub-revision-not-found | Hub | from_pretrained at a revision that does not exist | OSError |
| hub-private-repo-without-token | Hub | from_pretrained of a private repo without a token | OSError |
| hub-push-no-permission | Hub | push with a read-only token | PushToHubError (RuntimeError) |
| hub-push-invalid-token | Hub | push with an unknown token | PushToHubError (RuntimeError) |
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import datasets
import numpy as np
import pytest
import torch
from PIL import Image

from hf_mtl import (
    MultiTaskConfig,
    MultiTaskDataCollator,
    MultiTaskModel,
    MultiTaskTrainer,
    MultiTaskTrainingArguments,
    TaskSpec,
    TimmImageProcessor,
    dataset_transform,
    task_specs_from_features,
    validate_inputs,
    validate_labels,
)
from hf_mtl.metrics import build_compute_metrics
from hf_mtl.scripts.arguments import DataArguments, RecipeError, parse_recipe
from hf_mtl.scripts.recipe_data import check_inputs, check_labels
from tests.recipe_helpers import tiny_recipe, write_image_dataset, write_recipe
from tests.test_pipeline import tiny_tokenizer
from tests.tiny_models import (
    IMAGE_SIZE,
    MIXED_TASKS,
    TIMM_BACKBONE,
    bert_model,
    images,
    synthetic_rows,
    timm_model,
    tiny_bert_config,
)


@dataclass
class Context:
    """What a trigger may use: a fresh temporary folder and, for Hub cases, the loopback Hub."""

    tmp: Path
    hub: Any = None


@dataclass(frozen=True)
class BadInput:
    id: str
    where: str
    trigger: Callable[[Context], Any]
    exc_type: type[BaseException]
    must_mention: tuple[str, ...]
    needs_hub: bool = False

    def __str__(self) -> str:
        return self.id


# ------------------------------------------------------------------------------------------------------------ helpers
def spec(**overrides: Any) -> TaskSpec:
    return TaskSpec(**{"name": "tags", "type": "multilabel", "labels": ["a", "b", "c"], **overrides})


def config(**overrides: Any) -> MultiTaskConfig:
    defaults = {"backbone": TIMM_BACKBONE, "backbone_library": "timm", "tasks": MIXED_TASKS}
    return MultiTaskConfig(**{**defaults, **overrides})


def args(ctx: Context, **overrides: Any) -> MultiTaskTrainingArguments:
    defaults = dict(output_dir=str(ctx.tmp / "out"), report_to=[], disable_tqdm=True, use_cpu=True, max_steps=2,
                    per_device_train_batch_size=2, save_strategy="steps", save_steps=1, logging_steps=1)
    return MultiTaskTrainingArguments(**{**defaults, **overrides})


def trainer_with(ctx: Context, **training_args: Any) -> MultiTaskTrainer:
    return MultiTaskTrainer(model=timm_model(), args=args(ctx, **training_args), train_dataset=synthetic_rows(4))


def rows_with(index: int = 3, **values: Any) -> list[dict[str, Any]]:
    """Six valid synthetic rows with ``values`` put into row ``index``."""
    rows = synthetic_rows(6, seed=1, missing=0.0)
    rows[index].update(values)
    return rows


def train_on(ctx: Context, train: Any, eval_dataset: Any = None, model: Any = None, **trainer_kwargs: Any) -> None:
    """Build the trainer and train: the error must come before the first step, with no checkpoint written."""
    trainer = None
    try:
        trainer = MultiTaskTrainer(model=model or timm_model(), args=args(ctx), train_dataset=train,
                                   eval_dataset=eval_dataset, **trainer_kwargs)
        trainer.train()
    finally:
        assert trainer is None or trainer.state.global_step == 0, "the bad input was found only after training steps"
        assert not list((ctx.tmp / "out").glob("checkpoint-*")), "a checkpoint was written before the error"


def png_bytes(size: int = 16) -> bytes:
    import io

    buffer = io.BytesIO()
    Image.fromarray(np.full((size, size, 3), 127, dtype=np.uint8)).save(buffer, format="PNG")
    return buffer.getvalue()


def image_rows(ctx: Context, broken: bytes | None, exists: bool = True) -> datasets.Dataset:
    """Four image-path rows with labels; row 2's file holds ``broken`` (or is missing), behind timm preprocessing."""
    folder = ctx.tmp / "images"
    folder.mkdir(exist_ok=True)
    paths = []
    for i in range(4):
        path = folder / f"{i}.png"
        if i != 2 or exists:
            path.write_bytes(broken if i == 2 and broken is not None else png_bytes())
        paths.append(str(path))
    table = [{"image": path, **row} for path, row in zip(paths, label_rows(4))]
    processor = TimmImageProcessor(input_size=(3, IMAGE_SIZE, IMAGE_SIZE), crop_pct=1.0)
    return datasets.Dataset.from_list(table).with_transform(dataset_transform(processor, "image"))


KIND = MIXED_TASKS[1]


def image_bytes_rows() -> datasets.Dataset:
    """A datasets ``Image()`` column (stored bytes, as from the Hub or imagefolder) whose row 1 holds garbage."""
    table = [{"image": {"bytes": png_bytes() if i != 1 else b"garbage", "path": f"{i}.png"}, "kind": "x"}
             for i in range(3)]
    features = datasets.Features({"image": datasets.Image(), "kind": datasets.Value("string")})
    processor = TimmImageProcessor(input_size=(3, IMAGE_SIZE, IMAGE_SIZE), crop_pct=1.0)
    return datasets.Dataset.from_list(table, features=features).with_transform(dataset_transform(processor, "image"))


def label_rows(n: int) -> list[dict[str, Any]]:
    """Label columns only (no inputs): the shape of a raw dataset before preprocessing."""
    return [{k: v for k, v in row.items() if k != "pixel_values"} for row in synthetic_rows(n, seed=4, missing=0.0)]


def text_rows(texts: list[Any]) -> datasets.Dataset:
    table = [{"text": text, **row} for text, row in zip(texts, label_rows(len(texts)))]
    return datasets.Dataset.from_list(table).with_transform(dataset_transform(tiny_tokenizer(), "text"))


def saved_model_with(ctx: Context, edit: Callable[[dict], None]) -> Path:
    """A saved tiny model whose config.json is then edited (as a hand-edited or mismatched checkpoint would be)."""
    folder = ctx.tmp / "model"
    timm_model().save_pretrained(folder)
    path = folder / "config.json"
    data = json.loads(path.read_text())
    edit(data)
    path.write_text(json.dumps(data))
    return folder


def saved_config_only(ctx: Context) -> Path:
    timm_model().config.save_pretrained(ctx.tmp / "cfg")
    return ctx.tmp / "cfg"


def saved_bert(ctx: Context) -> Path:
    from transformers import BertModel

    BertModel(tiny_bert_config()).save_pretrained(ctx.tmp / "bert")
    return ctx.tmp / "bert"


def set_labels(data: dict, labels: list[str]) -> None:
    data["tasks"][0]["labels"] = labels


def recipe_run(ctx: Context, **overrides: Any) -> None:
    from hf_mtl.scripts.train import main

    data = write_image_dataset(ctx.tmp / "data", 8)
    (ctx.tmp / "data" / "images" / "5.png").write_bytes(b"this is not a png")
    main([str(write_recipe(ctx.tmp / "recipe.yaml", tiny_recipe(data, ctx.tmp / "out", **overrides)))])


def pushed(ctx: Context, private: bool = False) -> str:
    repo = ctx.hub.repo_id("bad-inputs")
    timm_model().push_to_hub(repo, token=ctx.hub.token, private=private)
    return repo


# -------------------------------------------------------------------------------------------------------------- table
CASES: list[BadInput] = [
    # -- config: task specs, head specs, backbone
    BadInput("config-task-name-empty", "config", lambda c: spec(name=""), ValueError, ("task ''", "identifier")),
    BadInput("config-task-name-not-identifier", "config", lambda c: spec(name="my task"), ValueError,
             ("'my task'", "identifier")),
    BadInput("config-task-name-duplicate", "config", lambda c: config(tasks=[MIXED_TASKS[0], MIXED_TASKS[0]]),
             ValueError, ("duplicate task names", "'tags'")),
    BadInput("config-task-name-reserved", "config",
             lambda c: config(tasks=[{"name": "input_ids", "type": "binary"}]), ValueError,
             ("['input_ids']", "reserved", "label_columns")),
    BadInput("config-task-type-unknown", "config", lambda c: spec(type="multi-label"), ValueError,
             ("task 'tags'", "'multi-label'", "multilabel", "regression")),
    BadInput("config-task-missing-type", "config", lambda c: config(tasks=[{"name": "tags", "labels": ["a"]}]),
             ValueError, ("task 'tags'", "missing required keys ['type']")),
    BadInput("config-task-unknown-key", "config", lambda c: TaskSpec.from_dict({"name": "tags", "type": "binary",
                                                                                "label": ["x"]}),
             ValueError, ("task 'tags'", "unknown keys ['label']", "'labels'")),
    BadInput("config-task-not-a-mapping", "config", lambda c: config(tasks=["tags"]), ValueError,
             ("task spec must be a mapping", "'tags'")),
    BadInput("config-tasks-not-a-list", "config", lambda c: config(tasks="tags"), ValueError,
             ("tasks must be a list", "'tags'")),
    BadInput("config-labels-empty", "config", lambda c: spec(labels=[]), ValueError,
             ("task 'tags'", "`labels` is empty")),
    BadInput("config-labels-duplicate", "config", lambda c: spec(labels=["x", "x"]), ValueError,
             ("task 'tags'", "duplicate label names ['x']")),
    BadInput("config-labels-not-a-list", "config", lambda c: spec(labels="abc"), ValueError,
             ("task 'tags'", "list of label names", "'abc'")),
    BadInput("config-num-outputs-mismatch", "config", lambda c: spec(num_outputs=2), ValueError,
             ("task 'tags'", "num_outputs=2", "3 labels")),
    BadInput("config-multiclass-one-class", "config", lambda c: spec(type="multiclass", labels=["x"]), ValueError,
             ("task 'tags'", "at least 2 classes")),
    BadInput("config-binary-three-labels", "config", lambda c: spec(type="binary"), ValueError,
             ("task 'tags'", "binary task has one output", "[negative, positive]")),
    BadInput("config-hidden-sizes-invalid", "config", lambda c: spec(hidden_sizes="16"), ValueError,
             ("task 'tags'", "hidden_sizes", "positive integers", "'16'")),
    BadInput("config-dropout-out-of-range", "config", lambda c: spec(dropout=1.0), ValueError,
             ("task 'tags'", "dropout", "[0, 1)")),
    BadInput("config-dropout-not-a-number", "config", lambda c: spec(dropout="0.1"), ValueError,
             ("task 'tags'", "dropout must be a number", "'0.1'")),
    BadInput("config-activation-unknown", "config", lambda c: spec(activation="os.system"), ValueError,
             ("task 'tags'", "'os.system'", "gelu", "relu")),
    BadInput("config-loss-weight-negative", "config", lambda c: spec(loss_weight=-1), ValueError,
             ("task 'tags'", "loss_weight", ">= 0", "-1")),
    BadInput("config-pos-weight-length", "config", lambda c: spec(pos_weight=[1.0, 2.0]), ValueError,
             ("task 'tags'", "pos_weight has 2 entries", "3 outputs")),
    BadInput("config-pos-weight-not-positive", "config", lambda c: spec(pos_weight=[1, 0, 1]), ValueError,
             ("task 'tags'", "pos_weight", "> 0")),
    BadInput("config-thresholds-length", "config", lambda c: spec(thresholds=[0.5]), ValueError,
             ("task 'tags'", "thresholds has 1 entries", "3 outputs")),
    BadInput("config-thresholds-outside-0-1", "config", lambda c: spec(type="binary", labels=None, thresholds=[1.5]),
             ValueError, ("task 'tags'", "thresholds", "[0, 1]", "1.5")),
    BadInput("config-regression-thresholds", "config", lambda c: spec(type="regression", labels=None,
                                                                      thresholds=[0.5]),
             ValueError, ("task 'tags'", "do not apply to regression")),
    BadInput("config-backbone-library-unknown", "config", lambda c: config(backbone_library="keras"), ValueError,
             ("backbone_library", "'keras'", "timm", "transformers")),
    BadInput("config-pooling-unknown", "config", lambda c: config(pooling="max"), ValueError,
             ("pooling", "'max'", "mean")),
    BadInput("config-no-tasks", "config", lambda c: MultiTaskModel(config(tasks=[])), ValueError,
             ("no tasks", "at least one task")),
    BadInput("config-backbone-timm-typo", "config", lambda c: MultiTaskModel(config(backbone="test_efficientnt")),
             ValueError, ("'test_efficientnt'", "not a timm model name", "did you mean", "'test_efficientnet'")),
    BadInput("config-backbone-folder-not-a-model", "config",
             lambda c: MultiTaskModel.from_backbone(c.tmp, MIXED_TASKS, library="transformers"), ValueError,
             ("backbone folder", "no config.json", "save_pretrained")),
    BadInput("config-backbone-kwargs-unknown", "config",
             lambda c: MultiTaskModel(config(backbone_kwargs={"in_chanz": 1})), ValueError,
             ("backbone_kwargs", "in_chanz", "'test_efficientnet'")),
    # -- training arguments (checked when the trainer is built)
    BadInput("training-freeze-policy-unknown", "training", lambda c: trainer_with(c, freeze_policy="heads_only"),
             ValueError, ("freeze_policy", "'heads_only'", "'heads'")),
    BadInput("training-trainable-task-unknown", "training",
             lambda c: trainer_with(c, freeze_policy="heads", trainable_tasks=["nope"]), ValueError,
             ("['nope']", "not tasks of the model", "'tags'")),
    BadInput("training-task-balancing-unknown", "training", lambda c: trainer_with(c, task_balancing="equal"),
             ValueError, ("task_balancing 'equal'", "uncertainty")),
    BadInput("training-task-balancing-kwargs", "training",
             lambda c: trainer_with(c, task_balancing="uncertainty", task_balancing_kwargs={"temp": 1}), ValueError,
             ("task_balancing 'uncertainty'", "task_balancing_kwargs", "'temp'")),
    BadInput("training-lora-targets-nothing", "training",
             lambda c: trainer_with(c, lora_r=4, lora_target_modules=["attn_typo"]), ValueError,
             ("target_modules=['attn_typo']", "no backbone layer")),
    BadInput("training-metric-for-best-model-typo", "training",
             lambda c: MultiTaskTrainer(
                 model=(model := timm_model()), train_dataset=synthetic_rows(4), eval_dataset=synthetic_rows(4),
                 compute_metrics=build_compute_metrics(model),
                 args=args(c, eval_strategy="steps", eval_steps=1, metric_for_best_model="eval_tags_f1")),
             ValueError, ("metric_for_best_model='eval_tags_f1'", "did you mean", "'eval_tags_macro_f1'")),
    # -- data: labels, empty splits, raw inputs (all found when the trainer is built, before any step)
    BadInput("data-label-column-missing", "data",
             lambda c: train_on(c, [{k: v for k, v in r.items() if k != "score"} for r in synthetic_rows(4)]),
             ValueError, ("train_dataset", "task 'score'", "no label column 'score'", "label_columns")),
    BadInput("data-label-columns-unknown-task", "data",
             lambda c: train_on(c, synthetic_rows(4), data_collator=MultiTaskDataCollator(
                 timm_model().task_specs, label_columns={"knd": "category"})),
             ValueError, ("train_dataset", "label_columns", "['knd']", "'kind'")),
    BadInput("data-multilabel-wrong-length", "data", lambda c: train_on(c, rows_with(tags=[1, 0])), ValueError,
             ("task 'tags'", "column 'tags', row 3", "2 entries", "3 labels")),
    BadInput("data-multilabel-value-not-binary", "data", lambda c: train_on(c, rows_with(tags=[1, 2, 0])),
             ValueError, ("task 'tags'", "row 3", "value 2", "0, 1, True, False or None")),
    BadInput("data-multilabel-unknown-name", "data", lambda c: train_on(c, rows_with(tags=["a", "q"])), ValueError,
             ("task 'tags'", "row 3", "unknown label names ['q']", "known labels")),
    BadInput("data-multiclass-unknown-class", "data", lambda c: train_on(c, rows_with(kind="w")), ValueError,
             ("task 'kind'", "column 'kind', row 3", "unknown class 'w'", "known classes")),
    BadInput("data-multiclass-id-out-of-range", "data", lambda c: train_on(c, rows_with(kind=7)), ValueError,
             ("task 'kind'", "row 3", "class 7", "[0, 3)")),
    BadInput("data-binary-unknown-name", "data", lambda c: train_on(c, rows_with(flag="maybe")), ValueError,
             ("task 'flag'", "row 3", "unknown label name 'maybe'", "['no', 'yes']")),
    BadInput("data-regression-not-a-number", "data", lambda c: train_on(c, rows_with(score="high")), ValueError,
             ("task 'score'", "row 3", "'high'", "finite number")),
    BadInput("data-regression-infinite", "data", lambda c: train_on(c, rows_with(score=math.inf)), ValueError,
             ("task 'score'", "row 3", "inf", "finite number")),
    BadInput("data-regression-missing-marker", "data", lambda c: train_on(c, rows_with(score=-100.0)), ValueError,
             ("task 'score'", "row 3", "-100", "missing-label marker", "None/NaN")),
    BadInput("data-regression-wrong-length", "data",
             lambda c: validate_labels([{"size": [1.0, 2.0, 3.0]}], [TaskSpec("size", "regression", num_outputs=2)]),
             ValueError, ("task 'size'", "column 'size', row 0", "expected 2 regression values, got 3")),
    BadInput("data-eval-bad-label", "data",
             lambda c: train_on(c, synthetic_rows(4), eval_dataset=rows_with(index=1, kind="w")), ValueError,
             ("eval_dataset", "task 'kind'", "row 1", "unknown class 'w'")),
    BadInput("data-train-empty", "data",
             lambda c: train_on(c, datasets.Dataset.from_list(label_rows(2)).select([])), ValueError,
             ("train_dataset", "empty (0 rows)")),
    BadInput("data-eval-empty", "data", lambda c: train_on(c, synthetic_rows(4), eval_dataset=[]), ValueError,
             ("eval_dataset", "empty (0 rows)")),
    BadInput("data-input-column-missing", "data",
             lambda c: train_on(c, datasets.Dataset.from_list(label_rows(4)).with_transform(
                 dataset_transform(TimmImageProcessor(input_size=(3, IMAGE_SIZE, IMAGE_SIZE)), "img"))),
             ValueError, ("train_dataset", "no input column 'img'", "'tags'")),
    BadInput("data-text-empty", "data", lambda c: train_on(c, text_rows(["the cat", "a dog", "  ", "red mat"]),
                                                           model=bert_model(), processing_class=tiny_tokenizer()),
             ValueError, ("train_dataset", "column 'text', row 2", "empty", "allow_empty_text=True")),
    BadInput("data-text-none", "data", lambda c: train_on(c, text_rows(["the cat", None, "a dog"]),
                                                          model=bert_model(), processing_class=tiny_tokenizer()),
             ValueError, ("train_dataset", "column 'text', row 1", "missing (None)")),
    BadInput("data-text-not-a-string", "data",
             lambda c: validate_inputs([{"text": "the cat"}, {"text": "a dog"}, {"text": 42}], "text", "text"),
             ValueError, ("column 'text', row 2", "expected a text (str), got int 42")),
    BadInput("data-image-file-missing", "data", lambda c: train_on(c, image_rows(c, None, exists=False)), ValueError,
             ("train_dataset", "column 'image', row 2", "2.png", "does not exist")),
    BadInput("data-image-corrupt-file", "data", lambda c: train_on(c, image_rows(c, b"not an image")), ValueError,
             ("train_dataset", "column 'image', row 2", "2.png", "not an image")),
    BadInput("data-image-corrupt-bytes", "data", lambda c: train_on(c, image_bytes_rows(), model=timm_model([KIND])),
             ValueError, ("train_dataset", "column 'image', row 1", "image bytes of '1.png'", "not an image")),
    BadInput("data-image-truncated", "data", lambda c: train_on(c, image_rows(c, png_bytes(64)[:80])), ValueError,
             ("2.png", "cannot be decoded", "replace it or drop the row")),
    BadInput("data-image-truncated-decode", "data",
             lambda c: MultiTaskTrainer(model=timm_model(), args=args(c, validate_images="decode"),
                                        train_dataset=image_rows(c, png_bytes(64)[:80])),
             ValueError, ("train_dataset", "column 'image', row 2", "2.png", "cannot be decoded past its header",
                          "replace it or drop the row")),
    BadInput("data-no-model-input", "data",
             lambda c: MultiTaskDataCollator(timm_model().task_specs)([{"tags": [1, 0, 1], "image": "x.png"}]),
             ValueError, ("no model input", "pixel_values", "['image', 'tags']", "Preprocess")),
    BadInput("data-ragged-input", "data",
             lambda c: MultiTaskDataCollator(timm_model().task_specs)([{"pixel_values": [1.0, 2.0]},
                                                                       {"pixel_values": [1.0]}]),
             ValueError, ("'pixel_values'", "cannot be batched")),
    BadInput("data-known-label-column-missing", "data",
             lambda c: validate_labels(synthetic_rows(2), timm_model().task_specs,
                                       known_label_columns={"tags": "tags_known"}),
             ValueError, ("known-label columns ['tags_known']", "not in the dataset")),
    BadInput("data-feature-type-unguessable", "data",
             lambda c: task_specs_from_features(datasets.Features({"caption": datasets.Value("string")})), ValueError,
             ("column 'caption'", "cannot guess a task type", "types=")),
    BadInput("data-labels-for-unknown-task", "data",
             lambda c: timm_model()(pixel_values=images(2), labels={"nope": torch.zeros(2)}), ValueError,
             ("unknown tasks ['nope']", "'tags'")),
    # -- loading a saved model
    BadInput("load-head-label-count-mismatch", "loading",
             lambda c: MultiTaskModel.from_pretrained(saved_model_with(c, lambda d: set_labels(d, list("abcd")))),
             ValueError, ("task 'tags'", "(3,)", "(4,)", "config.json", "ignore_mismatched_sizes")),
    BadInput("load-head-missing", "loading",
             lambda c: MultiTaskModel.from_pretrained(saved_model_with(
                 c, lambda d: d["tasks"].append({"name": "extra", "type": "binary"}))),
             ValueError, ("no head weights for tasks ['extra']", "add_task")),
    BadInput("load-head-extra", "loading",
             lambda c: MultiTaskModel.from_pretrained(saved_model_with(c, lambda d: d["tasks"].pop())),
             ValueError, ("head weights for tasks ['flag']", "does not list", "remove_task")),
    BadInput("load-no-weights", "loading",
             lambda c: MultiTaskModel.from_pretrained(saved_config_only(c)),
             OSError, ("model.safetensors", "cfg")),
    BadInput("load-not-a-multitask-model", "loading", lambda c: MultiTaskModel.from_pretrained(saved_bert(c)),
             ValueError, ("describes a 'bert' model", "not an hf_mtl multi-task model", "from_backbone")),
    BadInput("load-config-newer-version", "loading",
             lambda c: MultiTaskModel.from_pretrained(saved_model_with(c, lambda d: d.update(hf_mtl_version="99.0"))),
             ValueError, ("hf_mtl 99.0", "newer than the installed", "pip install -U hf-mtl")),
    # -- recipes (YAML + overrides), checked before anything is loaded
    BadInput("recipe-unknown-key", "recipe", lambda c: parse_recipe({"learning_rat": 1e-3}), RecipeError,
             ("unknown key 'learning_rat'", "did you mean", "'learning_rate'")),
    BadInput("recipe-wrong-type", "recipe", lambda c: parse_recipe({"max_steps": "ten"}), RecipeError,
             ("key 'max_steps'", "int", "'ten'")),
    BadInput("recipe-file-missing", "recipe", lambda c: parse_recipe(c.tmp / "nope.yaml"), RecipeError,
             ("nope.yaml", "does not exist")),
    BadInput("recipe-invalid-yaml", "recipe",
             lambda c: ((c.tmp / "r.yaml").write_text("tasks: [\n"), parse_recipe(c.tmp / "r.yaml")), RecipeError,
             ("r.yaml", "not valid YAML")),
    BadInput("recipe-bad-task", "recipe",
             lambda c: parse_recipe({"backbone": TIMM_BACKBONE, "weights": "none", "dataset": "fashion_grid",
                                     "tasks": [{"name": "tags", "type": "multi-label"}]}),
             RecipeError, ("`tasks[0]`", "task 'tags'", "'multi-label'")),
    BadInput("recipe-train-file-missing", "recipe",
             lambda c: parse_recipe({"backbone": TIMM_BACKBONE, "weights": "none", "tasks": MIXED_TASKS,
                                     "dataset": "json", "train_file": str(c.tmp / "missing.jsonl")}),
             RecipeError, ("`train_file`", "missing.jsonl", "does not exist")),
    BadInput("recipe-backbone-unresolvable", "recipe",
             lambda c: parse_recipe({"backbone": "test_efficientnt", "backbone_library": "timm", "tasks": MIXED_TASKS,
                                     "dataset": "fashion_grid"}),
             RecipeError, ("`backbone` 'test_efficientnt'", "not a timm model name", "test_efficientnet")),
    BadInput("recipe-eval-split-empty", "recipe",
             lambda c: check_labels(datasets.Dataset.from_list(label_rows(2)).select([]), timm_model().task_specs,
                                    DataArguments(dataset="json"), "eval"),
             RecipeError, ("eval data", "empty (0 rows)", "max_eval_samples")),
    BadInput("recipe-empty-text", "recipe",
             lambda c: check_inputs(datasets.Dataset.from_dict({"text": ["the cat", ""]}), "text", "text",
                                    DataArguments(dataset="json"), "train"),
             RecipeError, ("train data", "column 'text', row 1", "empty", "allow_empty_text: true")),
    BadInput("recipe-corrupt-image", "recipe", lambda c: recipe_run(c), RecipeError,
             ("data", "column 'image'", "5.png", "not an image")),
    # -- the Hub (loopback server)
    BadInput("hub-repo-not-found", "Hub", lambda c: MultiTaskModel.from_pretrained(c.hub.repo_id("nope")), OSError,
             ("hf-mtl-tester/nope", "not a valid model identifier", "token"), needs_hub=True),
    BadInput("hub-revision-not-found", "Hub", lambda c: MultiTaskModel.from_pretrained(pushed(c), revision="v9"),
             OSError, ("v9", "not a valid git identifier", "available revisions"), needs_hub=True),
    BadInput("hub-private-repo-without-token", "Hub",
             lambda c: MultiTaskModel.from_pretrained(pushed(c, private=True), token=False), OSError,
             ("hf-mtl-tester/bad-inputs", "private repository", "token"), needs_hub=True),
    BadInput("hub-push-no-permission", "Hub",
             lambda c: timm_model().push_to_hub(c.hub.repo_id("other"), token=c.hub.read_token),
             RuntimeError, ("hf-mtl-tester/other", "403", "rights", "token", "Nothing is lost"), needs_hub=True),
    BadInput("hub-push-invalid-token", "Hub", lambda c: timm_model().push_to_hub(c.hub.repo_id("x"), token="hf_nope"),
             RuntimeError, ("hf-mtl-tester/x", "401", "Invalid credentials"), needs_hub=True),
]


def run_case(case: BadInput, tmp_path: Path, request: pytest.FixtureRequest) -> None:
    """Trigger one case; assert its exception type and that the message names what it must (shared by every table)."""
    ctx = Context(tmp=tmp_path, hub=request.getfixturevalue("local_hub") if case.needs_hub else None)
    with pytest.raises(case.exc_type) as info:
        case.trigger(ctx)
    message = str(info.value)
    missing = [text for text in case.must_mention if text not in message]
    assert not missing, f"{case.id}: the error does not mention {missing}: {type(info.value).__name__}: {message}"


@pytest.mark.parametrize("case", CASES, ids=str)
def test_bad_input(case: BadInput, tmp_path: Path, request: pytest.FixtureRequest) -> None:
    run_case(case, tmp_path, request)


def test_table_lists_every_case() -> None:
    ids = [case.id for case in CASES]
    assert len(ids) == len(set(ids)), "case ids must be unique"
    table = re.findall(r"^\| ([a-z0-9]+-[a-z0-9-]+) \| (\w+) \|", __doc__, flags=re.MULTILINE)
    assert [row[0] for row in table] == ids, "the docstring table and CASES must list the same cases in order"
    assert [row[1] for row in table] == [case.where for case in CASES]
    assert len(ids) >= 25


def test_valid_inputs_pass_every_check(tmp_path: Path) -> None:
    """The checks reject only bad input: valid images and texts of the same shapes as above train."""
    ctx = Context(tmp=tmp_path)
    trainer = MultiTaskTrainer(model=timm_model(), args=args(ctx, max_steps=1, save_strategy="no"),
                               train_dataset=image_rows(ctx, png_bytes()))
    trainer.train()
    assert trainer.state.global_step == 1
    trainer = MultiTaskTrainer(model=bert_model(), args=args(ctx, max_steps=1, save_strategy="no"),
                               train_dataset=text_rows(["the cat", "a dog"]), processing_class=tiny_tokenizer())
    trainer.train()
    assert trainer.state.global_step == 1


def test_empty_text_is_accepted_when_the_user_opts_in(tmp_path: Path) -> None:
    rows = text_rows(["the cat", ""])
    with pytest.raises(ValueError, match="row 1"):
        validate_inputs(rows)
    assert validate_inputs(rows, allow_empty_text=True) == 2
    lenient = rows.with_transform(dataset_transform(tiny_tokenizer(), "text", allow_empty_text=True))
    assert validate_inputs(lenient) == 2
    assert len(lenient[1]["input_ids"]) == 2  # [CLS] [SEP]


def test_input_check_reads_only_the_rows_asked_for(tmp_path: Path) -> None:
    """Lists and streams are checked row by row; ``max_rows`` bounds the work (row 3 is never read here)."""
    rows = [{"text": "the cat"}] * 3 + [{"text": ""}]
    assert validate_inputs(rows, "text", "text", max_rows=3) == 3
    stream = datasets.IterableDataset.from_generator(lambda: iter(rows))
    with pytest.raises(ValueError, match="column 'text', row 3: the text is empty"):
        validate_inputs(stream, "text", "text")


def test_mismatched_heads_load_when_the_user_asks_for_reinitialisation(tmp_path: Path) -> None:
    folder = saved_model_with(Context(tmp=tmp_path), lambda d: set_labels(d, list("abcd")))
    model = MultiTaskModel.from_pretrained(folder, ignore_mismatched_sizes=True)
    assert model.heads["tags"].layers[-1].out_features == 4
