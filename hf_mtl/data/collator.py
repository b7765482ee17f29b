"""Batching: model inputs are stacked (or padded by a tokenizer), labels become ``{task: tensor}`` with -100 missing."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import torch

from ..configuration_mtl import MODEL_INPUT_NAMES
from ..tasks import TaskSpec, is_missing_value

ROW_ID_COLUMN = "__row_id__"
"""A stream row's place in the data set (``"<file> row <n>"``; hf_mtl.data.streaming): errors name it."""


def encode_labels(
    specs: Sequence[TaskSpec],
    rows: Sequence[Mapping[str, Any]],
    label_columns: Mapping[str, str] | None = None,
    row_offset: int = 0,
    known_label_columns: Mapping[str, str] | None = None,
    features: Mapping[str, Any] | None = None,
    row_name: str = "row",
    row_ids: Sequence[str | None] | None = None,
) -> dict[str, torch.Tensor]:
    """Rows with one label column per task → ``{task: tensor}``; a task whose column a row lacks is missing.

    ``known_label_columns`` maps a multilabel task to a column listing the label names that were annotated: with it the
    task column lists the positive names and labels outside ``known`` are missing rather than negative. ``features``
    (a dataset's ``Features``) turns ``ClassLabel`` ids into names (``-1`` is missing, as in ``datasets``).
    ``row_ids``: each row's place in the data set (a stream's ``"<file> row <n>"``), named in errors instead of its
    position in ``rows``.
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
                where = row_ids[i] if row_ids is not None and row_ids[i] is not None else f"{row_name} {row_offset + i}"
                values.append(task_type.encode(spec, value, where=f"column {column!r}, {where}"))
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


def _pad(tokenizer: Any, inputs: list[dict[str, Any]]) -> dict[str, Any]:
    """``tokenizer.pad``; a row whose token ids are not a flat list of integers is an error naming it (the
    tokenizer's own error names no row)."""
    try:
        return dict(tokenizer.pad(inputs, return_tensors="pt"))
    except (ValueError, TypeError) as err:
        for i, row in enumerate(inputs):
            for name, value in row.items():
                value = value.tolist() if hasattr(value, "tolist") else value
                if not isinstance(value, (list, tuple)) or not all(isinstance(v, int) for v in value):
                    raise ValueError(
                        f"model input {name!r}, batch row {i}: expected a flat list of token ids, got "
                        f"{type(value).__name__} {value!r:.80}; tokenize texts with the model's tokenizer "
                        "(hf_mtl.dataset_transform) before batching"
                    ) from err
        raise ValueError(f"the tokenizer cannot pad this batch: {err}") from err


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
            batch = _pad(self.tokenizer, inputs)
        else:
            batch = {name: _stack(name, [row[name] for row in inputs]) for name in inputs[0]}
        if any(self.label_columns.get(s.name, s.name) in row for s in self.tasks for row in rows):
            batch["labels"] = encode_labels(
                self.tasks, rows, self.label_columns, known_label_columns=self.known_label_columns, features=self.features,
                row_name="batch row",  # the data-set position is unknown here; validate_labels names it up front
                row_ids=[row.get(ROW_ID_COLUMN) for row in rows] if ROW_ID_COLUMN in rows[0] else None,  # a stream's
            )
        return batch
