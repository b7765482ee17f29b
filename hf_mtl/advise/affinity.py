"""Task affinity by lookahead (Fifty et al., "Efficiently Identifying Task Groupings for Multi-Task Learning",
NeurIPS 2021), and the task grouping it suggests.

During a short joint run, at every step and for every task i, the shared parameters take one SGD step on task i's
loss alone (a lookahead, undone afterwards) and every task j's loss on the same batch is measured again:
``Z[i, j] = 1 - L_j(after the step on i) / L_j(before)``. Positive: learning i helps j; negative: it hurts j.
Averaged over steps, ``Z`` says which tasks belong in one model.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
from torch import nn

from ..heads import TaskHead
from ..losses import multitask_loss
from ..tasks import TaskSpec

__all__ = ["FeatureHeads", "TaskAffinity", "feature_task_affinity", "lookahead_affinity", "suggest_grouping"]

MAX_EXACT_TASKS = 9
"""Up to this many tasks every partition is scored (Bell(9) = 21147); above, a greedy merge."""


@dataclass
class TaskAffinity:
    """``matrix[i][j]``: mean relative drop of task j's loss after a lookahead step on task i (row helps column)."""

    tasks: list[str]
    matrix: list[list[float]]
    steps: int
    groups: list[list[str]] = field(default_factory=list)
    grouping_score: float = 0.0

    def to_dict(self) -> dict[str, Any]:
        return {"tasks": self.tasks, "matrix": self.matrix, "steps": self.steps, "groups": self.groups,
                "grouping_score": self.grouping_score}


class FeatureHeads(nn.Module):
    """Task heads on precomputed features, optionally behind a shared trainable trunk (Linear + GELU).

    With ``trunk_width=None`` it is the heads-only probe of a frozen backbone; with a trunk it is the smallest model
    whose shared layer the tasks compete for, which is what task affinity measures.
    """

    def __init__(self, in_features: int, specs: Sequence[TaskSpec], trunk_width: int | None = None):
        super().__init__()
        self.specs = list(specs)
        self.trunk = nn.Identity() if trunk_width is None else nn.Sequential(nn.Linear(in_features, trunk_width),
                                                                            nn.GELU())
        width = in_features if trunk_width is None else trunk_width
        self.heads = nn.ModuleDict({spec.name: TaskHead(width, spec) for spec in self.specs})

    def forward(self, features: torch.Tensor) -> dict[str, torch.Tensor]:
        shared = self.trunk(features)
        return {name: head(shared) for name, head in self.heads.items()}

    def task_losses(self, features: torch.Tensor, labels: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        """Each task's masked loss, normalised by its present labels (0 for a task with none in the batch)."""
        return multitask_loss(self.specs, self(features), labels)[1]


def lookahead_affinity(
    task_losses: Callable[[Any], Mapping[str, torch.Tensor]],
    shared_parameters: Sequence[nn.Parameter],
    batches: Iterable[Any],
    optimizer: torch.optim.Optimizer,
    lookahead_lr: float,
    tasks: Sequence[str] | None = None,
    progress: Any = None,
) -> tuple[np.ndarray, int]:
    """Run the joint training over ``batches`` and measure ``Z`` at every step; returns ``(Z, steps)``.

    ``task_losses(batch)`` gives each task's loss; ``optimizer`` makes the real joint step on their sum. A pair is
    averaged over the steps where task j had labels in the batch and task i a nonzero gradient.
    """
    shared = [p for p in shared_parameters if p.requires_grad]
    if not shared:
        raise ValueError("task affinity needs trainable shared parameters (a frozen backbone has none: use a trunk)")
    total = sum_count = None
    steps = 0
    for batch in batches:
        losses = dict(task_losses(batch))
        names = list(tasks or losses)
        if total is None:
            total, sum_count = np.zeros((len(names), len(names))), np.zeros((len(names), len(names)))
        before = torch.stack([losses[n].detach() for n in names])
        saved = [p.detach().clone() for p in shared]
        for i, name in enumerate(names):
            if not losses[name].requires_grad or float(before[i]) == 0.0:
                continue
            grads = torch.autograd.grad(losses[name], shared, retain_graph=True, allow_unused=True)
            with torch.no_grad():
                for p, g in zip(shared, grads):
                    if g is not None:
                        p.sub_(lookahead_lr * g)
                after = torch.stack([dict(task_losses(batch))[n] for n in names])
                for p, original in zip(shared, saved):
                    p.copy_(original)
            valid = (before > 0).numpy()
            ratio = np.where(valid, 1.0 - (after / before.clamp(min=1e-12)).numpy(), 0.0)
            total[i] += ratio
            sum_count[i] += valid
        optimizer.zero_grad()
        sum(losses.values()).backward()
        optimizer.step()
        steps += 1
        if progress is not None:
            progress.update(1)
    if total is None:
        raise ValueError("task affinity got no batches")
    return total / np.maximum(sum_count, 1), steps


def feature_task_affinity(
    features: torch.Tensor,
    labels: Mapping[str, torch.Tensor],
    specs: Sequence[TaskSpec],
    *,
    steps: int = 100,
    batch_size: int = 64,
    trunk_width: int = 128,
    learning_rate: float = 1e-2,
    lookahead_lr: float | None = None,
    seed: int = 0,
    progress: Any = None,
) -> TaskAffinity:
    """Task affinity of a short joint run of a shared trunk + heads on frozen (standardised) features.

    The trunk stands in for the backbone's top layers: cheap enough to measure on CPU in seconds, and shared by all
    tasks as the fine-tuned backbone would be. The lookahead step is SGD with ``lookahead_lr`` (default: 10x the
    Adam learning rate of the joint run, so one step moves the losses measurably).
    """
    generator = torch.Generator().manual_seed(seed)
    torch.manual_seed(seed)
    x = _standardise(features)
    model = FeatureHeads(x.shape[1], specs, trunk_width=trunk_width)
    optimizer = torch.optim.Adam(model.parameters(), lr=learning_rate)
    names = [spec.name for spec in specs]

    def batches():
        for _ in range(steps):
            rows = torch.randint(0, len(x), (min(batch_size, len(x)),), generator=generator)
            yield x[rows], {name: labels[name][rows] for name in names}

    matrix, done = lookahead_affinity(
        lambda batch: model.task_losses(*batch), list(model.trunk.parameters()), batches(), optimizer,
        lookahead_lr if lookahead_lr is not None else 10 * learning_rate, tasks=names, progress=progress,
    )
    groups, score = suggest_grouping(matrix, names)
    return TaskAffinity(names, matrix.round(8).tolist(), done, groups, score)


def _standardise(features: torch.Tensor) -> torch.Tensor:
    x = torch.as_tensor(features).float()
    return (x - x.mean(0)) / x.std(0).clamp(min=1e-6)


def _partitions(items: list[int]) -> Iterable[list[list[int]]]:
    if not items:
        yield []
        return
    first, rest = items[0], items[1:]
    for smaller in _partitions(rest):
        for k in range(len(smaller)):
            yield smaller[:k] + [[first] + smaller[k]] + smaller[k + 1:]
        yield [[first]] + smaller


def _grouping_score(matrix: np.ndarray, groups: list[list[int]]) -> float:
    return float(sum(matrix[i, j] for group in groups for i, j in itertools.permutations(group, 2)))


def suggest_grouping(matrix: Any, tasks: Sequence[str]) -> tuple[list[list[str]], float]:
    """The partition of the tasks that maximises the summed affinity inside groups (``Σ Z[i, j]`` over ordered pairs
    in one group): tasks that help each other train together, a task that hurts the others trains apart. Ties go to
    fewer groups. Exact up to `MAX_EXACT_TASKS` tasks, a greedy merge of groups above."""
    z = np.asarray(matrix, dtype=np.float64)
    n = len(tasks)
    if n <= MAX_EXACT_TASKS:
        candidates = _partitions(list(range(n)))
        best = max(candidates, key=lambda groups: (round(_grouping_score(z, groups), 12), -len(groups)))
    else:
        best = [[i] for i in range(n)]
        while len(best) > 1:
            gains = [(_grouping_score(z, [a + b]) - _grouping_score(z, [a]) - _grouping_score(z, [b]), ia, ib)
                     for (ia, a), (ib, b) in itertools.combinations(enumerate(best), 2)]
            gain, ia, ib = max(gains)
            if gain < 0:
                break
            best = [g for k, g in enumerate(best) if k not in (ia, ib)] + [best[ia] + best[ib]]
    groups = sorted((sorted(g) for g in best), key=lambda g: g[0])
    return [[tasks[i] for i in g] for g in groups], _grouping_score(z, groups)
