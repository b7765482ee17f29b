"""Task specs and task types.

Everything that differs between task types lives here, one class per type: output size and output layer, label
encoding (None/NaN → -100), loss, activation, decoding for ``predict``, metric computation and names, threshold and
pos_weight eligibility, chance baselines and what the model card says. A new type is one class plus its entry in
``TASK_TYPES`` (and, when its metrics differ from every existing type's, its local evaluate module under
``hf_mtl/metrics/<name>/``). Nothing outside this module compares a task type string.
"""

from __future__ import annotations

import collections
import math
import re
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field, fields
from typing import Any, ClassVar

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

MISSING = -100
"""The value that marks a missing label inside tensors (Trainer counts ``labels.ne(-100)``)."""

HEAD_ACTIVATIONS: dict[str, type[nn.Module]] = {
    "gelu": nn.GELU,
    "relu": nn.ReLU,
    "silu": nn.SiLU,
    "tanh": nn.Tanh,
    "identity": nn.Identity,
}
"""The allow-list of hidden-layer activations of a task head: a config can never name arbitrary code."""
TARGET_STATISTICS = ("target_mean", "target_std", "target_median")
"""TaskSpec fields of a standardised regression task: statistics of its present training targets, per output."""



def present_mask(labels: Any) -> Any:
    """True where a label exists: neither the ``-100`` sentinel nor NaN (a tensor in, a tensor out; else numpy)."""
    if isinstance(labels, torch.Tensor):
        mask = labels != MISSING
        if labels.is_floating_point():
            mask &= ~torch.isnan(labels)
        return mask
    labels = np.asarray(labels, dtype=np.float64)
    return ~np.isnan(labels) & (labels != MISSING)


def _is_number(value: Any) -> bool:
    """A real number (bools and numeric strings are not: a config typo must not pass as a value)."""
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _is_int(value: Any) -> bool:
    return _is_number(value) and float(value).is_integer()


def integer_named(names: list[str] | None) -> bool:
    """True when some label name spells an integer (``labels: [1, 2, 3]``): integer data values are then read as
    label *names*, never as class ids, so ``1`` means the label named ``"1"`` (README, "Labels that are integers")."""
    return any(re.fullmatch(r"[+-]?\d+", name) for name in names or ())


def _integer_value(value: Any) -> int | None:
    """An int (or an integral float) as an int; anything else (bools, strings, 1.5) is None."""
    if _is_number(value) and math.isfinite(value) and float(value).is_integer():
        return int(value)
    return None


def check_unique_metric_keys(specs: list[TaskSpec]) -> None:
    """Every logged key (``<task>_<label>_<metric>``, aggregates, ``loss_<task>``) belongs to one thing only.

    Otherwise one value silently overwrites another: a label named ``macro`` would make ``<task>_macro_f1`` that
    label's F1, labels ``a b`` and ``a/b`` share ``<task>_a_b_f1``, and task ``tags_a`` beside task ``tags`` with label
    ``a`` share ``tags_a_f1``. Refused when the config is built, naming both owners of the key.
    """
    owners: dict[str, str] = {}
    for spec in specs:
        for key, owner in spec.task_type.metric_keys(spec):
            if key in owners and owners[key] != owner:
                raise ValueError(
                    f"metric key {key!r} would be reported for both {owners[key]} and {owner}, so one would overwrite "
                    "the other in logs, metric_for_best_model and the card; rename the label or the task"
                )
            owners[key] = owner


def is_missing_value(value: Any) -> bool:
    """True for the user-facing spellings of a missing label: None or NaN (or the tensor sentinel)."""
    if value is None:
        return True
    if isinstance(value, float) and math.isnan(value):
        return True
    return isinstance(value, (int, float)) and value == MISSING


@dataclass
class TaskSpec:
    """One task of a multi-task model: what it predicts and how its head is built (an entry of a recipe's ``tasks:``).

    Args:
        name (`str`): an identifier; also the default dataset column of its labels and the prefix of its metrics.
        type (`str`): one of ``TASK_TYPES``: `multilabel` (a sigmoid per label), `binary` (one sigmoid), `multiclass`
            (softmax over classes), `ordinal` (ordered classes, CORAL: K-1 rank-consistent logits) or `regression`.
        labels (`list[str]`, *optional*): label names (multilabel), class names (multiclass; lowest to highest for
            ordinal), `[positive]` or `[negative, positive]` (binary; unset: `[not_<task>, <task>]`), output names
            (regression; unset: the task's name for one output, `<task>_<i>` for several).
        num_outputs (`int`, *optional*): the number of outputs when `labels` is not given (ordinal: K-1 for K classes).
        hidden_sizes (`list[int]`): widths of the head's hidden layers; empty: one linear (or CORAL) layer.
        activation (`str`): hidden-layer activation, one of ``HEAD_ACTIVATIONS``.
        dropout (`float`): dropout before each head layer, in [0, 1).
        loss_weight (`float`): the task's weight in the summed loss (>= 0).
        pos_weight (`list[float]`, *optional*): per-output positive weight of the binary cross-entropy (types with
            ``uses_pos_weight``: multilabel, binary); see ``hf_mtl.balancing.compute_pos_weight``.
        thresholds (`list[float]`, *optional*): per-output decision thresholds in [0, 1] (types with
            ``uses_thresholds``: multilabel, binary); default 0.5, tuned by ``MultiTaskTrainer.tune_thresholds``.

    In YAML::

        tasks:
          - {name: tags, type: multilabel, labels: [red, round, soft]}
          - {name: severity, type: ordinal, labels: [none, mild, moderate, severe]}
          - {name: price, type: regression, hidden_sizes: [64], loss_weight: 0.5}
    """

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
    target_mean: list[float] | None = None
    target_std: list[float] | None = None
    target_median: list[float] | None = None

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
            counts = collections.Counter(self.labels)  # (list.count per label is quadratic: 10k labels, 1e8 steps)
            duplicates = sorted(lab for lab, count in counts.items() if count > 1)
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
        if self.activation not in HEAD_ACTIVATIONS:
            raise ValueError(
                f"{where}: unknown head activation {self.activation!r}; choose one of {sorted(HEAD_ACTIVATIONS)}"
            )
        if not (_is_number(self.loss_weight) and self.loss_weight >= 0 and math.isfinite(self.loss_weight)):
            raise ValueError(f"{where}: loss_weight must be a finite number >= 0, got {self.loss_weight!r}")
        TASK_TYPES[self.type].validate(self)
        for attr, eligible in (("pos_weight", "uses_pos_weight"), ("thresholds", "uses_thresholds")):
            if getattr(self, attr) is not None and not getattr(self.task_type, eligible):
                kinds = sorted(name for name, kind in TASK_TYPES.items() if getattr(kind, eligible))
                raise ValueError(
                    f"{where}: pos_weight/thresholds do not apply to {self.type} tasks ({attr} is for {kinds} tasks)"
                )
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
        for attr in TARGET_STATISTICS:
            value = getattr(self, attr)
            if value is None:
                continue
            if not self.task_type.standardizes_targets:
                raise ValueError(f"{where}: {attr} applies to regression tasks only, not {self.type}")
            if not isinstance(value, (list, tuple)) or len(value) != n or not all(
                _is_number(v) and math.isfinite(v) for v in value
            ):
                raise ValueError(f"{where}: {attr} must be a list of {n} finite numbers (one per output), got {value!r}")
            setattr(self, attr, [float(v) for v in value])
        if (self.target_mean is None) != (self.target_std is None):
            raise ValueError(f"{where}: give target_mean and target_std together (or neither)")
        if self.target_std is not None and any(s <= 0 for s in self.target_std):
            raise ValueError(f"{where}: target_std entries must be > 0, got {self.target_std}")
        check_unique_metric_keys([self])

    @property
    def task_type(self) -> TaskType:
        return TASK_TYPES[self.type]

    @property
    def output_size(self) -> int:
        return self.task_type.output_size(self)

    @property
    def label_names(self) -> list[str]:
        """Names of the labels (classes, for multiclass / ordinal; a binary task's two outcomes), for metrics, cards
        and predictions: one name per outcome everywhere (`TaskType.label_names`)."""
        return self.task_type.label_names(self)

    @property
    def output_names(self) -> list[str]:
        """One name per output column, for thresholds, pos_weight and per-output metrics."""
        return self.task_type.output_names(self)

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


def as_task_specs(source: Any) -> list[TaskSpec]:
    """Task specs from a list of specs/dicts, a config or a model (read at call time: thresholds may change)."""
    if hasattr(source, "task_specs"):
        return list(source.task_specs)
    if hasattr(source, "config") and hasattr(source.config, "task_specs"):
        return list(source.config.task_specs)
    return [TaskSpec.from_dict(dict(s) if isinstance(s, Mapping) else s) for s in source]


def metric_key(name: str) -> str:
    """A label name as a metric-key fragment (logging backends dislike spaces and slashes)."""
    return re.sub(r"[^0-9A-Za-z_.-]+", "_", str(name)).strip("_") or "label"


def label_index(spec: TaskSpec) -> dict[str, int]:
    """``{label name: position}`` of the spec's labels, built once per labels list: a lookup per label value is O(1),
    so encoding a row costs O(labels), not O(labels²) (10,000+ label tasks)."""
    cached = spec.__dict__.get("_label_index")
    names = spec.label_names
    if cached is None or cached[0] is not spec.labels or len(cached[1]) != len(names):
        cached = (spec.labels, {name: i for i, name in enumerate(names)})
        spec.__dict__["_label_index"] = cached
    return cached[1]


def names_preview(names: Sequence[str], limit: int = 20) -> str:
    """A label list for an error message: in full when short, else its first names and how many there are."""
    names = list(names)
    return str(names) if len(names) <= limit else f"{names[:limit]} ... ({len(names)} labels)"


def _class_index(spec: TaskSpec, value: Any, where: str) -> int:
    """A class name or id → its id (None/NaN → ``MISSING``): the label rules of every class-valued task type."""
    names = spec.label_names
    index = label_index(spec)
    if is_missing_value(value):
        return MISSING
    if isinstance(value, str):
        if value not in index:
            raise ValueError(f"task {spec.name!r}, {where}: unknown class {value!r}; known classes: "
                             f"{names_preview(names)}")
        return index[value]
    if integer_named(spec.labels) and _integer_value(value) is not None:
        if str(_integer_value(value)) in index:
            return index[str(_integer_value(value))]
        raise ValueError(
            f"task {spec.name!r}, {where}: class {value!r} is not one of the label names {names_preview(names)}; the label names "
            "are integers, so integer values are read as names, never as class ids (write the label name)"
        )
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    if isinstance(value, int) and not isinstance(value, bool) and 0 <= value < len(names):
        return value
    raise ValueError(
        f"task {spec.name!r}, {where}: class {value!r} is neither a class name nor an id in [0, {len(names)})"
    )


def _validate_classes(spec: TaskSpec, kind: str, num_outputs: int | None) -> None:
    """Class-valued tasks: at least 2 class names, and ``num_outputs`` (when given) consistent with them."""
    if spec.labels is None and (spec.num_outputs is None or num_outputs is None or num_outputs < 2):
        raise ValueError(f"task {spec.name!r}: a {kind} task needs `labels` with at least 2 class names")
    if spec.labels is not None and len(spec.labels) < 2:
        raise ValueError(f"task {spec.name!r}: a {kind} task needs at least 2 classes, got {spec.labels}")
    if spec.labels is not None and num_outputs not in (None, len(spec.labels)):
        raise ValueError(f"task {spec.name!r}: num_outputs={spec.num_outputs} disagrees with {len(spec.labels)} labels")


class TaskType:
    """Behaviour shared by all tasks of one type. Subclasses are stateless singletons.

    Arrays handed to the metric methods are numpy: ``scores`` are activated outputs (probabilities, or values for
    regression) ``(N, output_size)``, ``labels`` the encoded labels with ``-100``/NaN for missing ones.
    """

    name: ClassVar[str]
    metric_names: ClassVar[tuple[str, ...]]
    """The task-level metrics, reported as ``<task>_<metric>`` (multilabel: ``<task>_macro_<m>``/``_micro_<m>``)."""
    metric_module: ClassVar[str]
    """The local evaluate module (``hf_mtl/metrics/<metric_module>/``) that scores this type."""
    per_label_metric_names: ClassVar[tuple[str, ...]] = ()
    """The per-label metrics reported as ``<task>_<label>_<metric>`` (empty: none)."""
    per_label_table: ClassVar[bool] = False
    """Whether the CLI prints a per-label table for this type (one row per label or class)."""
    summary_prefix: ClassVar[str] = ""
    """Prefix of the metrics on a task's one-line summary (``macro_`` for multilabel)."""
    label_dtype: ClassVar[torch.dtype] = torch.float32
    uses_thresholds: ClassVar[bool] = False
    """Whether predictions compare probabilities with `TaskSpec.thresholds` (for cards and threshold tuning)."""
    uses_pos_weight: ClassVar[bool] = False
    """Whether the loss takes a per-output `TaskSpec.pos_weight` (counted from the data by ``compute_pos_weight``)."""
    chance_baseline: ClassVar[str | None] = None
    """Name of the per-label chance baseline that [`chance_scores`] gives (None: no baseline)."""
    missing_label_rule: ClassVar[str] = "missing labels are masked out of the loss"
    """How a missing label is handled, in words, for the model card."""
    decision_rule: ClassVar[str] = "see `TaskType.decode`"
    """How outputs become a prediction, in words, for the model card."""
    prediction_text: ClassVar[str] = ""
    """What ``predict`` returns for a task of this type, in words, for the model card's usage section."""
    activation_name: ClassVar[str] = "sigmoid"
    """The function `activate` applies, in transformers' ``function_to_apply`` words."""
    main_metric: ClassVar[str]
    """The task-level metric key (as in ``<task>_<key>``) that stage and checkpoint selection compare."""
    greater_is_better: ClassVar[bool] = True
    baseline_metric_names: ClassVar[tuple[str, ...]] = ()
    """Metrics of a trivial predictor reported beside the model's (e.g. a constant for regression)."""
    standardizes_targets: ClassVar[bool] = False
    """Whether targets are standardised with training statistics (``TaskSpec.target_mean`` / ``target_std``)."""

    def validate(self, spec: TaskSpec) -> None:
        """Raise ValueError when the spec cannot describe a task of this type."""

    def metric_keys(self, spec: TaskSpec) -> list[tuple[str, str]]:
        """Every key this task logs (metrics without the ``eval_`` prefix, and its training loss), with what it
        measures; a key listed twice is a collision (see `check_unique_metric_keys`)."""
        keys = [(f"loss_{spec.name}", f"the training loss of task {spec.name!r}")]
        keys += [(f"{spec.name}_{m}", f"{m.replace('_', ' ', 1) if m.startswith(('macro_', 'micro_')) else m} of task "
                  f"{spec.name!r}") for m in self.task_metric_names(spec)]
        keys += [(f"{spec.name}_{m}", f"{m} (a trivial predictor) of task {spec.name!r}") for m in self.baseline_metric_names]
        if self.reports_per_label(spec):
            keys += [
                (f"{spec.name}_{metric_key(label)}_{m}", f"{m} of label {label!r} of task {spec.name!r}")
                for label in self.per_label_names(spec)
                for m in self.per_label_metric_names
            ]
        return keys

    def task_metric_names(self, spec: TaskSpec) -> list[str]:
        """The task-level metric suffixes `task_metrics` reports (``<task>_<suffix>``)."""
        return list(self.metric_names)

    def per_label_names(self, spec: TaskSpec) -> list[str]:
        """The labels of the per-label table (``<task>_<label>_<metric>``)."""
        return spec.label_names

    def output_size(self, spec: TaskSpec) -> int:
        raise NotImplementedError

    def num_labels(self, spec: TaskSpec) -> int:
        """How many label names the task has (classes for class-valued types; else one per output)."""
        return self.output_size(spec)

    def label_names(self, spec: TaskSpec) -> list[str]:
        """The given `labels`, else ``<task>_<i>`` for each of `num_labels`."""
        if spec.labels is not None:
            return list(spec.labels)
        return [f"{spec.name}_{i}" for i in range(self.num_labels(spec))]

    def output_names(self, spec: TaskSpec) -> list[str]:
        """One name per output column."""
        return spec.label_names

    def class_label_problem(self, names: list[str], is_list: bool) -> str | None:
        """Why a ``datasets.ClassLabel`` column (``is_list``: a sequence of them) cannot hold this type's labels."""
        return None

    def output_layer(self, in_features: int, spec: TaskSpec) -> nn.Module:
        """The head's last layer: features → ``output_size`` logits."""
        return nn.Linear(in_features, spec.output_size)

    def loss_terms(
        self, spec: TaskSpec, logits: torch.Tensor, labels: torch.Tensor, label_smoothing: float = 0.0
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Return (sum of per-label losses over present labels, number of present labels).

        ``label_smoothing`` (``TrainingArguments.label_smoothing_factor``) ε: class targets become ``1 - ε`` plus
        ``ε / n`` over the n classes (multiclass), 0/1 targets become ``ε/2`` / ``1 - ε/2`` (binary, multilabel and
        ordinal's cumulative targets: the same rule with two classes per target); regression ignores it.
        """
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

    # -- metrics ---------------------------------------------------------------------------------------------------
    def metric_inputs(self, spec: TaskSpec, scores: np.ndarray, labels: np.ndarray) -> dict[str, Any]:
        """Keyword arguments of ``compute`` of this type's evaluate module."""
        raise NotImplementedError

    def task_metrics(self, spec: TaskSpec, result: Mapping[str, Any]) -> dict[str, float | None]:
        """The module's result → task-level metrics ``{metric: value}`` (the task prefix is added by the caller)."""
        return {m: result[m] for m in self.metric_names}

    def reports_per_label(self, spec: TaskSpec) -> bool:
        return bool(self.per_label_metric_names)

    def compute_metrics(
        self, spec: TaskSpec, metric: Any, scores: np.ndarray, labels: np.ndarray, per_label: bool = True
    ) -> tuple[dict[str, float | None], dict[str, dict[str, float | None]]]:
        """``({<task>_<metric>: value}, {label: {metric: value}})`` with ``metric`` this type's loaded evaluate module.

        ``per_label=False`` keeps the per-label keys out of the flat dict (they stay in the returned table).
        """
        result = metric.compute(**self.metric_inputs(spec, scores, labels))
        table = result["per_label"]
        flat = {f"{spec.name}_{m}": v for m, v in self.task_metrics(spec, result).items()}
        if per_label and self.reports_per_label(spec):
            for label, values in table.items():
                flat.update({f"{spec.name}_{metric_key(label)}_{m}": values[m] for m in self.per_label_metric_names})
        return flat, table

    def summary_metrics(self) -> list[str]:
        """Metric-key suffixes of a task's one-line summary."""
        return [f"{self.summary_prefix}{m}" for m in self.metric_names]

    def example_eval(self, spec: TaskSpec, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
        """``(logits, labels)`` of a tiny eval set on which every metric of the task is defined."""
        n = spec.output_size
        labels = np.array([[0.0] * n, [1.0] * n]).reshape(2, n) if n > 1 else np.array([0.0, 1.0])
        return rng.normal(size=(2, n)), labels

    def chance_scores(self, spec: TaskSpec, labels: torch.Tensor) -> dict[str, float] | None:
        """Per-label score of a chance predictor on encoded ``labels`` (None when the type has no baseline)."""
        return None
    def baseline_metrics(self, spec: TaskSpec, labels: Any) -> dict[str, float | None]:
        """``baseline_metric_names`` → value on the present ``labels`` of an evaluation set."""
        return {}

    def main_score(self, metrics: Mapping[str, float]) -> float | None:
        """One higher-is-better number from a task's metrics (keys without the task prefix), to compare models across
        tasks: the main metric itself here; None when it is undefined on the evaluation set."""
        value = metrics.get(self.main_metric)
        return None if value is None else (float(value) if self.greater_is_better else -float(value))

    def target_statistics(self, spec: TaskSpec, labels: torch.Tensor) -> dict[str, list[float]]:
        """`TARGET_STATISTICS` of the training ``labels`` (types with ``standardizes_targets`` only)."""
        raise NotImplementedError(f"task type {self.name!r} does not standardise its targets")

    def evidence_targets(self, labels: torch.Tensor, num_outputs: int | None = None) -> torch.Tensor:
        """Label tensor → ``(N, K)`` float64 regression targets for a linear model on features (LogME), NaN where
        missing: the value per output (one-vs-rest for binary / multilabel, the raw target for regression)."""
        targets = labels.reshape(len(labels), -1).double()
        return torch.where(present_mask(targets), targets, torch.full_like(targets, float("nan")))

    # -- plots (hf_mtl.chart) ----------------------------------------------------------------------------------------
    plot_kind: ClassVar[str] = "reliability"
    """The diagnostic plot of this type's evaluation: ``reliability`` (calibration of probabilities), ``confusion``
    (classes) or ``predicted_vs_true`` (values); ``hf_mtl.chart`` draws each."""

    def metric_range(self, metric: str) -> tuple[float, float] | None:
        """The axis of a task-level metric in plots: ``(low, high)`` for a bounded score, None for an error in the
        targets' own units (plotted apart, from 0)."""
        return (0.0, 1.0)

    def plot_inputs(self, spec: TaskSpec, scores: np.ndarray, labels: np.ndarray) -> dict[str, Any]:
        """What this type's diagnostic plot needs, from activated ``scores`` and encoded ``labels`` of an evaluation
        (present labels only)."""
        raise NotImplementedError

    def metric_baselines(self, spec: TaskSpec, labels: np.ndarray) -> dict[str, float]:
        """Score of a trivial predictor on the present ``labels`` per task-level metric (the metric names of
        `task_metric_names`): chance for rankings, the best constant prediction for the others; marks in plots."""
        return {}


class _BinaryLike(TaskType):
    """Sigmoid outputs trained with binary cross-entropy, one logit per label (never a softmax across labels)."""

    metric_names = ("roc_auc", "average_precision", "f1", "accuracy")
    metric_module = "multilabel"
    uses_thresholds = True
    uses_pos_weight = True

    def loss_terms(self, spec, logits, labels, label_smoothing=0.0):
        labels = labels.reshape(logits.shape)
        mask = present_mask(labels)
        target = torch.where(mask, labels, torch.zeros_like(labels)).to(logits.dtype)
        if label_smoothing:
            target = target * (1.0 - label_smoothing) + 0.5 * label_smoothing
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

    def metric_inputs(self, spec, scores, labels):
        n = spec.output_size
        return {
            "predictions": scores.reshape(len(scores), n).tolist(),
            "references": labels.reshape(len(labels), n).tolist(),
            "thresholds": spec.thresholds,
            "label_names": spec.output_names,
        }

    # -- plots
    plot_kind = "reliability"

    def plot_inputs(self, spec, scores, labels):
        n = spec.output_size
        return {"probabilities": np.asarray(scores, dtype=np.float64).reshape(len(scores), n),
                "labels": np.asarray(labels, dtype=np.float64).reshape(len(labels), n), "names": spec.output_names}

    @staticmethod
    def _constant_scores(positives: float, total: float) -> dict[str, float]:
        """Binary metrics of trivial predictors on ``total`` present labels of which ``positives`` are positive: a
        random ranking (ROC AUC 0.5, average precision = prevalence), the majority class (accuracy) and "always
        positive" (the best constant F1)."""
        p = positives / total
        return {"roc_auc": 0.5, "average_precision": p, "accuracy": max(p, 1.0 - p), "f1": 2 * p / (1 + p)}

    def _label_baselines(self, labels: np.ndarray) -> list[tuple[float, float, dict[str, float]]]:
        labels = np.asarray(labels, dtype=np.float64).reshape(len(labels), -1)
        out = []
        for column in labels.T:
            present = column[present_mask(column)]
            if present.size:
                positives = float(present.sum())
                out.append((positives, float(present.size), self._constant_scores(positives, float(present.size))))
        return out


class MultiLabelTask(_BinaryLike):
    name = "multilabel"
    per_label_metric_names = _BinaryLike.metric_names
    per_label_table = True
    summary_prefix = "macro_"
    chance_baseline = "chance_ap"
    main_metric = "macro_roc_auc"
    missing_label_rule = (
        "masked per label: a sample may give some labels and leave others out (None/NaN); absent labels add nothing "
        "to the loss, which is normalised by the number of present labels in the effective batch"
    )
    decision_rule = "sigmoid per label; a label is predicted when its probability reaches its threshold"
    prediction_text = "the labels over their thresholds and every label's probability"

    def validate(self, spec):
        if spec.labels is None and (spec.num_outputs is None or spec.num_outputs < 1):
            raise ValueError(f"task {spec.name!r}: a multilabel task needs `labels` (one name per label)")
        if spec.labels is not None and spec.num_outputs not in (None, len(spec.labels)):
            raise ValueError(f"task {spec.name!r}: num_outputs={spec.num_outputs} disagrees with {len(spec.labels)} labels")

    def output_size(self, spec):
        return len(spec.labels) if spec.labels is not None else int(spec.num_outputs)

    def task_metric_names(self, spec):
        return [f"{aggregate}_{m}" for aggregate in ("macro", "micro") for m in self.metric_names]

    def encode(self, spec, value, where):
        n, names = spec.output_size, spec.label_names
        if is_missing_value(value):
            return [float(MISSING)] * n
        if hasattr(value, "tolist"):
            value = value.tolist()
        index = label_index(spec)  # O(labels) per row, never O(labels²)
        if isinstance(value, dict) and "positive" in value:
            # {"positive": names, "known": names}: labels outside `known` are missing, not negative
            positive, known = list(value["positive"] or []), value.get("known")
            unknown = sorted({str(v) for v in [*positive, *(known or [])]} - index.keys())
            if unknown:
                raise ValueError(f"task {spec.name!r}, {where}: unknown label names {unknown}; known labels: "
                                 f"{names_preview(names)}")
            out = [0.0] * n if known is None else [float(MISSING)] * n
            for name in known or []:
                out[index[str(name)]] = 0.0
            for name in positive:
                out[index[str(name)]] = 1.0
            return out
        if not isinstance(value, (list, tuple)):
            raise ValueError(
                f"task {spec.name!r}, {where}: a multilabel label must be a list of {n} values (0/1/None) "
                f"or a list of positive label names, got {value!r}"
            )
        if value and all(isinstance(v, str) for v in value):
            unknown = sorted(set(value) - index.keys())
            if unknown:
                raise ValueError(f"task {spec.name!r}, {where}: unknown label names {unknown}; known labels: "
                                 f"{names_preview(names)}")
            out = [0.0] * n
            for name in value:
                out[index[name]] = 1.0
            return out
        if integer_named(spec.labels) and value and all(_integer_value(v) is not None for v in value):
            as_names = [str(_integer_value(v)) for v in value]
            is_indicator = len(value) == n and all(_integer_value(v) in (0, 1) for v in value)
            if set(as_names) <= index.keys() and is_indicator:
                raise ValueError(
                    f"task {spec.name!r}, {where}: {value!r} reads both as 0/1 values of the {n} labels and as the "
                    f"label names {as_names} (the label names {names} are integers); write the positive names as "
                    'strings, or {"positive": [...]}'
                )
            if set(as_names) <= index.keys():
                out = [0.0] * n
                for name in as_names:
                    out[index[name]] = 1.0
                return out
        if len(value) != n:
            raise ValueError(
                f"task {spec.name!r}, {where}: label list has {len(value)} entries but the task has {n} labels "
                f"{names_preview(names)}"
            )
        return [self._binary_value(spec, v, where) for v in value]

    def decode(self, spec, scores, top_k=1):
        names, thresholds = spec.label_names, self._thresholds(spec)
        return {
            "labels": [n for n, s, t in zip(names, scores.tolist(), thresholds) if s >= t],
            "scores": dict(zip(names, scores.tolist())),
        }

    def task_metrics(self, spec, result):
        return {f"{aggregate}_{m}": v for aggregate in ("macro", "micro") for m, v in result[aggregate].items()}

    def chance_scores(self, spec, labels):
        """Share of positives per label among present labels: the average precision of a random scorer."""
        mask = present_mask(labels)
        positives = (torch.where(mask, labels, torch.zeros_like(labels)) * mask).sum(0) / mask.sum(0).clamp(min=1)
        return dict(zip(spec.label_names, positives.tolist()))

    def metric_baselines(self, spec, labels):
        per_label = self._label_baselines(labels)
        if not per_label:
            return {}
        out = {f"macro_{m}": float(np.mean([b[m] for _, _, b in per_label])) for m in self.metric_names}
        positives, total = sum(p for p, _, _ in per_label), sum(t for _, t, _ in per_label)
        micro = self._constant_scores(positives, total)
        micro["accuracy"] = sum(max(p, t - p) for p, t, _ in per_label) / total  # each label's own majority
        return {**out, **{f"micro_{m}": v for m, v in micro.items()}}


class BinaryTask(_BinaryLike):
    name = "binary"
    main_metric = "roc_auc"
    missing_label_rule = (
        "masked per sample: samples without this label (None/NaN) add nothing to the loss, which is normalised by the "
        "number of labelled samples in the effective batch"
    )
    decision_rule = "sigmoid; the positive label is predicted when the probability reaches the threshold"
    prediction_text = "the predicted label, its probability (`score`) and the positive label's (`positive_score`)"

    def validate(self, spec):
        if spec.labels is not None and len(spec.labels) not in (1, 2):
            raise ValueError(
                f"task {spec.name!r}: a binary task has one output; give `labels` as [positive] or [negative, positive]"
            )
        if spec.num_outputs not in (None, 1):
            raise ValueError(f"task {spec.name!r}: a binary task has exactly one output, got num_outputs={spec.num_outputs}")
        if spec.labels is not None and len(spec.labels) == 1 and integer_named(spec.labels) and spec.labels[0] != "1":
            raise ValueError(
                f"task {spec.name!r}: the single label name {spec.labels[0]!r} is an integer, so a data value "
                f"{spec.labels[0]} would mean both that label and the 0/1 target; give both names, [negative, positive]"
            )

    def output_size(self, spec):
        return 1

    def class_label_problem(self, names, is_list):
        return "a binary task needs a ClassLabel with 2 names" if is_list or len(names) != 2 else None

    def label_names(self, spec):
        """``[negative, positive]``: the given two; ``[not_<positive>, <positive>]`` for ``labels: [positive]``; and
        ``[not_<task>, <task>]`` without labels. Metrics, the card, thresholds and ``predict`` all use these names."""
        positive = spec.labels[-1] if spec.labels else spec.name
        return list(spec.labels) if spec.labels and len(spec.labels) == 2 else [f"not_{positive}", positive]

    def output_names(self, spec):
        """The single output is named after the positive label."""
        return spec.label_names[-1:]

    def encode(self, spec, value, where):
        if isinstance(value, str):
            names = spec.label_names
            if value in names:
                return float(names.index(value))
            raise ValueError(
                f"task {spec.name!r}, {where}: unknown label name {value!r}; known labels: {names} ([negative, positive])"
            )
        labels = spec.labels or []
        if len(labels) == 2 and integer_named(labels) and _integer_value(value) is not None:
            if str(_integer_value(value)) not in labels:
                raise ValueError(
                    f"task {spec.name!r}, {where}: label {value!r} is not one of the label names {labels}; the label "
                    "names are integers, so integer values are read as names (the first is negative, the second positive)"
                )
            return float(labels.index(str(_integer_value(value))))
        return self._binary_value(spec, value, where)

    def missing(self, spec):
        return float(MISSING)

    def decode(self, spec, scores, top_k=1):
        """``score`` is the probability of the predicted label; ``positive_score`` that of the positive one."""
        negative, positive = spec.label_names
        p = float(scores.reshape(-1)[0])
        is_positive = p >= self._thresholds(spec)[0]
        return {"label": positive if is_positive else negative, "score": p if is_positive else 1.0 - p,
                "positive_score": p}

    def task_metrics(self, spec, result):
        only = next(iter(result["per_label"].values()))
        return {m: only[m] for m in self.metric_names}

    def metric_baselines(self, spec, labels):
        per_label = self._label_baselines(labels)
        return dict(per_label[0][2]) if per_label else {}


class _ClassValued(TaskType):
    """One class per sample, given by name or id (None/NaN missing); metrics on the predicted class."""

    label_dtype = torch.long
    per_label_metric_names = ("f1",)
    per_label_table = True

    def encode(self, spec, value, where):
        return _class_index(spec, value, where)

    def missing(self, spec):
        return MISSING

    def example_eval(self, spec, rng):
        k = len(spec.label_names)
        return rng.normal(size=(k, spec.output_size)), np.arange(k)

    # -- plots
    plot_kind = "confusion"

    def predicted_class_ids(self, spec: TaskSpec, scores: np.ndarray) -> np.ndarray:
        """Activated outputs ``(N, output_size)`` → the predicted class id of each sample."""
        raise NotImplementedError

    def plot_inputs(self, spec, scores, labels):
        labels = np.asarray(labels, dtype=np.float64).reshape(-1)
        mask = present_mask(labels)
        predicted = self.predicted_class_ids(spec, np.asarray(scores).reshape(len(labels), -1))
        return {"true": labels[mask].astype(np.int64), "predicted": predicted[mask], "classes": spec.label_names}

    @staticmethod
    def _present_ids(labels: np.ndarray) -> np.ndarray:
        labels = np.asarray(labels, dtype=np.float64).reshape(-1)
        return labels[present_mask(labels)].astype(np.int64)


class MultiClassTask(_ClassValued):
    name = "multiclass"
    metric_names = ("accuracy", "macro_f1")
    metric_module = "multiclass"
    activation_name = "softmax"
    main_metric = "accuracy"
    missing_label_rule = (
        "masked per sample: samples without a class (None/NaN) add nothing to the cross-entropy, which is normalised "
        "by the number of labelled samples in the effective batch"
    )
    decision_rule = "softmax over the classes; the top-k classes with their probabilities"
    prediction_text = "the top-k classes with their probabilities"

    def validate(self, spec):
        _validate_classes(spec, self.name, spec.num_outputs)

    def output_size(self, spec):
        return len(spec.labels) if spec.labels is not None else int(spec.num_outputs)

    def loss_terms(self, spec, logits, labels, label_smoothing=0.0):
        labels = labels.reshape(-1)
        mask = present_mask(labels)
        target = torch.where(mask, labels, torch.full_like(labels, MISSING)).long()
        total = F.cross_entropy(
            logits.float(), target, ignore_index=MISSING, reduction="sum", label_smoothing=float(label_smoothing)
        )
        return total.to(logits.dtype), mask.sum()

    def activate(self, spec, logits):
        return torch.softmax(logits.float(), dim=-1)

    def evidence_targets(self, labels, num_outputs=None):
        """One-hot columns, one per class; a sample without a class is missing in every column."""
        labels = labels.reshape(-1)
        mask = present_mask(labels)
        ids = torch.where(mask, labels, torch.zeros_like(labels)).long()
        if num_outputs is None:
            num_outputs = max(2, int(ids.max()) + 1) if len(ids) else 2
        if len(ids) and (int(ids.min()) < 0 or int(ids.max()) >= num_outputs):
            raise ValueError(f"class ids must lie in [0, {num_outputs}) (or be -100 for missing)")
        targets = F.one_hot(ids, num_outputs).double()
        return torch.where(mask[:, None], targets, torch.full_like(targets, float("nan")))

    def decode(self, spec, scores, top_k=1):
        k = min(top_k, scores.numel())
        values, indices = scores.topk(k)
        names = spec.label_names
        top = [{"label": names[i], "score": float(v)} for v, i in zip(values.tolist(), indices.tolist())]
        return {"label": top[0]["label"], "score": top[0]["score"], "top_k": top}

    def metric_inputs(self, spec, scores, labels):
        return {
            "predictions": scores.tolist(),
            "references": labels.reshape(-1).astype(np.int64).tolist(),
            "label_names": spec.label_names,
        }

    def predicted_class_ids(self, spec, scores):
        return np.asarray(scores).argmax(axis=1)

    def metric_baselines(self, spec, labels):
        """Always the most frequent class: its share is the accuracy; its F1 averaged over the classes present."""
        ids = self._present_ids(labels)
        if not ids.size:
            return {}
        counts = np.bincount(ids)
        share = counts.max() / ids.size
        return {"accuracy": float(share), "macro_f1": float(2 * share / (1 + share) / np.count_nonzero(counts))}


class OrdinalTask(_ClassValued):
    """Ordered classes (severity grades, star ratings): CORAL (Cao, Mirjalili & Raschka, 2020).

    K classes give K-1 logits ``f(x) + b_k`` that share one weight vector and differ by a bias; ``sigmoid`` of logit
    k is P(class > k). The loss is binary cross-entropy on the K-1 "greater than k" targets of each present sample;
    the prediction is the number of P(class > k) that reach 0.5, which orders the classes by construction.
    """

    name = "ordinal"
    metric_names = ("accuracy", "mae", "qwk")
    main_metric = "qwk"
    metric_module = "ordinal"
    missing_label_rule = (
        "masked per sample: samples without a grade (None/NaN) add nothing to the K-1 binary cross-entropies, "
        "normalised by the number of labelled samples in the effective batch"
    )
    decision_rule = (
        "CORAL: sigmoid of K-1 rank-consistent logits gives P(class > k); the predicted class is the number of "
        "those probabilities that reach 0.5"
    )
    prediction_text = "the predicted class, its probability and every class's probability"

    def validate(self, spec):
        _validate_classes(spec, self.name, None if spec.num_outputs is None else spec.num_outputs + 1)

    def output_size(self, spec):
        return len(spec.labels) - 1 if spec.labels is not None else int(spec.num_outputs)

    def num_labels(self, spec):
        return self.output_size(spec) + 1

    def output_names(self, spec):
        """Output k is P(class > class k)."""
        return [f"> {name}" for name in spec.label_names[:-1]]

    def output_layer(self, in_features, spec):
        return CoralLayer(in_features, spec.output_size)

    def evidence_targets(self, labels, num_outputs=None):
        """The K-1 "class > k" columns the loss trains on; a sample without a grade is missing in every column."""
        labels = labels.reshape(-1)
        mask = present_mask(labels)
        ids = torch.where(mask, labels, torch.zeros_like(labels)).long()
        if num_outputs is None:
            num_outputs = max(1, int(ids.max())) if len(ids) else 1
        targets = (ids[:, None] > torch.arange(num_outputs)[None, :]).double()
        return torch.where(mask[:, None], targets, torch.full_like(targets, float("nan")))

    def loss_terms(self, spec, logits, labels, label_smoothing=0.0):
        labels = labels.reshape(-1)
        mask = present_mask(labels)
        classes = torch.where(mask, labels, torch.zeros_like(labels)).long()
        ranks = torch.arange(logits.shape[-1], device=logits.device)
        levels = (classes[:, None] > ranks[None, :]).to(logits.dtype)
        if label_smoothing:  # each cumulative 0/1 target, as for binary tasks
            levels = levels * (1.0 - label_smoothing) + 0.5 * label_smoothing
        per_sample = F.binary_cross_entropy_with_logits(logits, levels, reduction="none").sum(-1)
        return torch.where(mask, per_sample, torch.zeros_like(per_sample)).sum(), mask.sum()

    def activate(self, spec, logits):
        return torch.sigmoid(logits.float())

    @staticmethod
    def predicted_classes(scores: torch.Tensor) -> torch.Tensor:
        """P(class > k) of shape ``(..., K-1)`` → the predicted class ids ``(...)``."""
        return (scores >= 0.5).sum(-1)

    @staticmethod
    def class_probabilities(scores: torch.Tensor) -> torch.Tensor:
        """P(class > k) ``(..., K-1)`` → P(class = k) ``(..., K)`` (made non-increasing in k first)."""
        above = torch.cummin(scores, dim=-1).values
        ones, zeros = torch.ones_like(above[..., :1]), torch.zeros_like(above[..., :1])
        return torch.cat([ones, above], -1) - torch.cat([above, zeros], -1)

    def decode(self, spec, scores, top_k=1):
        names = spec.label_names
        index = int(self.predicted_classes(scores))
        probabilities = self.class_probabilities(scores).tolist()
        return {"label": names[index], "score": probabilities[index], "probabilities": dict(zip(names, probabilities))}

    def metric_inputs(self, spec, scores, labels):
        predicted = self.predicted_classes(torch.as_tensor(scores).reshape(len(scores), -1))
        return {
            "predictions": predicted.tolist(),
            "references": labels.reshape(-1).astype(np.int64).tolist(),
            "label_names": spec.label_names,
        }

    def predicted_class_ids(self, spec, scores):
        return self.predicted_classes(torch.as_tensor(np.asarray(scores))).numpy()

    def metric_range(self, metric):
        return {"mae": None, "qwk": (-1.0, 1.0)}.get(metric, (0.0, 1.0))

    def metric_baselines(self, spec, labels):
        """Accuracy of the most frequent class, MAE (in classes) of the median class, kappa 0 of any constant."""
        ids = self._present_ids(labels)
        if not ids.size:
            return {}
        median = np.median(ids)
        return {"accuracy": float(np.bincount(ids).max() / ids.size), "mae": float(np.abs(ids - np.round(median)).mean()),
                "qwk": 0.0}


class CoralLayer(nn.Module):
    """``K-1`` logits ``w·x + b_k``: one weight vector shared by every threshold, one bias per threshold."""

    def __init__(self, in_features: int, num_thresholds: int) -> None:
        super().__init__()
        self.linear = nn.Linear(in_features, 1, bias=False)
        self.bias = nn.Parameter(torch.zeros(num_thresholds))

    def reset_parameters(self) -> None:
        self.linear.reset_parameters()
        nn.init.zeros_(self.bias)

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        return self.linear(features) + self.bias


class RegressionTask(TaskType):
    name = "regression"
    metric_names = ("mae", "rmse")
    metric_module = "regression"
    per_label_metric_names = ("mae", "rmse")
    activation_name = "none"
    main_metric = "mae"
    greater_is_better = False
    baseline_metric_names = ("constant_mae", "constant_rmse")
    """MAE of always predicting the training median, RMSE of always predicting the training mean."""
    standardizes_targets = True
    missing_label_rule = (
        "masked per value: missing targets (None/NaN) add nothing to the squared error, which is normalised by the "
        "number of present values in the effective batch"
    )
    decision_rule = "the raw output value(s)"
    prediction_text = "the predicted value(s)"

    def validate(self, spec):
        if spec.labels is not None and spec.num_outputs not in (None, len(spec.labels)):
            raise ValueError(f"task {spec.name!r}: num_outputs={spec.num_outputs} disagrees with {len(spec.labels)} labels")
        if spec.num_outputs is not None and spec.num_outputs < 1:
            raise ValueError(f"task {spec.name!r}: num_outputs must be >= 1")

    def output_size(self, spec):
        if spec.labels is not None:
            return len(spec.labels)
        return int(spec.num_outputs or 1)

    def label_names(self, spec):
        """The given output names; else the task's own name for one output, ``<task>_<i>`` for several."""
        if spec.labels is None and spec.output_size == 1:
            return [spec.name]
        return super().label_names(spec)

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

    def loss_terms(self, spec, logits, labels, label_smoothing=0.0):
        """Squared error on the standardised scale when the spec has training statistics (the head's raw outputs
        are then standardised values), else on the raw targets (configs written before standardisation)."""
        labels = labels.reshape(logits.shape)
        mask = present_mask(labels)
        target = torch.where(mask, labels, torch.zeros_like(labels)).to(logits.dtype)
        if spec.target_mean is not None:
            mean, std = self._statistics(spec, logits)
            target = (target - mean) / std
        per_value = (logits - target) ** 2
        return torch.where(mask, per_value, torch.zeros_like(per_value)).sum(), mask.sum()

    def activate(self, spec, logits):
        """Raw outputs → values in the targets' original units."""
        if spec.target_mean is None:
            return logits
        mean, std = self._statistics(spec, logits)
        return logits * std + mean

    @staticmethod
    def _statistics(spec: TaskSpec, like: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        def as_tensor(values: list[float]) -> torch.Tensor:
            return torch.tensor(values, dtype=like.dtype, device=like.device).reshape((1,) * (like.dim() - 1) + (-1,))

        return as_tensor(spec.target_mean), as_tensor(spec.target_std)

    def target_statistics(self, spec: TaskSpec, labels: torch.Tensor) -> dict[str, list[float]]:
        """Mean, standard deviation and median of each output's present targets (``labels``: all training labels,
        encoded). A constant or single-value output gets std 1 (nothing to rescale); an output with no present
        target keeps mean 0 / std 1, i.e. today's raw scale."""
        labels = labels.double().reshape(len(labels), -1)
        stats: dict[str, list[float]] = {attr: [] for attr in TARGET_STATISTICS}
        for j in range(labels.shape[1]):
            column = labels[:, j]
            values = column[present_mask(column)]
            mean = float(values.mean()) if values.numel() else 0.0
            std = float(values.std(unbiased=False)) if values.numel() > 1 else 0.0
            median = float(values.median()) if values.numel() else 0.0
            stats["target_mean"].append(mean)
            stats["target_std"].append(std if std > 1e-12 * max(1.0, abs(mean)) else 1.0)
            stats["target_median"].append(median)
        return stats

    def main_score(self, metrics):
        """Skill over the constant predictor, ``1 - mae / constant_mae``: 0 is no better than the training median,
        1 is exact; on the scale of the classification scores, whatever the targets' units."""
        mae, constant = metrics.get("mae"), metrics.get("constant_mae")
        if mae is None:
            return None
        return 1.0 - mae / constant if constant else -float(mae)

    def baseline_metrics(self, spec: TaskSpec, labels: Any) -> dict[str, float | None]:
        """MAE of the training median and RMSE of the training mean on the present ``labels`` (mean over outputs).

        Without training statistics the evaluation set's own median / mean stand in (an optimistic constant)."""
        labels = torch.as_tensor(labels, dtype=torch.float64).reshape(len(labels), -1)
        maes, rmses = [], []
        for j in range(labels.shape[1]):
            column = labels[:, j]
            values = column[present_mask(column)]
            if not values.numel():
                continue
            median = spec.target_median[j] if spec.target_median is not None else float(values.median())
            mean = spec.target_mean[j] if spec.target_mean is not None else float(values.mean())
            maes.append(float((values - median).abs().mean()))
            rmses.append(float(((values - mean) ** 2).mean().sqrt()))
        if not maes:
            return dict.fromkeys(self.baseline_metric_names)
        return {"constant_mae": sum(maes) / len(maes), "constant_rmse": sum(rmses) / len(rmses)}

    def decode(self, spec, scores, top_k=1):
        values = scores.reshape(-1).tolist()
        if spec.output_size == 1:
            return {"value": values[0]}
        return {"values": dict(zip(spec.label_names, values))}

    def metric_inputs(self, spec, scores, labels):
        n = spec.output_size
        shape = (len(scores), n) if n > 1 else (len(scores),)
        return {
            "predictions": scores.reshape(shape).tolist(),
            "references": labels.reshape(shape).tolist(),
            "label_names": spec.output_names,
        }

    def reports_per_label(self, spec):
        return spec.output_size > 1

    # -- plots
    plot_kind = "predicted_vs_true"

    def metric_range(self, metric):
        return None

    def plot_inputs(self, spec, scores, labels):
        n = spec.output_size
        return {"true": np.asarray(labels, dtype=np.float64).reshape(len(labels), n),
                "predicted": np.asarray(scores, dtype=np.float64).reshape(len(scores), n), "names": spec.output_names,
                "constant": spec.target_median}

    def metric_baselines(self, spec, labels):
        """The constant predictors of `baseline_metrics`: the training median (MAE) and mean (RMSE)."""
        values = self.baseline_metrics(spec, labels)
        return {m: values[f"constant_{m}"] for m in self.metric_names if values.get(f"constant_{m}") is not None}


TASK_TYPES: dict[str, TaskType] = {
    cls.name: cls() for cls in (MultiLabelTask, BinaryTask, MultiClassTask, OrdinalTask, RegressionTask)
}
