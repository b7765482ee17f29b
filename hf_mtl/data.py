"""Batching: model inputs are stacked (or padded by a tokenizer), labels become ``{task: tensor}`` with -100 missing."""

from __future__ import annotations

import functools
import io
import logging
import os
from collections.abc import Iterator, Mapping, Sequence
from typing import Any

import numpy as np
import torch

from .configuration_mtl import MODEL_INPUT_NAMES
from .preprocessing import open_image, text_problem
from .tasks import TASK_TYPES, TaskSpec, is_missing_value

logger = logging.getLogger(__name__)


def encode_labels(
    specs: Sequence[TaskSpec],
    rows: Sequence[Mapping[str, Any]],
    label_columns: Mapping[str, str] | None = None,
    row_offset: int = 0,
    known_label_columns: Mapping[str, str] | None = None,
    features: Mapping[str, Any] | None = None,
) -> dict[str, torch.Tensor]:
    """Rows with one label column per task → ``{task: tensor}``; a task whose column a row lacks is missing.

    ``known_label_columns`` maps a multilabel task to a column listing the label names that were annotated: with it the
    task column lists the positive names and labels outside ``known`` are missing rather than negative. ``features``
    (a dataset's ``Features``) turns ``ClassLabel`` ids into names (``-1`` is missing, as in ``datasets``).
    """
    label_columns = dict(label_columns or {})
    known_label_columns = dict(known_label_columns or {})
    labels: dict[str, torch.Tensor] = {}
    for spec in specs:
        column = label_columns.get(spec.name, spec.name)
        known_column = known_label_columns.get(spec.name)
        feature = features.get(column) if features is not None else None
        task_type = spec.task_type
        values = []
        for i, row in enumerate(rows):
            if column in row:
                value = _user_value(row[column], feature)
                has_known = isinstance(value, dict) and value.get("known") is not None
                if known_column is not None and not has_known and not is_missing_value(value):
                    known = _user_value(row.get(known_column), features.get(known_column) if features else None)
                    known = known["positive"] if isinstance(known, dict) else known
                    value = {**value, "known": known} if isinstance(value, dict) else {"positive": value, "known": known}
                values.append(task_type.encode(spec, value, where=f"column {column!r}, row {row_offset + i}"))
            else:
                values.append(task_type.missing(spec))
        labels[spec.name] = torch.tensor(values, dtype=task_type.label_dtype)
    return labels


def _class_label(feature: Any) -> tuple[Any, bool]:
    """``(ClassLabel, is_list)`` when ``feature`` is a ClassLabel or a list of ClassLabel, else ``(None, False)``."""
    import datasets

    if isinstance(feature, datasets.ClassLabel):
        return feature, False
    inner = getattr(feature, "feature", None)
    if isinstance(inner, datasets.ClassLabel):
        return inner, True
    return None, False


def _user_value(value: Any, feature: Any) -> Any:
    """A stored label → what ``TaskType.encode`` reads: ClassLabel ids become names; ``-1`` ids become missing."""
    if hasattr(value, "tolist"):  # tensors / numpy values of a torch- or numpy-formatted dataset
        value = value.tolist()
    class_label, is_list = _class_label(feature)
    if class_label is None or value is None:
        return value
    if is_list:  # Sequence(ClassLabel) holds the ids of the positive labels
        return {"positive": [class_label.int2str(int(v)) for v in value if int(v) >= 0]}
    return None if int(value) < 0 else class_label.int2str(int(value))


def _stack(name: str, values: list[Any]) -> torch.Tensor:
    first = values[0]
    if isinstance(first, torch.Tensor):
        return torch.stack(values)
    if isinstance(first, np.ndarray):
        return torch.from_numpy(np.stack(values))
    try:
        return torch.tensor(values)
    except (TypeError, ValueError) as err:
        raise ValueError(f"model input {name!r} cannot be batched (ragged or not numeric): {err}") from err


class MultiTaskDataCollator:
    """Collate rows into ``{<model inputs>, "labels": {task: tensor}}``.

    Args:
        tasks: the model's task specs (``model.task_specs``).
        tokenizer: pads text inputs (``input_ids``/``attention_mask``) when given.
        label_columns: task name → dataset column, when a column is not named after its task.
        input_names: which row fields are model inputs; other fields (raw text, image objects, ids) are dropped.
        known_label_columns: multilabel task → column of the label names that were annotated (the task column then
            lists positive names; other labels are missing, not negative).
        features: the dataset's ``Features``, so ``ClassLabel`` / ``Sequence(ClassLabel)`` ids decode to names.
    """

    def __init__(
        self,
        tasks: Sequence[TaskSpec],
        tokenizer: Any = None,
        label_columns: Mapping[str, str] | None = None,
        input_names: Sequence[str] = MODEL_INPUT_NAMES,
        known_label_columns: Mapping[str, str] | None = None,
        features: Mapping[str, Any] | None = None,
    ) -> None:
        self.tasks = list(tasks)
        self.tokenizer = tokenizer
        self.label_columns = dict(label_columns or {})
        self.input_names = tuple(input_names)
        self.known_label_columns = dict(known_label_columns or {})
        self.features = features

    def __call__(self, rows: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
        if not rows:
            raise ValueError("cannot collate an empty batch")
        inputs = [{k: v for k, v in row.items() if k in self.input_names} for row in rows]
        if not inputs[0]:
            raise ValueError(
                f"rows have no model input; expected one of {self.input_names}, got columns {sorted(rows[0])}. "
                "Preprocess images to `pixel_values` or texts to `input_ids` first (see hf_mtl.data)."
            )
        if self.tokenizer is not None and "input_ids" in inputs[0]:
            batch = dict(self.tokenizer.pad(inputs, return_tensors="pt"))
        else:
            batch = {name: _stack(name, [row[name] for row in inputs]) for name in inputs[0]}
        if any(self.label_columns.get(s.name, s.name) in row for s in self.tasks for row in rows):
            batch["labels"] = encode_labels(
                self.tasks, rows, self.label_columns, known_label_columns=self.known_label_columns, features=self.features
            )
        return batch


# ---------------------------------------------------------------------------------------------------------------------
# datasets helpers: task specs from features, label validation before training, mixing datasets that label other tasks


def task_specs_from_features(
    features: Mapping[str, Any],
    columns: Sequence[str] | None = None,
    types: Mapping[str, str] | None = None,
) -> list[TaskSpec]:
    """Task specs for label columns of a ``datasets.Features``: a config can be made straight from a dataset.

    ``ClassLabel`` → multiclass (binary with 2 names when ``types`` says so), ``Sequence(ClassLabel)`` → multilabel,
    ``Value("bool")`` → binary, other numeric ``Value`` → regression, a fixed-length numeric ``Sequence`` → regression
    (floats) or multilabel (ints/bools) with that many outputs. ``types`` overrides the guess per column.
    """
    import datasets

    types = dict(types or {})
    columns = list(columns if columns is not None else features)
    specs = []
    for column in columns:
        if column not in features:
            raise KeyError(f"label column {column!r} is not in the dataset features {sorted(features)}")
        feature = features[column]
        class_label, is_list = _class_label(feature)
        inner = getattr(feature, "feature", None)
        if class_label is not None:
            spec = {"type": types.get(column, "multilabel" if is_list else "multiclass"), "labels": class_label.names}
            task_type = TASK_TYPES.get(spec["type"])
            problem = task_type.class_label_problem(class_label.names, is_list) if task_type else None
            if problem:
                raise ValueError(f"column {column!r}: {problem}, got {feature!r}")
        elif isinstance(feature, datasets.Value) and feature.dtype == "bool":
            spec = {"type": types.get(column, "binary")}
        elif isinstance(feature, datasets.Value) and feature.dtype.startswith(("int", "uint", "float")):
            spec = {"type": types.get(column, "regression")}
        elif isinstance(inner, datasets.Value) and getattr(feature, "length", -1) > 0:
            default = "regression" if inner.dtype.startswith("float") else "multilabel"
            spec = {"type": types.get(column, default), "num_outputs": feature.length}
        elif column in types:
            spec = {"type": types[column]}
        else:
            raise ValueError(
                f"column {column!r}: cannot guess a task type from feature {feature!r}; cast it to ClassLabel / "
                "Sequence(ClassLabel) / a numeric Value, or pass types={column!r: <type>} and the labels in a TaskSpec"
            )
        specs.append(TaskSpec(name=column, **spec))
    return specs


def iter_encoded_labels(
    dataset: Any,
    tasks: Sequence[TaskSpec],
    label_columns: Mapping[str, str] | None = None,
    known_label_columns: Mapping[str, str] | None = None,
    chunk_size: int = 1000,
    max_rows: int | None = None,
) -> Iterator[dict[str, torch.Tensor]]:
    """Encoded labels ``{task: tensor}`` of ``dataset`` chunk by chunk, reading only the label columns.

    ``dataset``: a ``datasets.Dataset``, an ``IterableDataset`` or a list of rows. A configured task whose column
    the dataset lacks is an error here (before any training work), naming the task and the columns there are.
    """
    import datasets

    label_columns = dict(label_columns or {})
    known_label_columns = dict(known_label_columns or {})
    columns = {spec.name: label_columns.get(spec.name, spec.name) for spec in tasks}
    needed = sorted({*columns.values(), *known_label_columns.values()})
    features = getattr(dataset, "features", None)
    if isinstance(dataset, datasets.Dataset):
        names = dataset.column_names
    elif isinstance(dataset, datasets.IterableDataset):
        names = list(features) if features is not None else None
    else:
        dataset = list(dataset)
        names = sorted({key for row in dataset for key in row})
    if names is not None:
        for spec in tasks:
            if columns[spec.name] not in names:
                raise ValueError(
                    f"task {spec.name!r}: the dataset has no label column {columns[spec.name]!r} (columns: {names}); "
                    "rename the column, map it with `label_columns`, or add it with None values (all missing)"
                )
        absent = [c for c in known_label_columns.values() if c not in names]
        if absent:
            raise ValueError(f"known-label columns {absent} are not in the dataset (columns: {names})")

    def encode(rows: list[Mapping[str, Any]], offset: int) -> dict[str, torch.Tensor]:
        return encode_labels(tasks, rows, label_columns, offset, known_label_columns, features)

    if isinstance(dataset, datasets.Dataset):
        from tqdm.auto import tqdm

        table = dataset.with_format(None).select_columns(needed)
        total = len(table) if max_rows is None else min(len(table), max_rows)
        progress = tqdm(total=total, desc="Checking labels", unit=" rows", disable=total < 50_000)
        for start in range(0, total, chunk_size):
            batch = table[start : min(start + chunk_size, total)]
            yield encode([dict(zip(batch, values)) for values in zip(*batch.values())], start)
            progress.update(min(chunk_size, total - start))
        progress.close()
        return
    rows = dataset.select_columns(needed) if isinstance(dataset, datasets.IterableDataset) else dataset
    buffer: list[Mapping[str, Any]] = []
    start = 0
    for i, row in enumerate(rows):
        if max_rows is not None and i >= max_rows:
            break
        buffer.append(row)
        if len(buffer) == chunk_size:
            yield encode(buffer, start)
            start, buffer = start + len(buffer), []
    if buffer:
        yield encode(buffer, start)


def validate_labels(
    dataset: Any,
    tasks: Sequence[TaskSpec],
    label_columns: Mapping[str, str] | None = None,
    known_label_columns: Mapping[str, str] | None = None,
    chunk_size: int = 1000,
    max_rows: int | None = None,
) -> dict[str, int]:
    """Encode every label of ``dataset`` once, so bad labels fail before training, not hours into it.

    The error names the task, the column and the row: a configured task without its column, an unknown class name, a
    label list of the wrong length, a multilabel value that is not 0/1/None. Only the label columns are read (images
    are not decoded). Returns the number of present labels per task; a task with none is logged as a warning, since
    its head would never train.
    """
    names = [spec.name for spec in tasks]
    for argument, mapping in (("label_columns", label_columns), ("known_label_columns", known_label_columns)):
        unknown = sorted(set(mapping or {}) - set(names))
        if unknown:
            raise ValueError(f"{argument} maps tasks {unknown} that the model does not have (its tasks: {names})")
    if hasattr(dataset, "__len__") and len(dataset) == 0:
        raise ValueError(
            "the dataset is empty (0 rows): there is nothing to train or evaluate on; check the split name, the "
            "filter or `max_train_samples` / `max_eval_samples`"
        )
    counts = {spec.name: 0 for spec in tasks}
    for encoded in iter_encoded_labels(dataset, tasks, label_columns, known_label_columns, chunk_size, max_rows):
        for spec in tasks:
            counts[spec.name] += int(spec.task_type.count_present(encoded[spec.name]))
    for name, count in counts.items():
        if count == 0:
            logger.warning("task %r has no present label in this dataset: its head will not learn from it", name)
    return counts


INPUT_KINDS = ("image", "text")


def validate_inputs(
    dataset: Any,
    input_column: str | None = None,
    kind: str | None = None,
    allow_empty_text: bool | None = None,
    max_rows: int | None = None,
    decode_images: bool = False,
) -> int:
    """Check every raw input of ``dataset`` once, so a bad row fails before training, naming the row and column.

    ``kind="text"``: a text that is None, not a string, or empty / only whitespace (unless ``allow_empty_text``).
    ``kind="image"``: an image path that does not exist, or a file / bytes whose header no image format recognises
    (only headers are read, so this is cheap; data corrupt past a valid header fails when the image is decoded, with
    an error naming the file). ``decode_images=True`` decodes every image once, so a file corrupt past its header
    fails now too (costs a full decode pass). Arrays and tensors pass: they are decoded already.

    Without ``input_column`` / ``kind`` they are read from a ``dataset.with_transform(dataset_transform(...))``
    dataset (as [`MultiTaskTrainer`] does); a dataset without such a transform has no raw inputs to check.
    Returns the number of rows checked.
    """
    transform = (getattr(dataset, "format", None) or {}).get("format_kwargs", {}).get("transform")
    input_column = input_column or getattr(transform, "input_column", None)
    kind = kind or getattr(transform, "input_kind", None)
    if allow_empty_text is None:
        allow_empty_text = bool(getattr(transform, "allow_empty_text", False))
    if input_column is None or kind is None:
        return 0
    if kind not in INPUT_KINDS:
        raise ValueError(f"kind must be one of {INPUT_KINDS}, got {kind!r}")
    check = text_problem if kind == "text" else functools.partial(image_problem, decode=decode_images)
    count = 0
    for count, value in enumerate(_input_values(dataset, input_column, max_rows, kind), start=1):
        problem = check(value, allow_empty_text)
        if problem is not None:
            raise ValueError(f"column {input_column!r}, row {count - 1}: {problem}")
    return count


def _input_values(dataset: Any, column: str, max_rows: int | None, kind: str, chunk_size: int = 1000) -> Iterator[Any]:
    """The raw values of ``column``, chunk by chunk (images as undecoded bytes / paths), with a progress bar."""
    import itertools

    import datasets
    from tqdm.auto import tqdm

    if not isinstance(dataset, datasets.Dataset):  # a list of rows or an IterableDataset: only the rows asked for
        for i, row in enumerate(itertools.islice(dataset, max_rows)):
            if column not in row:
                raise ValueError(f"row {i} has no input column {column!r} (its keys: {sorted(row)})")
            yield row[column]
        return
    if column not in dataset.column_names:
        raise ValueError(
            f"the dataset has no input column {column!r} (columns: {dataset.column_names}); set the input column to "
            "the one that holds the raw images or texts"
        )
    raw = dataset.with_format(None).select_columns([column])
    if isinstance(raw.features[column], datasets.Image):  # read bytes / paths, never decode pixels here
        raw = raw.cast_column(column, datasets.Image(decode=False))
    total = len(raw) if max_rows is None else min(len(raw), max_rows)
    with tqdm(total=total, desc=f"Checking {kind}s", unit=" rows", disable=total < 50_000) as progress:
        for start in range(0, total, chunk_size):
            values = raw[start : min(start + chunk_size, total)][column]
            yield from values
            progress.update(len(values))


def image_problem(value: Any, allow_empty: bool = False, decode: bool = False) -> str | None:
    """What is wrong with a raw image input (a path / datasets ``Image()`` dict), from its header only (``decode``:
    from a full decode); None when fine. ``allow_empty`` is unused: the signature matches [`text_problem`].
    """

    if value is None:
        return "the image is missing (None); fill it in or drop the row (`dataset.filter`)"
    source: Any = None
    if isinstance(value, (str, os.PathLike)):
        if not os.path.isfile(value):
            return f"image file {os.fspath(value)!r} does not exist (paths in a data file are relative to that file)"
        source, name = value, f"image file {os.fspath(value)!r}"
    elif isinstance(value, dict) and ("bytes" in value or "path" in value):  # an undecoded datasets Image()
        path = value.get("path")
        if value.get("bytes"):
            source, name = io.BytesIO(value["bytes"]), f"image bytes of {path!r}" if path else "image bytes"
        elif path:
            return image_problem(path, decode=decode)
        else:
            return "the image has neither bytes nor a path"
    if source is None:
        return None  # PIL images, arrays and tensors are decoded already
    try:
        open_image(source, name, decode=decode)
    except ValueError as err:
        return str(err)
    return None


def sampling_probabilities(sizes: Sequence[int], sampling: str = "proportional", temperature: float = 2.0) -> list[float]:
    """Mixing probabilities: ``proportional`` (∝ size), ``temperature`` (∝ size^(1/T)), ``uniform``."""
    sizes_arr = np.asarray(sizes, dtype=np.float64)
    if sizes_arr.size == 0 or (sizes_arr <= 0).any():
        raise ValueError(f"every dataset to mix needs at least one row, got sizes {list(sizes)}")
    if sampling == "proportional":
        weights = sizes_arr
    elif sampling == "temperature":
        if temperature <= 0:
            raise ValueError(f"temperature must be > 0, got {temperature}")
        weights = sizes_arr ** (1.0 / temperature)
    elif sampling == "uniform":
        weights = np.ones_like(sizes_arr)
    else:
        raise ValueError(f"unknown sampling {sampling!r}; choose 'proportional', 'temperature' or 'uniform'")
    return (weights / weights.sum()).tolist()


def mix_datasets(
    datasets_by_name: Mapping[str, Any],
    sampling: str = "proportional",
    temperature: float = 2.0,
    probabilities: Sequence[float] | None = None,
    seed: int | None = None,
    stopping_strategy: str = "all_exhausted",
    source_column: str | None = "source",
) -> Any:
    """Interleave datasets that label different tasks into one training stream (``datasets.interleave_datasets``).

    Every dataset gets the label columns it lacks as all-``None`` columns (so those labels are *missing*, never
    negative), with the feature type the other datasets give them; ``source_column`` records where a row came from.
    Sampling is ``proportional`` to size, ``temperature`` (∝ size^(1/T): T=1 proportional, large T uniform),
    ``uniform``, or explicit ``probabilities``. With ``stopping_strategy="all_exhausted"`` every row is seen once
    and smaller datasets are repeated (see ``datasets.interleave_datasets``).
    """
    import datasets

    if len(datasets_by_name) < 1:
        raise ValueError("mix_datasets needs at least one dataset")
    names = list(datasets_by_name)
    parts = list(datasets_by_name.values())
    all_features: dict[str, Any] = {}
    for name, part in zip(names, parts):
        if part.features is None:
            raise ValueError(f"dataset {name!r} has unknown features; call `.cast(features)` on it before mixing")
        for column, feature in part.features.items():
            if column in all_features and all_features[column] != feature:
                raise ValueError(
                    f"column {column!r} has feature {feature!r} in dataset {name!r} but {all_features[column]!r} in "
                    "another dataset; cast them to one type before mixing"
                )
            all_features.setdefault(column, feature)
    if source_column is not None:
        if source_column in all_features:
            raise ValueError(f"column {source_column!r} already exists; pass another `source_column` or None")
        all_features[source_column] = datasets.Value("string")
    features = datasets.Features(all_features)
    aligned = []
    for name, part in zip(names, parts):
        missing = [c for c in features if c not in part.features]

        def fill(batch: dict[str, list], missing: list[str] = missing, name: str = name) -> dict[str, list]:
            n = len(next(iter(batch.values())))
            return {c: ([name] * n if c == source_column else [None] * n) for c in missing}

        if isinstance(part, datasets.Dataset):  # add_column appends to the Arrow table: images are not rewritten
            for column in missing:
                values = [name] * len(part) if column == source_column else [None] * len(part)
                part = part.add_column(column, values, feature=features[column])
            aligned.append(part.select_columns(list(features)))
        else:
            aligned.append(part.map(fill, batched=True, features=features) if missing else part)
    if probabilities is None:
        try:
            sizes = [len(part) for part in parts]
        except TypeError as err:
            raise ValueError("iterable datasets have no length: pass `probabilities` explicitly") from err
        probabilities = sampling_probabilities(sizes, sampling, temperature)
    if len(probabilities) != len(parts) or abs(sum(probabilities) - 1.0) > 1e-6:
        raise ValueError(f"probabilities must have one entry per dataset and sum to 1, got {list(probabilities)}")
    logger.info("mixing %s with probabilities %s", names, [round(p, 4) for p in probabilities])
    return datasets.interleave_datasets(
        aligned, probabilities=list(probabilities), seed=seed, stopping_strategy=stopping_strategy
    )
