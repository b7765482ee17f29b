"""Task specs and task types.

Everything that differs between task types (output size, label encoding, loss, activation, metric names,
prediction decoding) lives here, one class per type, so a new type is one new entry in ``TASK_TYPES``.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field, fields
from typing import Any, ClassVar

import torch
import torch.nn.functional as F

MISSING = -100
"""The value that marks a missing label inside tensors (Trainer counts ``labels.ne(-100)``)."""


def present_mask(labels: torch.Tensor) -> torch.Tensor:
    """True where a label exists: neither the ``-100`` sentinel nor NaN."""
    mask = labels != MISSING
    if labels.is_floating_point():
        mask &= ~torch.isnan(labels)
    return mask


def _is_number(value: Any) -> bool:
    """A real number (bools and numeric strings are not: a config typo must not pass as a value)."""
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _is_int(value: Any) -> bool:
    return _is_number(value) and float(value).is_integer()


def is_missing_value(value: Any) -> bool:
    """True for the user-facing spellings of a missing label: None or NaN (or the tensor sentinel)."""
    if value is None:
        return True
    if isinstance(value, float) and math.isnan(value):
        return True
    return isinstance(value, (int, float)) and value == MISSING


@dataclass
class TaskSpec:
    """One task of a multi-task model: what it predicts and how its head is built."""

    name: str
    type: str
    labels: list[str] | None = None
    num_outputs: int | None = None
    hidden_sizes: list[int] = field(default_factory=list)
    activation: str = "gelu"
    dropout: float = 0.0
    loss_weight: float = 1.0
    pos_weight: list[float] | None = None
    thresholds: list[float] | None = None

    def __post_init__(self) -> None:
        where = f"task {self.name!r}"
        if not isinstance(self.name, str) or not self.name.isidentifier():
            raise ValueError(f"{where}: a task name must be a non-empty identifier (letters, digits, _), got {self.name!r}")
        if self.type not in TASK_TYPES:
            raise ValueError(f"{where}: unknown task type {self.type!r}; choose one of {sorted(TASK_TYPES)}")
        if self.labels is not None:
            if not isinstance(self.labels, (list, tuple)):
                raise ValueError(f"{where}: `labels` must be a list of label names, got {self.labels!r}")
            self.labels = [str(label) for label in self.labels]
            if not self.labels:
                raise ValueError(f"{where}: `labels` is empty; give at least one label name or leave it unset")
            duplicates = sorted({lab for lab in self.labels if self.labels.count(lab) > 1})
            if duplicates:
                raise ValueError(f"{where}: duplicate label names {duplicates}")
        if self.num_outputs is not None and not _is_int(self.num_outputs):
            raise ValueError(f"{where}: num_outputs must be an integer, got {self.num_outputs!r}")
        sizes = self.hidden_sizes
        if not isinstance(sizes, (list, tuple)) or not all(_is_int(h) and h > 0 for h in sizes):
            raise ValueError(
                f"{where}: hidden_sizes must be a list of positive integers (e.g. [256]), got {self.hidden_sizes!r}"
            )
        self.hidden_sizes = [int(h) for h in self.hidden_sizes]
        if not (_is_number(self.dropout) and 0.0 <= self.dropout < 1.0):
            raise ValueError(f"{where}: dropout must be a number in [0, 1), got {self.dropout!r}")
        from .heads import ACTIVATIONS  # the allow-list: a config can never name arbitrary code

        if self.activation not in ACTIVATIONS:
            raise ValueError(
                f"{where}: unknown head activation {self.activation!r}; choose one of {sorted(ACTIVATIONS)}"
            )
        if not (_is_number(self.loss_weight) and self.loss_weight >= 0 and math.isfinite(self.loss_weight)):
            raise ValueError(f"{where}: loss_weight must be a finite number >= 0, got {self.loss_weight!r}")
        TASK_TYPES[self.type].validate(self)
        n = self.output_size
        for attr in ("pos_weight", "thresholds"):
            value = getattr(self, attr)
            if value is not None:
                if not isinstance(value, (list, tuple)) or not all(_is_number(v) for v in value):
                    raise ValueError(f"{where}: {attr} must be a list of {n} numbers (one per output), got {value!r}")
                value = [float(v) for v in value]
                if len(value) != n:
                    raise ValueError(f"{where}: {attr} has {len(value)} entries but the task has {n} outputs")
                setattr(self, attr, value)
        if self.pos_weight is not None and any(not (w > 0 and math.isfinite(w)) for w in self.pos_weight):
            raise ValueError(f"{where}: pos_weight entries must be finite and > 0, got {self.pos_weight}")
        if self.thresholds is not None and any(not 0.0 <= t <= 1.0 for t in self.thresholds):
            raise ValueError(f"{where}: thresholds are probabilities and must lie in [0, 1], got {self.thresholds}")

    @property
    def task_type(self) -> TaskType:
        return TASK_TYPES[self.type]

    @property
    def output_size(self) -> int:
        return self.task_type.output_size(self)

    @property
    def label_names(self) -> list[str]:
        """Names of the outputs, for metrics, cards and predictions."""
        if self.labels is not None:
            return list(self.labels)
        return [f"{self.name}_{i}" for i in range(self.output_size)]

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any] | TaskSpec) -> TaskSpec:
        if isinstance(data, TaskSpec):
            return data
        if not isinstance(data, Mapping):
            raise ValueError(
                f"a task spec must be a mapping like {{'name': ..., 'type': ..., 'labels': [...]}}, got {data!r}"
            )
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(data) - known)
        if unknown:
            raise ValueError(f"task {data.get('name', '?')!r}: unknown keys {unknown}; known keys are {sorted(known)}")
        absent = [key for key in ("name", "type") if key not in data]
        if absent:
            raise ValueError(
                f"task {data.get('name', '?')!r}: missing required keys {absent} (every task needs a name and a type: "
                f"one of {sorted(TASK_TYPES)})"
            )
        return cls(**data)


class TaskType:
    """Behaviour shared by all tasks of one type. Subclasses are stateless singletons."""

    name: ClassVar[str]
    metric_names: ClassVar[tuple[str, ...]]
    label_dtype: ClassVar[torch.dtype] = torch.float32
    uses_thresholds: ClassVar[bool] = False
    """Whether predictions compare probabilities with `TaskSpec.thresholds` (for cards and threshold tuning)."""
    missing_label_rule: ClassVar[str] = "missing labels are masked out of the loss"
    """How a missing label is handled, in words, for the model card."""
    decision_rule: ClassVar[str] = "see `TaskType.decode`"
    """How outputs become a prediction, in words, for the model card."""

    def validate(self, spec: TaskSpec) -> None:
        """Raise ValueError when the spec cannot describe a task of this type."""

    def output_size(self, spec: TaskSpec) -> int:
        raise NotImplementedError

    def loss_terms(self, spec: TaskSpec, logits: torch.Tensor, labels: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Return (sum of per-label losses over present labels, number of present labels)."""
        raise NotImplementedError

    def encode(self, spec: TaskSpec, value: Any, where: str) -> Any:
        """A user-facing label (None/NaN for missing, names, numbers) → what goes into the label tensor.

        ``where`` names the column and row for error messages.
        """
        raise NotImplementedError

    def missing(self, spec: TaskSpec) -> Any:
        """The tensor entry of a sample whose label for this task is missing."""
        return [float(MISSING)] * spec.output_size

    def count_present(self, labels: torch.Tensor) -> torch.Tensor:
        return present_mask(labels).sum()

    def activate(self, spec: TaskSpec, logits: torch.Tensor) -> torch.Tensor:
        """Logits → probabilities (or values, for regression)."""
        raise NotImplementedError

    def decode(self, spec: TaskSpec, scores: torch.Tensor, top_k: int = 1) -> Any:
        """One sample's activated outputs → a user-facing prediction."""
        raise NotImplementedError


class _BinaryLike(TaskType):
    """Sigmoid outputs trained with binary cross-entropy, one logit per label (never a softmax across labels)."""

    metric_names = ("roc_auc", "average_precision", "f1", "accuracy")
    uses_thresholds = True

    def loss_terms(self, spec, logits, labels):
        labels = labels.reshape(logits.shape)
        mask = present_mask(labels)
        target = torch.where(mask, labels, torch.zeros_like(labels)).to(logits.dtype)
        pos_weight = None
        if spec.pos_weight is not None:
            pos_weight = torch.tensor(spec.pos_weight, dtype=logits.dtype, device=logits.device)
        per_label = F.binary_cross_entropy_with_logits(logits, target, pos_weight=pos_weight, reduction="none")
        return torch.where(mask, per_label, torch.zeros_like(per_label)).sum(), mask.sum()

    def activate(self, spec, logits):
        return torch.sigmoid(logits)

    @staticmethod
    def _binary_value(spec: TaskSpec, value: Any, where: str) -> float:
        if is_missing_value(value):
            return float(MISSING)
        if isinstance(value, bool):
            return float(value)
        if isinstance(value, (int, float)) and value in (0, 1):
            return float(value)
        raise ValueError(f"task {spec.name!r}, {where}: label value {value!r} is not 0, 1, True, False or None")

    def _thresholds(self, spec: TaskSpec) -> list[float]:
        return spec.thresholds if spec.thresholds is not None else [0.5] * spec.output_size


class MultiLabelTask(_BinaryLike):
    name = "multilabel"
    missing_label_rule = (
        "masked per label: a sample may give some labels and leave others out (None/NaN); absent labels add nothing "
        "to the loss, which is normalised by the number of present labels in the effective batch"
    )
    decision_rule = "sigmoid per label; a label is predicted when its probability reaches its threshold"

    def validate(self, spec):
        if spec.labels is None and (spec.num_outputs is None or spec.num_outputs < 1):
            raise ValueError(f"task {spec.name!r}: a multilabel task needs `labels` (one name per label)")
        if spec.labels is not None and spec.num_outputs not in (None, len(spec.labels)):
            raise ValueError(f"task {spec.name!r}: num_outputs={spec.num_outputs} disagrees with {len(spec.labels)} labels")

    def output_size(self, spec):
        return len(spec.labels) if spec.labels is not None else int(spec.num_outputs)

    def encode(self, spec, value, where):
        n, names = spec.output_size, spec.label_names
        if is_missing_value(value):
            return [float(MISSING)] * n
        if hasattr(value, "tolist"):
            value = value.tolist()
        if isinstance(value, dict) and "positive" in value:
            # {"positive": names, "known": names}: labels outside `known` are missing, not negative
            positive, known = list(value["positive"] or []), value.get("known")
            known = names if known is None else list(known)
            unknown = sorted({str(v) for v in [*positive, *known]} - set(names))
            if unknown:
                raise ValueError(f"task {spec.name!r}, {where}: unknown label names {unknown}; known labels: {names}")
            return [1.0 if name in positive else 0.0 if name in known else float(MISSING) for name in names]
        if not isinstance(value, (list, tuple)):
            raise ValueError(
                f"task {spec.name!r}, {where}: a multilabel label must be a list of {n} values (0/1/None) "
                f"or a list of positive label names, got {value!r}"
            )
        if value and all(isinstance(v, str) for v in value):
            unknown = sorted(set(value) - set(names))
            if unknown:
                raise ValueError(f"task {spec.name!r}, {where}: unknown label names {unknown}; known labels: {names}")
            return [1.0 if name in value else 0.0 for name in names]
        if len(value) != n:
            raise ValueError(
                f"task {spec.name!r}, {where}: label list has {len(value)} entries but the task has {n} labels {names}"
            )
        return [self._binary_value(spec, v, where) for v in value]

    def decode(self, spec, scores, top_k=1):
        names, thresholds = spec.label_names, self._thresholds(spec)
        return {
            "labels": [n for n, s, t in zip(names, scores.tolist(), thresholds) if s >= t],
            "scores": dict(zip(names, scores.tolist())),
        }


class BinaryTask(_BinaryLike):
    name = "binary"
    missing_label_rule = (
        "masked per sample: samples without this label (None/NaN) add nothing to the loss, which is normalised by the "
        "number of labelled samples in the effective batch"
    )
    decision_rule = "sigmoid; the positive label is predicted when the probability reaches the threshold"

    def validate(self, spec):
        if spec.labels is not None and len(spec.labels) not in (1, 2):
            raise ValueError(
                f"task {spec.name!r}: a binary task has one output; give `labels` as [positive] or [negative, positive]"
            )
        if spec.num_outputs not in (None, 1):
            raise ValueError(f"task {spec.name!r}: a binary task has exactly one output, got num_outputs={spec.num_outputs}")

    def output_size(self, spec):
        return 1

    def encode(self, spec, value, where):
        if isinstance(value, str):
            labels = spec.labels or []
            if len(labels) == 2 and value in labels:
                return float(labels.index(value))
            if len(labels) == 1 and value == labels[0]:
                return 1.0
            raise ValueError(f"task {spec.name!r}, {where}: unknown label name {value!r}; known labels: {labels}")
        return self._binary_value(spec, value, where)

    def missing(self, spec):
        return float(MISSING)

    def decode(self, spec, scores, top_k=1):
        labels = spec.labels or ["negative", "positive"]
        negative, positive = (labels[0], labels[-1]) if len(labels) == 2 else (f"not_{labels[0]}", labels[0])
        score = float(scores.reshape(-1)[0])
        return {"label": positive if score >= self._thresholds(spec)[0] else negative, "score": score}


class MultiClassTask(TaskType):
    name = "multiclass"
    metric_names = ("accuracy", "macro_f1")
    label_dtype = torch.long
    missing_label_rule = (
        "masked per sample: samples without a class (None/NaN) add nothing to the cross-entropy, which is normalised "
        "by the number of labelled samples in the effective batch"
    )
    decision_rule = "softmax over the classes; the top-k classes with their probabilities"

    def validate(self, spec):
        if spec.labels is None and (spec.num_outputs is None or spec.num_outputs < 2):
            raise ValueError(f"task {spec.name!r}: a multiclass task needs `labels` with at least 2 class names")
        if spec.labels is not None and len(spec.labels) < 2:
            raise ValueError(f"task {spec.name!r}: a multiclass task needs at least 2 classes, got {spec.labels}")
        if spec.labels is not None and spec.num_outputs not in (None, len(spec.labels)):
            raise ValueError(f"task {spec.name!r}: num_outputs={spec.num_outputs} disagrees with {len(spec.labels)} labels")
        if spec.pos_weight is not None:
            raise ValueError(f"task {spec.name!r}: pos_weight applies to multilabel/binary tasks, not multiclass")

    def output_size(self, spec):
        return len(spec.labels) if spec.labels is not None else int(spec.num_outputs)

    def encode(self, spec, value, where):
        names = spec.label_names
        if is_missing_value(value):
            return MISSING
        if isinstance(value, str):
            if value not in names:
                raise ValueError(f"task {spec.name!r}, {where}: unknown class {value!r}; known classes: {names}")
            return names.index(value)
        if isinstance(value, float) and value.is_integer():
            value = int(value)
        if isinstance(value, int) and not isinstance(value, bool) and 0 <= value < len(names):
            return value
        raise ValueError(
            f"task {spec.name!r}, {where}: class {value!r} is neither a class name nor an id in [0, {len(names)})"
        )

    def missing(self, spec):
        return MISSING

    def loss_terms(self, spec, logits, labels):
        labels = labels.reshape(-1)
        mask = present_mask(labels)
        target = torch.where(mask, labels, torch.full_like(labels, MISSING)).long()
        total = F.cross_entropy(logits.float(), target, ignore_index=MISSING, reduction="sum")
        return total.to(logits.dtype), mask.sum()

    def activate(self, spec, logits):
        return torch.softmax(logits.float(), dim=-1)

    def decode(self, spec, scores, top_k=1):
        k = min(top_k, scores.numel())
        values, indices = scores.topk(k)
        names = spec.label_names
        top = [{"label": names[i], "score": float(v)} for v, i in zip(values.tolist(), indices.tolist())]
        return {"label": top[0]["label"], "score": top[0]["score"], "top_k": top}


class RegressionTask(TaskType):
    name = "regression"
    metric_names = ("mae", "rmse")
    missing_label_rule = (
        "masked per value: missing targets (None/NaN) add nothing to the squared error, which is normalised by the "
        "number of present values in the effective batch"
    )
    decision_rule = "the raw output value(s)"

    def validate(self, spec):
        if spec.labels is not None and spec.num_outputs not in (None, len(spec.labels)):
            raise ValueError(f"task {spec.name!r}: num_outputs={spec.num_outputs} disagrees with {len(spec.labels)} labels")
        if spec.num_outputs is not None and spec.num_outputs < 1:
            raise ValueError(f"task {spec.name!r}: num_outputs must be >= 1")
        if spec.pos_weight is not None or spec.thresholds is not None:
            raise ValueError(f"task {spec.name!r}: pos_weight/thresholds do not apply to regression")

    def output_size(self, spec):
        if spec.labels is not None:
            return len(spec.labels)
        return int(spec.num_outputs or 1)

    def encode(self, spec, value, where):
        n = spec.output_size
        if value is None or (isinstance(value, float) and math.isnan(value)):
            return self.missing(spec)
        if hasattr(value, "tolist"):
            value = value.tolist()
        values = value if isinstance(value, (list, tuple)) else [value]
        if len(values) != n:
            raise ValueError(f"task {spec.name!r}, {where}: expected {n} regression values, got {len(values)}")
        out = []
        for v in values:
            if _is_number(v) and v == MISSING:  # would silently become "missing" inside the label tensor
                raise ValueError(
                    f"task {spec.name!r}, {where}: regression value {v!r} is hf_mtl's missing-label marker inside "
                    "tensors, so it would be dropped as missing; write None/NaN for a missing value, and shift or "
                    "standardise the targets if -100 is a real value"
                )
            if is_missing_value(v):
                out.append(float(MISSING))
            elif _is_number(v) and math.isfinite(v):
                out.append(float(v))
            else:
                raise ValueError(f"task {spec.name!r}, {where}: regression value {v!r} is not a finite number or None")
        return out if n > 1 else out[0]

    def missing(self, spec):
        n = spec.output_size
        return [float(MISSING)] * n if n > 1 else float(MISSING)

    def loss_terms(self, spec, logits, labels):
        labels = labels.reshape(logits.shape)
        mask = present_mask(labels)
        target = torch.where(mask, labels, torch.zeros_like(labels)).to(logits.dtype)
        per_value = (logits - target) ** 2
        return torch.where(mask, per_value, torch.zeros_like(per_value)).sum(), mask.sum()

    def activate(self, spec, logits):
        return logits

    def decode(self, spec, scores, top_k=1):
        values = scores.reshape(-1).tolist()
        if spec.output_size == 1:
            return {"value": values[0]}
        return {"values": dict(zip(spec.label_names, values))}


TASK_TYPES: dict[str, TaskType] = {cls.name: cls() for cls in (MultiLabelTask, BinaryTask, MultiClassTask, RegressionTask)}
