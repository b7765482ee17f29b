"""Task specs from a dataset's features: a config can be made straight from a ``datasets.Dataset``."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from ..tasks import TASK_TYPES, TaskSpec
from .collator import _class_label


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
