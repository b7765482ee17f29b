"""Task balancing: how per-task losses combine into the training loss.

Static balancing is ``TaskSpec.loss_weight`` (plus per-label ``pos_weight`` for imbalanced multilabel/binary tasks,
see [`compute_pos_weight`]). Dynamic strategies from the multi-task literature change the weights while training;
``MultiTaskTrainingArguments.task_balancing`` picks one by name and the Trainer logs the weights as
``task_weight_<task>``:

- ``uncertainty``: homoscedastic uncertainty weighting (Kendall, Gal & Cipolla, CVPR 2018): learnable ``s_t`` with
  ``L = Σ exp(-s_t) L_t + s_t``; a task with a larger loss gets a smaller weight (``exp(-s_t)`` → ``1 / L_t``).
- ``dwa``: dynamic weight averaging (Liu, Johns & Davison, CVPR 2019): ``w_t = K softmax(r_t / T)`` with ``r_t`` the
  ratio of the task's mean loss over the last two periods; a task whose loss falls slower gets more weight.
- ``gradnorm``: GradNorm (Chen et al., ICML 2018) with gradient norms taken at the shared pooled features: learnable
  weights pulled so each task's gradient norm is proportional to its relative inverse training rate ``r_t^α``.
- ``rlw``: random loss weighting (Lin et al., TMLR 2022): weights ``K softmax(ε)``, ``ε ~ N(0, 1)``, drawn per step.

Every dynamic weight multiplies the task's static ``loss_weight``. Learnable weights live in the balancer, not in the
model (they are not saved with it), and get their own optimizer group at ``task_balancing_lr``.
"""

from __future__ import annotations

import logging
import math
import os
from collections.abc import Mapping, Sequence
from typing import Any, ClassVar, Literal

import torch
from torch import nn
from transformers import TrainerCallback

from .data import iter_encoded_labels
from .tasks import TaskSpec

logger = logging.getLogger(__name__)


class TaskBalancer(nn.Module):
    """Combines normalised per-task losses into one loss. Subclasses set ``name`` and override ``combine``.

    Args:
        specs: the model's task specs (their ``loss_weight`` is the static weight every strategy multiplies).
    """

    name: ClassVar[str] = "static"

    def __init__(self, specs: Sequence[TaskSpec]) -> None:
        super().__init__()
        self.task_names = [spec.name for spec in specs]
        self.static = {spec.name: float(spec.loss_weight) for spec in specs}

    def dynamic_weights(self) -> dict[str, float]:
        """The strategy's current weights (before the static ``loss_weight``)."""
        return dict.fromkeys(self.task_names, 1.0)

    def current_weights(self) -> dict[str, float]:
        """Effective weight per task: dynamic × static; what the Trainer logs as ``task_weight_<task>``."""
        return {name: w * self.static[name] for name, w in self.dynamic_weights().items()}

    def combine(
        self,
        task_losses: Mapping[str, torch.Tensor],
        present: Mapping[str, torch.Tensor] | None = None,
        features: torch.Tensor | None = None,
        scale: float = 1.0,
    ) -> torch.Tensor:
        """Total loss of one micro-batch.

        Args:
            task_losses: task → normalised loss (``multitask_loss``'s per-task output).
            present: task → this micro-batch's share of the task's present labels in the effective batch (count /
                normaliser; 1 when the batch is the effective batch); terms that are not per-label losses (the
                uncertainty regulariser) are scaled by it so they add up to exactly one per optimizer step.
            features: the shared pooled features (in the graph), for gradient-based strategies.
            scale: 1 / (number of micro-batches × processes) an optimizer step sums over, for the same purpose.
        """
        weights = self.dynamic_weights()
        return self._weighted(task_losses, {n: weights[n] * self.static[n] for n in self.task_names})

    def _weighted(self, task_losses: Mapping[str, torch.Tensor], weights: Mapping[str, Any]) -> torch.Tensor:
        return sum(task_losses[name] * weights[name] for name in self.task_names)  # type: ignore[return-value]

    def step(self) -> None:
        """Called after every optimizer step (period bookkeeping, renormalisation)."""

    def extra_repr(self) -> str:
        return f"tasks={self.task_names}"


class UncertaintyWeighting(TaskBalancer):
    """Kendall et al. 2018: ``Σ exp(-s_t) L_t + s_t`` with learnable log-variances ``s_t`` (start at 0: weight 1)."""

    name = "uncertainty"

    def __init__(self, specs: Sequence[TaskSpec], init: float = 0.0) -> None:
        super().__init__(specs)
        self.log_vars = nn.Parameter(torch.full((len(self.task_names),), float(init)))

    def dynamic_weights(self) -> dict[str, float]:
        return dict(zip(self.task_names, torch.exp(-self.log_vars.detach()).tolist()))

    def combine(self, task_losses, present=None, features=None, scale=1.0):
        total = None
        for i, name in enumerate(self.task_names):
            s = self.log_vars[i]
            share = present[name] if present is not None else 1.0
            term = self.static[name] * (torch.exp(-s) * task_losses[name] + s * share)
            total = term if total is None else total + term
        return total


class DynamicWeightAverage(TaskBalancer):
    """Liu et al. 2019: ``w_t = K softmax(r_t / T)``, ``r_t = L̄_t(k-1) / L̄_t(k-2)`` over periods of optimizer steps."""

    name = "dwa"

    def __init__(self, specs: Sequence[TaskSpec], temperature: float = 2.0, period: int = 20) -> None:
        super().__init__(specs)
        if temperature <= 0 or period < 1:
            raise ValueError(f"dwa needs temperature > 0 and period >= 1, got {temperature}, {period}")
        self.temperature, self.period = float(temperature), int(period)
        n = len(self.task_names)
        self.register_buffer("weights", torch.ones(n))
        self.register_buffer("sums", torch.zeros(n))
        self.register_buffer("counts", torch.zeros(n))
        # mean loss per task of the last two finished periods (buffers, so checkpoints keep them)
        self.register_buffer("previous", torch.full((n,), math.nan))
        self.register_buffer("last", torch.full((n,), math.nan))
        self.register_buffer("steps", torch.zeros((), dtype=torch.long))

    def dynamic_weights(self):
        return dict(zip(self.task_names, self.weights.tolist()))

    def combine(self, task_losses, present=None, features=None, scale=1.0):
        with torch.no_grad():
            for i, name in enumerate(self.task_names):
                # normalised losses of a window's micro-batches add up to the window's mean loss, their shares to 1
                self.sums[i] += task_losses[name].detach().float().to(self.sums.device)
                self.counts[i] += float(present[name]) if present is not None else 1.0
        return super().combine(task_losses, present, features, scale)

    def step(self):
        self.steps += 1
        if int(self.steps) % self.period:
            return
        if torch.distributed.is_available() and torch.distributed.is_initialized():  # same weights on every process
            torch.distributed.all_reduce(self.sums)
            torch.distributed.all_reduce(self.counts)
        safe = self.counts.clamp(min=1e-12)
        means = torch.where(self.counts > 0, self.sums / safe, torch.full_like(self.sums, math.nan))
        self.previous.copy_(self.last)
        self.last.copy_(means)
        self.sums.zero_()
        self.counts.zero_()
        ratio = self.last / self.previous  # NaN until two periods are done, or for a task absent from one
        ratio = torch.where(torch.isfinite(ratio) & (self.previous > 0), ratio, torch.ones_like(ratio))
        self.weights.copy_(len(self.task_names) * torch.softmax(ratio / self.temperature, dim=0))


class GradNorm(TaskBalancer):
    """Chen et al. 2018 at the shared pooled features: learnable weights, renormalised to sum to K after each step.

    Each step: ``G_t = w_t ‖∂L_t/∂z‖`` (z: the pooled features), targets ``Ḡ · (L̃_t / mean L̃)^α`` with ``L̃_t`` the
    loss relative to its first value; ``Σ |G_t - target_t|`` trains only the weights, ``Σ w_t L_t`` the network.
    """

    name = "gradnorm"

    def __init__(self, specs: Sequence[TaskSpec], alpha: float = 1.5) -> None:
        super().__init__(specs)
        self.alpha = float(alpha)
        self.task_weights = nn.Parameter(torch.ones(len(self.task_names)))
        self.register_buffer("initial", torch.full((len(self.task_names),), math.nan))
        self._warned = False

    def dynamic_weights(self):
        return dict(zip(self.task_names, self.task_weights.detach().tolist()))

    def combine(self, task_losses, present=None, features=None, scale=1.0):
        w = self.task_weights
        network_loss = self._weighted(task_losses, {n: w[i].detach() * self.static[n] for i, n in enumerate(self.task_names)})
        if features is None or not features.requires_grad:
            if not self._warned:
                logger.warning("gradnorm: no shared features in the graph (frozen or cached backbone): weights stay put")
                self._warned = True
            return network_loss + 0.0 * w.sum()
        active, norms, losses = [], [], []
        for i, name in enumerate(self.task_names):
            loss = task_losses[name]
            if (present is not None and float(present[name]) == 0) or not loss.requires_grad or float(loss.detach()) == 0.0:
                continue
            (grad,) = torch.autograd.grad(loss, features, retain_graph=True)
            active.append(i)
            norms.append(grad.detach().norm())
            losses.append(loss.detach().float())
        if len(active) < 2:
            return network_loss + 0.0 * w.sum()
        idx = torch.tensor(active, device=w.device)
        losses_t = torch.stack(losses).to(w.device)
        first = self.initial[idx]
        self.initial[idx] = torch.where(torch.isnan(first), losses_t, first)
        relative = losses_t / self.initial[idx].clamp(min=1e-12)
        rate = relative / relative.mean()
        g = w[idx] * torch.stack(norms).to(w.device)
        target = (g.mean() * rate**self.alpha).detach()
        gradnorm_loss = (g - target).abs().sum()
        return network_loss + scale * gradnorm_loss

    def step(self):
        with torch.no_grad():
            self.task_weights.clamp_(min=1e-3)
            self.task_weights.mul_(len(self.task_names) / self.task_weights.sum())


class RandomLossWeighting(TaskBalancer):
    """Lin et al. 2022: weights ``K softmax(ε)``, ``ε ~ N(0, I)`` drawn again after every optimizer step."""

    name = "rlw"

    def __init__(self, specs: Sequence[TaskSpec], seed: int | None = None) -> None:
        super().__init__(specs)
        self.generator = torch.Generator().manual_seed(seed) if seed is not None else None
        self.register_buffer("weights", torch.ones(len(self.task_names)))
        self.step()

    def dynamic_weights(self):
        return dict(zip(self.task_names, self.weights.tolist()))

    def step(self):
        eps = torch.randn(len(self.task_names), generator=self.generator)
        self.weights.copy_(len(self.task_names) * torch.softmax(eps, dim=0))


BALANCER_STATE_NAME = "task_balancer.safetensors"
"""File in a checkpoint folder holding the balancer's learnable weights and statistics (the model never has them)."""


def save_balancer_state(balancer: TaskBalancer, folder: str | os.PathLike) -> None:
    from safetensors.torch import save_file

    state = {k: v.detach().cpu().contiguous() for k, v in balancer.state_dict().items()}
    from .safety import restore_default_modes

    path = os.path.join(folder, BALANCER_STATE_NAME)
    save_file(state, path, metadata={"strategy": balancer.name})
    restore_default_modes(path)  # safetensors writes 0600


def load_balancer_state(balancer: TaskBalancer, folder: str | os.PathLike) -> bool:
    """Restore a balancer saved in a checkpoint; False (and a warning) when the checkpoint has none."""
    from safetensors import safe_open
    from safetensors.torch import load_file

    path = os.path.join(folder, BALANCER_STATE_NAME)
    if not os.path.isfile(path):
        logger.warning("checkpoint %s has no %s: task weights restart from their initial values", folder,
                       BALANCER_STATE_NAME)
        return False
    try:  # safetensors' own error names no file
        with safe_open(path, framework="pt") as handle:
            saved = (handle.metadata() or {}).get("strategy")
        state = load_file(path)
    except Exception as err:
        raise ValueError(f"task balancer state {path!r} cannot be read ({err}); resume from another checkpoint") from err
    if saved != balancer.name:
        raise ValueError(f"checkpoint {folder} was trained with task_balancing={saved!r}, not {balancer.name!r}")
    device = next(iter(balancer.state_dict().values())).device if balancer.state_dict() else "cpu"
    balancer.load_state_dict({k: v.to(device) for k, v in state.items()})
    return True


BALANCERS: dict[str, type[TaskBalancer]] = {
    cls.name: cls for cls in (TaskBalancer, UncertaintyWeighting, DynamicWeightAverage, GradNorm, RandomLossWeighting)
}
TaskBalancing = Literal["static", "uncertainty", "dwa", "gradnorm", "rlw"]
"""The names of ``BALANCERS``, as a type for `MultiTaskTrainingArguments.task_balancing`."""


def build_balancer(name: str, specs: Sequence[TaskSpec], **kwargs: Any) -> TaskBalancer:
    """The balancer called ``name`` (``static``, ``uncertainty``, ``dwa``, ``gradnorm``, ``rlw``)."""
    if name not in BALANCERS:
        raise ValueError(f"unknown task_balancing {name!r}; choose one of {sorted(BALANCERS)}")
    try:
        return BALANCERS[name](specs, **kwargs)
    except TypeError as err:
        raise ValueError(f"task_balancing {name!r}: bad task_balancing_kwargs {kwargs}: {err}") from err


def compute_pos_weight(
    dataset: Any,
    specs: Sequence[TaskSpec],
    label_columns: Mapping[str, str] | None = None,
    known_label_columns: Mapping[str, str] | None = None,
    max_weight: float | None = 100.0,
) -> dict[str, list[float]]:
    """``pos_weight = negatives / positives`` per output of every task whose type takes one (multilabel, binary),
    counted on present labels.

    Missing labels count neither way. A label without positives (or negatives) gets 1.0 and a warning. ``max_weight``
    caps rare labels. Apply with [`apply_pos_weight`].
    """
    specs = [s for s in specs if s.task_type.uses_pos_weight]
    positives = {s.name: torch.zeros(s.output_size, dtype=torch.float64) for s in specs}
    negatives = {s.name: torch.zeros(s.output_size, dtype=torch.float64) for s in specs}
    for encoded in iter_encoded_labels(dataset, specs, label_columns, known_label_columns):
        for spec in specs:
            labels = encoded[spec.name].reshape(-1, spec.output_size).double()
            positives[spec.name] += (labels == 1).sum(0)
            negatives[spec.name] += (labels == 0).sum(0)
    weights = {}
    for spec in specs:
        values = []
        for j, name in enumerate(spec.output_names):
            pos, neg = float(positives[spec.name][j]), float(negatives[spec.name][j])
            if pos == 0 or neg == 0:
                logger.warning("task %r, label %r: %d positives / %d negatives present; pos_weight 1.0",
                               spec.name, name, pos, neg)
                values.append(1.0)
                continue
            value = neg / pos
            values.append(min(value, max_weight) if max_weight is not None else value)
        weights[spec.name] = values
    return weights


def apply_pos_weight(config_or_model: Any, pos_weight: Mapping[str, Sequence[float]]) -> None:
    """Write ``{task: [pos_weight per label]}`` into the model config's task specs (validated like any spec)."""
    config = getattr(config_or_model, "config", config_or_model)
    config.set_task_values("pos_weight", pos_weight)


class TaskBalancingCallback(TrainerCallback):
    """Keeps a balancer in step with the optimizer: averages its gradients over processes, then calls ``step()``.

    Its state is saved by [`MultiTaskTrainer`] into the staging folder of each checkpoint (before the atomic rename
    that publishes it, so it is in every published and pushed checkpoint) and restored on resume."""

    def __init__(self, balancer: TaskBalancer, accelerator: Any = None) -> None:
        self.balancer = balancer
        self.accelerator = accelerator

    def on_pre_optimizer_step(self, args, state, control, **kwargs):
        if self.accelerator is None or self.accelerator.num_processes < 2:
            return
        for param in self.balancer.parameters():
            if param.grad is not None:  # not inside DDP: average like DDP does for the model
                param.grad = self.accelerator.reduce(param.grad, reduction="mean")

    def on_optimizer_step(self, args, state, control, **kwargs):
        self.balancer.step()
        self.balancer.zero_grad(set_to_none=True)  # the Trainer zeroes only the model's gradients
