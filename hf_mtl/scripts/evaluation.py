"""The evaluation set-up shared by `hf-mtl eval` and `hf-mtl tune-thresholds`: the command's data options, the
recipe's data keys (and none of its model or training keys), only the rows to evaluate, checked, and a trainer."""

from __future__ import annotations

import argparse
import os
import shutil
import sys
import tempfile
from dataclasses import dataclass
from typing import Any

from .arguments import (
    BUILTIN_DATASETS,
    FILE_DATASETS,
    DataArguments,
    RecipeError,
    is_null_text,
    parse_overrides,
    parse_recipe,
    read_recipe_file,
)
from .models import build_model_processor, load_saved_model
from .recipe_data import (
    SPLIT_FILE_KEYS,
    EvalData,
    check_inputs,
    check_labels,
    input_column,
    load_eval_data,
    with_preprocessing,
)

MODEL_KEYS = ("backbone", "tasks", "weights", "backbone_library", "backbone_kwargs", "pooling")
"""Recipe keys that built the original model: the model comes from the saved folder instead."""
TRAINING_ONLY_KEYS = ("freeze_policy", "feature_cache", "unfreeze_every", "push_to_hub", "resume_from_checkpoint")
DATA_LOCATION_KEYS = ("train_file", "validation_file", "test_file", "data_dir")


def add_data_arguments(parser: argparse.ArgumentParser) -> argparse.ArgumentParser:
    """The model, the recipe and what to evaluate: shared by ``eval`` and ``tune-thresholds``."""
    parser.add_argument("model", help="saved model folder or Hub id")
    parser.add_argument("recipe", nargs="?", help="recipe YAML naming the data (dataset, input and label columns)")
    parser.add_argument("--split", default=None,
                        help="a split of the recipe's data: train, validation or test (csv / json / parquet: "
                             "train_file, validation_file, test_file; imagefolder: data_dir's train/, validation/, "
                             "test/ folders; a save_to_disk folder: its split names); with --data_dir, a split of "
                             "that folder")
    where = parser.add_mutually_exclusive_group()
    where.add_argument("--file", default=None, help="a csv / json(l) / parquet file with the recipe's columns")
    where.add_argument("--data_dir", "--data-dir", default=None,
                       help="an imagefolder (metadata.jsonl / .csv label columns) or a save_to_disk folder")
    return parser


def parse_args(parser: argparse.ArgumentParser, argv: list[str] | None) -> tuple[argparse.Namespace, dict[str, str]]:
    """The command's own options, and every other word as a recipe override (``key=value`` / ``--key value``)."""
    args, rest = parser.parse_known_args(sys.argv[1:] if argv is None else argv)
    if args.recipe is not None and "=" in args.recipe and not os.path.isfile(args.recipe):
        rest, args.recipe = [args.recipe, *rest], None  # `hf-mtl eval model key=value`: no recipe
    overrides = parse_overrides(rest)
    if "data_dir" in overrides:  # `data_dir=path` means what --data_dir means: evaluate that folder, in full
        if args.data_dir is not None or args.file is not None:
            raise RecipeError("eval: give one of --data_dir / data_dir= / --file")
        args.data_dir = overrides.pop("data_dir")
    return args, overrides


@dataclass
class EvalSetup:
    """A saved model, the rows to evaluate and a trainer ready to score them."""

    model: Any
    data: EvalData
    data_args: DataArguments
    trainer: Any
    compute_metrics: Any


def _drop_unused_keys(values: dict[str, Any], args: argparse.Namespace, overrides: dict[str, str]) -> None:
    """Keys that would point eval at other data (or that built / trained the original model) are not read."""
    def given(key: str) -> bool:
        return not is_null_text(overrides[key]) if key in overrides else values.get(key) is not None

    for key in (*MODEL_KEYS, *TRAINING_ONLY_KEYS):
        values.pop(key, None)
    if args.file is not None or args.data_dir is not None:
        unused: tuple[str, ...] = DATA_LOCATION_KEYS
    elif overrides.get("dataset", values.get("dataset")) in FILE_DATASETS:
        split = args.split or "validation"
        keep = {SPLIT_FILE_KEYS.get(split)}
        if split == "validation" and not given("validation_file"):
            keep.add("train_file")  # the held-out share comes from the training file
        unused = tuple(k for k in SPLIT_FILE_KEYS.values() if k not in keep)
    else:
        unused = ()
    for key in unused:
        values.pop(key, None)


def setup(args: argparse.Namespace, overrides: dict[str, str]) -> EvalSetup:
    """Parse the recipe for its data keys, load only the rows to evaluate, check them, and build the trainer."""
    from ..metrics import build_compute_metrics
    from ..preprocessing import input_kind
    from ..trainer import MultiTaskTrainer

    values = read_recipe_file(args.recipe) if args.recipe else {}
    _drop_unused_keys(values, args, overrides)
    if overrides.get("dataset", values.get("dataset")) not in BUILTIN_DATASETS:
        values.pop("max_eval_samples", None)  # a cap only when asked for here
    values["model_name_or_path"] = args.model
    values.setdefault("report_to", "none")
    values["output_dir"] = overrides.pop("output_dir", None) or tempfile.mkdtemp(prefix="hf_mtl_eval_")
    model_args, data_args, _, training_args = parse_recipe(values, overrides, need_train=False)
    data = load_eval_data(data_args, split=args.split, file=args.file, data_dir=args.data_dir, seed=training_args.seed)
    if data.rows == 0:
        raise RecipeError(f"eval: {data.description} has no rows")
    model = load_saved_model(args.model)
    specs = model.task_specs
    check_labels(data.dataset, specs, data_args, data.name)
    column = input_column(data_args, data.dataset)
    check_inputs(data.dataset, column, input_kind(model.main_input_name), data_args, data.name)
    processor = build_model_processor(model, model_args)
    dataset = with_preprocessing(data.dataset, processor, column, train=False,
                                 allow_empty_text=data_args.allow_empty_text)
    compute_metrics = build_compute_metrics(model)
    extra: dict[str, Any] = {}
    if data_args.label_columns:
        from ..data import MultiTaskDataCollator

        extra["data_collator"] = MultiTaskDataCollator(specs, tokenizer=processor, label_columns=data_args.label_columns)
    trainer = MultiTaskTrainer(model=model, args=training_args, eval_dataset=dataset, compute_metrics=compute_metrics,
                               processing_class=processor, **extra)
    return EvalSetup(model=model, data=data, data_args=data_args, trainer=trainer, compute_metrics=compute_metrics)


def cleanup(run: EvalSetup) -> None:
    """Remove the scratch output folder when nothing was written into it."""
    folder = run.trainer.args.output_dir
    if os.path.basename(folder).startswith("hf_mtl_eval_") and os.path.isdir(folder) and not os.listdir(folder):
        shutil.rmtree(folder, ignore_errors=True)
