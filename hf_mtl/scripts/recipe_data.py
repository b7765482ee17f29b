"""Recipe data: the train / eval datasets a recipe names, checked against the tasks, with the backbone's preprocessing."""

from __future__ import annotations

import json
import logging
import os
from dataclasses import dataclass, field, replace
from typing import Any

from .arguments import FILE_DATASETS, DataArguments, RecipeError

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


# ------------------------------------------------------------------------------------- evaluation data (hf-mtl eval)
SPLIT_FILE_KEYS = {"train": "train_file", "validation": "validation_file", "test": "test_file"}
"""File datasets: the recipe key that holds each split."""
EVAL_SPLIT_ORDER = ("validation", "valid", "eval", "test")
"""The split training evaluates (and selects) on, first found (as ``load_recipe_datasets``)."""
FILE_EXTENSIONS = {".json": "json", ".jsonl": "json", ".csv": "csv", ".parquet": "parquet", ".pq": "parquet"}


BUILT_FROM = {"fashion_grid": "Fashion-MNIST's {part} images", "wordnet_glosses": "WordNet's {part} glosses"}
"""What the built-in data sets' rows are drawn from (``demo_data``: the source's train or test part)."""


def describe_rows(source: dict[str, Any], path: Any = os.path.abspath) -> str:
    """What a set of evaluation rows is, in words, from where they came from (``EvalData.source``): the one text of
    ``hf-mtl eval``'s header, its results file and the card (which passes a ``path`` that shortens and quotes).

    ``source``: ``dataset``, ``split``, ``file`` (with ``file_key``, the recipe key naming it; none for ``--file``),
    ``data_dir`` (``split_named``: False when a folder's only split was taken), ``validation_split`` and ``seed`` for
    a share held out of the training data, ``seed`` alone for built-in data (the seed it was generated with)."""
    kind, split = source.get("dataset"), source.get("split")
    folder = f"{'saved dataset' if kind == 'save_to_disk' else kind} {path(source['data_dir'])}" \
        if source.get("data_dir") else None
    if source.get("stream_head"):
        of = f" of {source['file_key']} {path(source['file'])}" if source.get("file") else (
            f" of the Hub data set {kind}" if kind not in (*FILE_DATASETS, "imagefolder") else "")
        return f"split {split!r}, the first rows of the training stream{of}, held out of training"
    if source.get("validation_split") is not None:
        of = f"{source.get('file_key') or 'train_file'} {path(source['file'])}" if source.get("file") else folder
        return f"split {split!r}, a {source['validation_split']:.0%} hold-out (seed {source['seed']}) of {of}"
    if kind in BUILT_FROM:
        part = "train" if split == "train" else "test"
        return (f"split {split!r} of the built-in {kind} data (built from {BUILT_FROM[kind].format(part=part)}, "
                f"seed {source['seed']})")
    if source.get("file"):
        key = source.get("file_key")
        return f"split {split!r} of the recipe's data: {key} {path(source['file'])}" if key \
            else f"file {path(source['file'])}"
    return f"split {split!r} of {folder}" if source.get("split_named", True) else folder


def describe_eval_rows(source: dict[str, Any], rows: int, total_rows: int | None = None,
                       path: Any = os.path.abspath) -> str:
    """[`describe_rows`] and how many rows: all of them, or the first ``rows`` (``max_eval_samples``; ``total_rows``
    None: training's evaluation, whose total is not read, capped when ``source`` has ``max_eval_samples``)."""
    capped = ""
    if total_rows is not None and rows < total_rows:
        capped = f" (the first {rows} of {total_rows}: max_eval_samples)"
    elif total_rows is None and source.get("max_eval_samples") is not None:
        capped = f" (the first {rows}: max_eval_samples)"
    return f"{describe_rows(source, path)}: {rows} rows{capped}"


def training_eval_source(data_args: DataArguments, seed: int) -> dict[str, Any]:
    """Where training's evaluation rows come from, as ``load_recipe_datasets`` picks them (a ``validation_file``, a
    folder's own evaluation split, else a share held out of the training data), without reading them."""
    kind = data_args.dataset
    source: dict[str, Any] = {"dataset": kind, "split": "validation"}
    if kind in BUILT_FROM:
        return source | {"seed": seed + 1}
    if data_args.max_eval_samples is not None:
        source["max_eval_samples"] = data_args.max_eval_samples
    held_out = {"validation_split": data_args.validation_split, "seed": seed}
    if data_args.streaming and not data_args.validation_file:  # `load_stream_datasets`: the stream's first rows
        where = data_args.data_dir if kind == "imagefolder" else data_args.train_file
        return source | {"stream_head": True, "file": os.path.abspath(where) if where else None,
                         "file_key": "data_dir" if kind == "imagefolder" else "train_file"}
    if kind in FILE_DATASETS:
        if data_args.validation_file:
            return source | {"file": os.path.abspath(data_args.validation_file), "file_key": "validation_file"}
        return source | {"file": os.path.abspath(data_args.train_file), "file_key": "train_file"} | held_out
    folder = data_args.data_dir if kind == "imagefolder" else kind
    source |= {"dataset": "imagefolder" if kind == "imagefolder" else "save_to_disk",
               "data_dir": os.path.abspath(folder) if folder else folder}
    split = _own_eval_split(folder)
    return source | {"split": split} if split is not None else source | held_out


def _own_eval_split(folder: str | None) -> str | None:
    """The evaluation split a folder data set has of its own (imagefolder sub-folders, a saved DatasetDict)."""
    if not folder or not os.path.isdir(folder):
        return None
    present = set(os.listdir(folder))
    dataset_dict = os.path.join(folder, "dataset_dict.json")
    if os.path.isfile(dataset_dict):
        with open(dataset_dict, encoding="utf-8") as handle:
            present = set(json.load(handle).get("splits", []))
    return next((name for name in EVAL_SPLIT_ORDER if name in present), None)


@dataclass
class EvalData:
    """The rows ``hf-mtl eval`` / ``tune-thresholds`` score, and what they are, for the header and the results file."""

    dataset: Any
    name: str
    """Names the results file (``eval_<name>_results.json``): the split, or the file / folder name, sanitised."""
    source: dict[str, Any] = field(default_factory=dict)
    """Where the rows came from (JSON): ``dataset``, ``split``, ``file``, ``data_dir`` and what [`describe_rows`]
    reads."""
    total_rows: int = 0
    """Rows before `max_eval_samples`."""

    @property
    def rows(self) -> int:
        return len(self.dataset)

    @property
    def description(self) -> str:
        return describe_rows(self.source)

    def header(self, path: Any = os.path.abspath) -> str:
        return describe_eval_rows(self.source, self.rows, self.total_rows, path)


def _file_name(path: str) -> str:
    from ..tasks import metric_key

    return metric_key(os.path.basename(os.path.normpath(path)))


def _read(where: str, load: Any) -> Any:
    """``load()``, with a reader's error turned into a RecipeError naming ``where``."""
    import datasets

    try:
        return load()
    except (datasets.exceptions.DatasetGenerationError, datasets.data_files.EmptyDatasetError, ValueError,
            OSError) as err:
        cause = err.__cause__ or err.__context__
        raise RecipeError(f"{where} cannot be read: {err}"
                          + (f" ({type(cause).__name__}: {cause})" if cause is not None else "")) from err


def _absolute_inputs(dataset: Any, data_args: DataArguments, file: str) -> Any:
    """Input paths in a CSV/JSON are relative to that file (as `_resolve_relative_paths` does for training)."""
    column = data_args.input_column or next((c for c in DEFAULT_INPUT_COLUMNS if c in dataset.column_names), None)
    if column is None or column not in dataset.column_names or not len(dataset):
        return dataset
    base, first = os.path.dirname(os.path.abspath(file)), dataset[0][column]
    if isinstance(first, str) and not os.path.isabs(first) and os.path.exists(os.path.join(base, first)):
        dataset = dataset.map(lambda row: {column: os.path.join(base, row[column])})
    return dataset


def _load_file(data_args: DataArguments, file: str) -> Any:
    import datasets

    if not os.path.isfile(file):
        raise RecipeError(f"eval: file {file!r} does not exist")
    kind = FILE_EXTENSIONS.get(os.path.splitext(file)[1].lower())
    kind = kind or (data_args.dataset if data_args.dataset in FILE_DATASETS else None)
    if kind is None:
        raise RecipeError(f"eval: cannot tell the format of {file!r}: name it .json / .jsonl / .csv / .parquet")
    loaded = _read(f"eval: the {kind} file {file!r}",
                   lambda: datasets.load_dataset(kind, data_files={"eval": os.path.abspath(file)})["eval"])
    return _absolute_inputs(loaded, data_args, file)


def _is_saved_dataset(folder: str) -> bool:
    return any(os.path.isfile(os.path.join(folder, name)) for name in ("dataset_dict.json", "state.json"))


def _folder_split(folder: str, split: str | None, fallback: tuple[str, ...] = ()) -> tuple[Any, str | None]:
    """One split of an ``imagefolder`` or ``save_to_disk`` folder, reading only that split's files.

    ``split=None``: the first of ``fallback`` the folder has, else its only split (several: an error asking which).
    Returns ``(dataset or None when a fallback split is absent, split)``."""
    import datasets

    if not os.path.isdir(folder):
        raise RecipeError(f"eval: folder {folder!r} does not exist")
    if _is_saved_dataset(folder):
        loaded = _read(f"eval: the saved dataset {folder!r}", lambda: datasets.load_from_disk(folder))
        splits = {"train": loaded} if isinstance(loaded, datasets.Dataset) else dict(loaded)
    else:
        from datasets.data_files import get_data_patterns

        patterns = {str(k): v for k, v in _read(f"eval: the imagefolder {folder!r}",
                                                 lambda: get_data_patterns(folder)).items()}
        splits = dict.fromkeys(patterns)
    names = list(splits)
    if split is None:
        split = next((s for s in fallback if s in splits), None)
        if split is None and fallback:
            return None, None
        if split is None and len(names) > 1:
            raise RecipeError(f"eval: {folder!r} has the splits {names}: choose one with --split")
        split = split or names[0]
    if split not in splits:
        hint = "" if _is_saved_dataset(folder) else (
            " (an imagefolder's splits are its train/, validation/ (valid/, val/, dev/) and test/ (eval/) folders)")
        raise RecipeError(f"eval: {folder!r} has no split {split!r}; its splits: {names}{hint}")
    if splits[split] is None:  # imagefolder: read this split's files only (metadata.jsonl label columns included)
        splits[split] = _read(f"eval: split {split!r} of the imagefolder {folder!r}", lambda: datasets.load_dataset(
            "imagefolder", data_dir=folder, data_files={split: patterns[split]})[split])
    return splits[split], split


def _builtin_split(data_args: DataArguments, split: str, seed: int) -> Any:
    from . import demo_data

    if split == "train":
        n, demo_split, rng = data_args.max_train_samples, "train", seed
    elif split in ("validation", "eval"):
        n, demo_split, rng = data_args.max_eval_samples, "test", seed + 1
    else:
        raise RecipeError(
            f"eval: the built-in {data_args.dataset} data has the splits train and validation (its evaluation set, "
            f"drawn from the source's test part and also used for model selection); no {split!r}"
        )
    try:
        if data_args.dataset == "fashion_grid":
            return demo_data.fashion_grid_dataset(n or (2000 if split == "train" else 500), demo_split,
                                                  missing_rate=data_args.missing_rate if split == "train" else 0.0,
                                                  seed=rng)
        return demo_data.wordnet_gloss_dataset(n or (4000 if split == "train" else 1000), demo_split, seed=rng)
    except FileNotFoundError as err:
        raise RecipeError(f"recipe: `dataset: {data_args.dataset}`: {err}") from err


def _held_out(data_args: DataArguments, seed: int) -> Any:
    """The share of the training data that training held out for evaluation: the same rows, by the same split."""
    _, evaluation = load_recipe_datasets(replace(data_args, max_eval_samples=None, max_train_samples=None), seed=seed)
    return evaluation


def load_eval_data(
    data_args: DataArguments, *, split: str | None = None, file: str | None = None, data_dir: str | None = None,
    seed: int = 42,
) -> EvalData:
    """The rows to evaluate: a ``file``, a folder (``data_dir``, optionally one ``split`` of it), one ``split`` of the
    recipe's data, or (none given) the recipe's evaluation split as training used it.

    Only those rows are read: never the training data, except for ``--split train`` and for a validation share
    held out of the training data (``validation_split``), which can only be drawn from it. ``max_eval_samples``
    keeps the first rows; the header says so."""
    kind = data_args.dataset
    source: dict[str, Any] = {"dataset": kind, "split": split, "file": None, "data_dir": None}
    if file is not None:
        if split is not None:
            raise RecipeError("eval: give --file or --split, not both (a file is one set of rows)")
        dataset, name = _load_file(data_args, file), _file_name(file)
        source.update(file=os.path.abspath(file), dataset=FILE_EXTENSIONS.get(os.path.splitext(file)[1].lower(), kind))
    elif data_dir is not None:
        asked = split
        dataset, split = _folder_split(data_dir, split)
        source.update(data_dir=os.path.abspath(data_dir), split=split, split_named=asked is not None,
                      dataset="save_to_disk" if _is_saved_dataset(data_dir) else "imagefolder")
        name = _file_name(data_dir) + ("" if asked is None else f"_{split}")
    elif kind in BUILT_FROM:
        split = split or "validation"
        dataset, name = _builtin_split(data_args, split, seed), split
        source.update(split=split, seed=seed + (split != "train"))
    elif kind in FILE_DATASETS:
        dataset, split, path, key = _file_split(data_args, split, seed)
        name = split
        source.update(split=split, file=os.path.abspath(path), file_key=key)
        if key == "train_file" and split == "validation":  # the share training held out
            source.update(validation_split=data_args.validation_split, seed=seed)
    else:  # imagefolder or a save_to_disk folder
        folder = data_args.data_dir if kind == "imagefolder" else kind
        dataset, found = _folder_split(folder, split, fallback=() if split else EVAL_SPLIT_ORDER)
        source.update(data_dir=os.path.abspath(folder), dataset="imagefolder" if kind == "imagefolder" else "save_to_disk")
        if dataset is None and split in (None, "validation"):
            dataset, found = _held_out(data_args, seed), "validation"
            source.update(validation_split=data_args.validation_split, seed=seed)
        split = name = found
        source["split"] = split
    total = len(dataset)
    if data_args.max_eval_samples is not None and kind not in BUILT_FROM:
        dataset = dataset.select(range(min(total, data_args.max_eval_samples)))
    data = EvalData(dataset=dataset, name=name, source=source, total_rows=total)
    logger.info("evaluation data: %s", data.header())
    return data


def _file_split(data_args: DataArguments, split: str | None, seed: int) -> tuple[Any, str, str, str]:
    """One split of a csv / json / parquet recipe: ``(rows, split, file, the recipe key naming it)``: its file
    (`train_file`, `validation_file`, `test_file`), or the validation share held out of `train_file` when there is no
    `validation_file`."""
    split = split or "validation"
    if split not in SPLIT_FILE_KEYS:
        raise RecipeError(f"eval: a {data_args.dataset} recipe has the splits {list(SPLIT_FILE_KEYS)} "
                          f"(keys {', '.join(SPLIT_FILE_KEYS.values())}); no {split!r} (or give --file)")
    key = SPLIT_FILE_KEYS[split]
    path = getattr(data_args, key)
    if path is None and split == "validation" and data_args.train_file is not None:
        return _held_out(data_args, seed), split, data_args.train_file, "train_file"
    if path is None:
        raise RecipeError(f"eval: --split {split}: the recipe sets no `{key}`; add `{key}: path` to it (or "
                          f"`{key}=path` on the command line), or give --file path")
    return _load_file(data_args, path), split, path, key


def load_stream_datasets(data_args: DataArguments, seed: int, rank: int = 0, world_size: int = 1) -> tuple[Any, Any]:
    """`streaming: true`: ``(train, eval)``: this process's [`TrainingStream`] (raw rows; the trainer adds the
    preprocessing) and an in-memory eval ``datasets.Dataset`` (the `validation_file`, else the first
    `max_eval_samples` rows held out of the stream, else None)."""
    import datasets

    from ..data import ROW_ID_COLUMN, TrainingStream, mix_datasets, split_stream
    from ..data.hub_stream import is_hub_dataset_id, stream_hub_dataset
    from ..data.streaming import data_files, describe_files, shuffle_stream, stream_files, stream_imagefolder

    kind = data_args.dataset
    path_columns = [data_args.input_column] if data_args.input_column else list(DEFAULT_INPUT_COLUMNS)

    def open_stream(pattern: str) -> tuple[Any, list[str]]:
        files = data_files(pattern)
        try:
            return stream_files(files, kind, path_columns=path_columns), files
        except (ValueError, OSError) as err:
            raise RecipeError(f"recipe: streaming data {pattern!r}: {err}") from err

    try:
        if kind == "imagefolder":
            sources = {"train": stream_imagefolder(data_args.data_dir)}
            described: Any = ("imagefolder", describe_files(_all_files(data_args.data_dir)))
        elif is_hub_dataset_id(kind):  # `dataset: owner/name`: its Parquet shards, read from the Hub as they train
            stream, described = stream_hub_dataset(kind)
            sources = {"train": stream}
        elif data_args.mix_files:
            opened = {name: open_stream(pattern) for name, pattern in data_args.mix_files.items()}
            sources = {name: stream for name, (stream, _) in opened.items()}
            described = {name: describe_files(files) for name, (_, files) in opened.items()}
        else:
            stream, files = open_stream(data_args.train_file)
            sources, described = {"train": stream}, describe_files(files)
    except (ValueError, FileNotFoundError) as err:
        raise RecipeError(f"recipe: the streaming {kind} data cannot be read: {err}") from err
    evaluation = None
    if data_args.validation_file:
        stream, _ = open_stream(data_args.validation_file)
        evaluation = datasets.Dataset.from_list(list(stream), features=stream.features)
    elif data_args.max_eval_samples:  # held out: the first rows of the first source, in file order
        first = next(iter(sources.values()))
        head = list(first.take(data_args.max_eval_samples))
        evaluation = datasets.Dataset.from_list(head, features=first.features)
        held = {row[ROW_ID_COLUMN] for row in head}
        name = next(iter(sources))
        sources[name] = first.filter(lambda row: row[ROW_ID_COLUMN] not in held)
    else:
        logger.warning("streaming: no `validation_file` and no `max_eval_samples`: training without an evaluation set")
    if data_args.max_eval_samples is not None and evaluation is not None and len(evaluation) > data_args.max_eval_samples:
        evaluation = evaluation.select(range(data_args.max_eval_samples))
    shares = {}
    for name, stream in sources.items():
        stream = split_stream(stream, rank, world_size)
        if data_args.shuffle_buffer_size:
            stream = shuffle_stream(stream, seed, data_args.shuffle_buffer_size)
        shares[name] = stream
    if len(shares) > 1:
        probabilities = _mix_probabilities(data_args, sources)
        try:
            train = mix_datasets(shares, probabilities=probabilities, seed=seed, source_column=None)
        except ValueError as err:
            raise RecipeError(f"recipe: `mix_files`: {err}") from err
    else:
        train = next(iter(shares.values()))
    return TrainingStream(train, description=described), evaluation


def _all_files(folder: str) -> list[str]:
    return sorted(os.path.join(root, name) for root, _, names in os.walk(folder) for name in names)


def _mix_probabilities(data_args: DataArguments, sources: dict[str, Any]) -> list[float]:
    """`mix_probabilities`, else ∝ rows (read from Parquet metadata, no data read), else uniform."""
    from ..data import sampling_probabilities
    from ..data.streaming import data_files

    names = list(sources)
    given = data_args.mix_probabilities
    if given:
        missing = [n for n in names if n not in given]
        if missing:
            raise RecipeError(f"recipe: `mix_probabilities` has no probability for sources {missing}")
        total = sum(float(given[n]) for n in names)
        return [float(given[n]) / total for n in names]
    if data_args.dataset == "parquet":
        import pyarrow.parquet as pq

        sizes = [sum(pq.ParquetFile(f).metadata.num_rows for f in data_files(data_args.mix_files[n])) for n in names]
        return sampling_probabilities(sizes, "proportional")
    return [1.0 / len(names)] * len(names)


def stream_with_preprocessing(stream: Any, processor: Any, column: str, train: bool,
                              allow_empty_text: bool = False) -> Any:
    """A copy of the [`TrainingStream`] that preprocesses its rows (``dataset_transform``) as it yields them."""
    import copy

    from ..preprocessing import dataset_transform

    prepared = copy.copy(stream)
    prepared.transform = dataset_transform(processor, column, train=train, allow_empty_text=allow_empty_text)
    return prepared
