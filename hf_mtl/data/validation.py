"""Checks before step 1: every label and every raw input of a dataset is read once, so a bad row fails now, naming
the task, column and row, not hours into training."""

from __future__ import annotations

import functools
import io
import logging
import os
from collections.abc import Iterator, Mapping, Sequence
from typing import Any

import numpy as np
import torch

from ..preprocessing import open_image, text_problem
from ..tasks import TaskSpec
from .collator import encode_labels

logger = logging.getLogger(__name__)


ENCODE_CHUNK_VALUES = 2_000_000
"""Encoded label values held at once while checking labels: a chunk has fewer rows when a task has many labels."""


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
    widest = max((spec.output_size for spec in tasks), default=1)
    chunk_size = max(1, min(chunk_size, ENCODE_CHUNK_VALUES // max(widest, 1)))  # 50,000 labels: 40 rows a chunk
    columns = {spec.name: label_columns.get(spec.name, spec.name) for spec in tasks}
    needed = sorted({*columns.values(), *known_label_columns.values()})
    features = getattr(dataset, "features", None)
    if isinstance(dataset, datasets.Dataset):
        names = dataset.column_names
    elif isinstance(dataset, datasets.IterableDataset):
        names = list(features) if features is not None else None
    elif isinstance(dataset, list):
        names = sorted({key for row in dataset for key in row})
    else:  # a torch Dataset (map-style or iterable) or any iterable of rows: read the rows asked for, keep labels only
        dataset, names = _label_rows(dataset, needed, max_rows)
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


def is_map_style(dataset: Any) -> bool:
    """Whether ``dataset`` is read by position (``len`` and ``[i]``: a ``datasets.Dataset``, a list, a torch map-style
    ``Dataset``), so every row can be checked up front; streams (``IterableDataset``, generators) cannot."""
    import datasets

    if isinstance(dataset, (datasets.IterableDataset, torch.utils.data.IterableDataset)):
        return False
    return hasattr(dataset, "__len__") and hasattr(dataset, "__getitem__")


def _label_rows(dataset: Any, needed: Sequence[str], max_rows: int | None) -> tuple[list[dict[str, Any]], list[str]]:
    """The rows of a torch-style dataset reduced to the label columns (row ``i`` is the dataset's row ``i``), and
    every column seen. Map-style: the first ``max_rows`` rows (all by default); a ``Subset`` / ``ConcatDataset`` of
    ``datasets.Dataset`` s or lists reads only their label columns, any other map-style dataset is read through its
    own ``__getitem__``. Streams: the first ``max_rows`` rows."""
    import itertools

    keys: set[str] = set()
    if is_map_style(dataset):
        n = len(dataset) if max_rows is None else min(len(dataset), max_rows)
        return _rows_at(dataset, range(n), range(n), needed, keys), sorted(keys)
    rows = []
    for i, row in enumerate(itertools.islice(iter(dataset), max_rows)):
        rows.append(_label_part(row, i, needed, keys))
    return rows, sorted(keys)


def _label_part(row: Any, position: int, needed: Sequence[str], keys: set[str]) -> dict[str, Any]:
    if not isinstance(row, Mapping):
        raise ValueError(
            f"row {position} is a {type(row).__name__}, not a mapping of columns; a dataset for MultiTaskTrainer yields "
            "dicts like {'pixel_values': ..., '<task>': <label>}"
        )
    keys.update(row)
    return {key: row[key] for key in needed if key in row}


def _rows_at(
    dataset: Any, indices: Sequence[int], positions: Sequence[int], needed: Sequence[str], keys: set[str],
    chunk_size: int = 10_000,
) -> list[dict[str, Any]]:
    """Label columns of ``dataset``'s rows ``indices`` (``positions``: the same rows in the outer dataset's
    coordinates, for errors), unwrapping ``Subset`` / ``ConcatDataset`` so that wrapped Arrow tables or lists are read
    column-wise, without decoding any input."""
    import bisect

    import datasets
    from tqdm.auto import tqdm

    if isinstance(dataset, datasets.Dataset):
        keys.update(dataset.column_names)
        table = dataset.with_format(None).select_columns([c for c in needed if c in dataset.column_names])
        if not table.column_names:
            return [{} for _ in indices]
        if not (isinstance(indices, range) and indices.start == 0 and indices.step == 1 and len(indices) == len(table)):
            table = table.select(indices)
        rows = []
        for start in range(0, len(table), chunk_size):
            batch = table[start : start + chunk_size]
            rows += [dict(zip(batch, values)) for values in zip(*batch.values())]
        return rows
    if isinstance(dataset, torch.utils.data.Subset):
        inner = dataset.indices
        return _rows_at(dataset.dataset, [int(inner[i]) for i in indices], positions, needed, keys)
    if isinstance(dataset, torch.utils.data.ConcatDataset):
        bounds, parts = dataset.cumulative_sizes, {}
        for index, position in zip(indices, positions):
            part = bisect.bisect_right(bounds, index)
            local = index - (bounds[part - 1] if part else 0)
            parts.setdefault(part, ([], []))[0].append(local)
            parts[part][1].append(position)
        out: dict[int, dict[str, Any]] = {}
        for part, (local, outer) in parts.items():
            out.update(zip(outer, _rows_at(dataset.datasets[part], local, outer, needed, keys)))
        return [out[position] for position in positions]
    if isinstance(dataset, list):
        return [_label_part(dataset[i], p, needed, keys) for i, p in zip(indices, positions)]
    # any other map-style dataset: only its own __getitem__ knows the row (it may decode inputs: that is its cost)
    with tqdm(total=len(indices), desc="Checking labels", unit=" rows", disable=len(indices) < 50_000) as progress:
        rows = []
        for i, position in zip(indices, positions):
            rows.append(_label_part(dataset[i], position, needed, keys))
            progress.update(1)
        return rows


def as_dataset(data: Any, argument: str = "train_dataset") -> Any:
    """A pandas DataFrame or a dict of columns → ``datasets.Dataset`` (the Trainer would index them by position and
    fail at step 1 with a ``KeyError``); anything else is returned as is. Columns of unequal length are an error
    naming them."""
    import datasets

    if type(data).__module__.split(".")[0] == "pandas" and hasattr(data, "columns"):
        try:  # column lists, not from_pandas: pyarrow cannot convert cells holding 2-D / 3-D arrays (pixels)
            return datasets.Dataset.from_dict({str(name): data[name].tolist() for name in data.columns})
        except (TypeError, ValueError) as err:
            raise ValueError(f"{argument}: cannot turn the DataFrame into a datasets.Dataset: {err}") from err
    is_columns = (
        isinstance(data, Mapping) and data
        and all(isinstance(v, (list, tuple, np.ndarray)) or hasattr(v, "tolist") for v in data.values())
        and not any(isinstance(v, list) and v and isinstance(v[0], Mapping) for v in data.values())
    )
    if not is_columns:
        return data
    lengths = {name: len(values) for name, values in data.items()}
    if len(set(lengths.values())) > 1:
        raise ValueError(f"{argument}: a dict of columns needs columns of one length, got {lengths}")
    return datasets.Dataset.from_dict({name: list(values) for name, values in data.items()})


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


def standardize_regression_targets(
    model: Any,
    dataset: Any,
    label_columns: Mapping[str, str] | None = None,
    known_label_columns: Mapping[str, str] | None = None,
    tasks: Sequence[str] | None = None,
) -> dict[str, dict[str, list[float]]]:
    """Store the mean / std / median of each regression target's present training values in the model's task specs.

    Computed once, from the training data, for tasks that have no statistics yet: the loss then works on standardised
    targets (a head starts at the right scale, whatever the units) and `activate` / `predict` / metrics return values
    in the original units; the statistics are saved in ``config.json``. ``tasks``: only these (the heads that will
    train; a head that does not train keeps its outputs unchanged). Returns ``{task: statistics}`` of the tasks it
    standardised (empty when there were none to do).
    """
    from ..tasks import TARGET_STATISTICS

    specs = list(model.config.task_specs)
    todo = [spec for spec in specs if spec.task_type.standardizes_targets and spec.target_mean is None
            and (tasks is None or spec.name in tasks)]
    if not todo:
        return {}
    chunks: dict[str, list[torch.Tensor]] = {spec.name: [] for spec in todo}
    for encoded in iter_encoded_labels(dataset, todo, label_columns, known_label_columns):
        for spec in todo:
            chunks[spec.name].append(torch.as_tensor(encoded[spec.name]).reshape(-1, spec.output_size))
    found = {}
    for spec in todo:
        labels = torch.cat(chunks[spec.name]) if chunks[spec.name] else torch.empty(0, spec.output_size)
        stats = spec.task_type.target_statistics(spec, labels)
        for attr in TARGET_STATISTICS:
            setattr(spec, attr, stats[attr])
        found[spec.name] = stats
        logger.info("task %r: regression targets standardised with training mean %s and std %s", spec.name,
                    [round(v, 6) for v in stats["target_mean"]], [round(v, 6) for v in stats["target_std"]])
    model.config.set_tasks(specs)
    return found


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
