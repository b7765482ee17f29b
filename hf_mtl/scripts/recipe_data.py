"""Recipe data: the train / eval datasets a recipe names, checked against the tasks, with the backbone's preprocessing."""

from __future__ import annotations

import logging
import os
from typing import Any

from .arguments import DataArguments, RecipeError

logger = logging.getLogger(__name__)

DEFAULT_INPUT_COLUMNS = ("image", "img", "text", "sentence", "image_path", "path", "file_name")


def _builtin(data_args: DataArguments, seed: int) -> tuple[Any, Any]:
    from . import demo_data

    n_train, n_eval = data_args.max_train_samples, data_args.max_eval_samples
    if data_args.dataset == "fashion_grid":
        train = demo_data.fashion_grid_dataset(n_train or 2000, "train", missing_rate=data_args.missing_rate, seed=seed)
        evaluation = demo_data.fashion_grid_dataset(n_eval or 500, "test", missing_rate=0.0, seed=seed + 1)
        return train, evaluation
    try:
        train = demo_data.wordnet_gloss_dataset(n_train or 4000, "train", seed=seed)
        evaluation = demo_data.wordnet_gloss_dataset(n_eval or 1000, "test", seed=seed + 1)
    except FileNotFoundError as err:
        raise RecipeError(f"recipe: `dataset: wordnet_glosses`: {err}") from err
    return train, evaluation


def load_recipe_datasets(data_args: DataArguments, seed: int = 42, need_train: bool = True) -> tuple[Any, Any]:
    """``(train, eval)`` ``datasets.Dataset``s with raw inputs and label columns (eval may be None)."""
    import datasets

    if data_args.dataset in ("fashion_grid", "wordnet_glosses"):
        try:
            return _builtin(data_args, seed)
        except FileNotFoundError as err:
            raise RecipeError(f"recipe: `dataset: {data_args.dataset}`: {err}") from err
    files = {"train": data_args.train_file}
    if data_args.validation_file:
        files["validation"] = data_args.validation_file
    try:
        if data_args.dataset == "imagefolder":
            loaded = datasets.load_dataset("imagefolder", data_dir=data_args.data_dir)
        elif data_args.dataset in ("csv", "json", "parquet"):
            loaded = datasets.load_dataset(data_args.dataset, data_files=files)
        else:
            loaded = datasets.load_from_disk(data_args.dataset)
    except (datasets.exceptions.DatasetGenerationError, ValueError, OSError) as err:
        # the reader's own error (pyarrow's "JSON parse error: ...") names no file; its cause often says the line
        cause = err.__cause__ or err.__context__
        where = data_args.data_dir if data_args.dataset == "imagefolder" else (
            files if data_args.dataset in ("csv", "json", "parquet") else data_args.dataset)
        raise RecipeError(
            f"recipe: the {data_args.dataset} data {where} cannot be read: {err}"
            + (f" ({type(cause).__name__}: {cause})" if cause is not None else "")
        ) from err
    if data_args.dataset in ("csv", "json", "parquet"):
        loaded = _resolve_relative_paths(loaded, data_args)
    if isinstance(loaded, datasets.Dataset):
        loaded = datasets.DatasetDict({"train": loaded})
    if "train" not in loaded:
        raise RecipeError(f"recipe: dataset {data_args.dataset!r} has no 'train' split (splits: {list(loaded)})")
    train = loaded["train"]
    evaluation = next((loaded[s] for s in ("validation", "valid", "eval", "test") if s in loaded), None)
    if evaluation is None:
        parts = train.train_test_split(test_size=data_args.validation_split, seed=seed)
        train, evaluation = parts["train"], parts["test"]
    if data_args.max_train_samples is not None:
        train = train.select(range(min(len(train), data_args.max_train_samples)))
    if data_args.max_eval_samples is not None:
        evaluation = evaluation.select(range(min(len(evaluation), data_args.max_eval_samples)))
    return train, evaluation


def _resolve_relative_paths(loaded: Any, data_args: DataArguments) -> Any:
    """Image paths in a CSV/JSON are relative to that file: make them absolute so any working directory works."""
    column = data_args.input_column
    if column is None:
        return loaded
    for split, file in (("train", data_args.train_file), ("validation", data_args.validation_file)):
        if split not in loaded or file is None or column not in loaded[split].column_names:
            continue
        base = os.path.dirname(os.path.abspath(file))
        first = loaded[split][0][column] if len(loaded[split]) else None
        if isinstance(first, str) and not os.path.isabs(first) and os.path.exists(os.path.join(base, first)):
            loaded[split] = loaded[split].map(lambda row, base=base: {column: os.path.join(base, row[column])})
    return loaded


def input_column(data_args: DataArguments, dataset: Any) -> str:
    if data_args.input_column is not None:
        if data_args.input_column not in dataset.column_names:
            raise RecipeError(
                f"recipe: `input_column` {data_args.input_column!r} is not a dataset column ({dataset.column_names})"
            )
        return data_args.input_column
    for name in DEFAULT_INPUT_COLUMNS:
        if name in dataset.column_names:
            return name
    raise RecipeError(f"recipe: set `input_column`: none of {DEFAULT_INPUT_COLUMNS} is a column of {dataset.column_names}")


def check_labels(dataset: Any, specs: list, data_args: DataArguments, split: str) -> dict[str, int]:
    """Every label of the split encodes (hf_mtl.data.validate_labels); errors name the split, task, column and row."""
    from ..data import validate_labels

    try:
        counts = validate_labels(dataset, specs, label_columns=data_args.label_columns)
    except (KeyError, ValueError) as err:
        raise RecipeError(f"recipe: {split} data: {err}") from err
    logger.info("%s: %d rows, present labels per task: %s", split, len(dataset), counts)
    return counts


def check_inputs(dataset: Any, column: str, kind: str, data_args: DataArguments, split: str) -> int:
    """Every raw input of the split is readable (hf_mtl.data.validate_inputs): a missing or corrupt image, an empty
    text fails now, naming the split, column and row, not when the row is first read during training."""
    from ..data import INPUT_KINDS, validate_inputs

    if kind not in INPUT_KINDS:
        return 0
    try:
        return validate_inputs(dataset, column, kind, allow_empty_text=data_args.allow_empty_text)
    except ValueError as err:
        hint = " (or set `allow_empty_text: true`)" if kind == "text" and "empty" in str(err) else ""
        raise RecipeError(f"recipe: {split} data: {err}{hint}") from err


def with_preprocessing(dataset: Any, processor: Any, column: str, train: bool, allow_empty_text: bool = False) -> Any:
    """The dataset with the backbone's preprocessing applied lazily (``with_transform``), label columns kept."""
    from ..preprocessing import dataset_transform

    return dataset.with_transform(dataset_transform(processor, column, train=train, allow_empty_text=allow_empty_text))
