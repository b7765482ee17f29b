"""Batching: model inputs are stacked (or padded by a tokenizer), labels become ``{task: tensor}`` with -100 missing."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import torch

from .tasks import TaskSpec

MODEL_INPUT_NAMES = ("pixel_values", "input_ids", "attention_mask", "token_type_ids", "input_values", "features")


def encode_labels(
    specs: Sequence[TaskSpec],
    rows: Sequence[Mapping[str, Any]],
    label_columns: Mapping[str, str] | None = None,
    row_offset: int = 0,
) -> dict[str, torch.Tensor]:
    """Rows with one label column per task → ``{task: tensor}``; a task whose column a row lacks is missing."""
    label_columns = dict(label_columns or {})
    labels: dict[str, torch.Tensor] = {}
    for spec in specs:
        column = label_columns.get(spec.name, spec.name)
        task_type = spec.task_type
        values = []
        for i, row in enumerate(rows):
            if column in row:
                values.append(task_type.encode(spec, row[column], where=f"column {column!r}, row {row_offset + i}"))
            else:
                values.append(task_type.missing(spec))
        labels[spec.name] = torch.tensor(values, dtype=task_type.label_dtype)
    return labels


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
    """

    def __init__(
        self,
        tasks: Sequence[TaskSpec],
        tokenizer: Any = None,
        label_columns: Mapping[str, str] | None = None,
        input_names: Sequence[str] = MODEL_INPUT_NAMES,
    ) -> None:
        self.tasks = list(tasks)
        self.tokenizer = tokenizer
        self.label_columns = dict(label_columns or {})
        self.input_names = tuple(input_names)

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
            batch["labels"] = encode_labels(self.tasks, rows, self.label_columns)
        return batch
