"""Non-finite guard: a NaN/Inf in a batch, a task loss or the gradients never silently corrupts the weights.

Stock transformers only hides a NaN loss from the logs (``logging_nan_inf_filter``) and still applies the NaN
gradients, so one poisoned row at hour 3 turns every weight into NaN. [`NonFiniteGuard`] works in two halves:

* per micro-batch (``MultiTaskTrainer.compute_loss`` calls [`NonFiniteGuard.check_batch`]): device-side flags for
  every floating input tensor, every task's label tensor (``±inf``; NaN labels mean "missing" and are fine), every
  task's loss and the combined loss, accumulated over the accumulation window without a host sync.
* once per optimizer step (``on_pre_optimizer_step``: after clipping, before ``optimizer.step()``): one check of
  the flags and of the gradients (one host sync, all-reduced over processes so every process decides the same).
  On a bad step every ``p.grad`` is set to ``None``: torch optimizers then leave those parameters alone (no Adam
  moment update, no weight decay); BatchNorm running statistics, which the forward passes already changed, are put
  back as they were when the step began. ``"stop"`` raises a ``FloatingPointError`` naming the step, the epoch and the
  task losses / inputs / labels that were non-finite; ``"skip"`` warns with the same detail and counts the step
  (logged as ``nonfinite_skipped_steps``).

With an fp16 ``GradScaler`` the scaler already skips steps with inf/NaN gradients (and overflow is expected while it
finds its scale), so the guard then only reports non-finite *inputs and labels* and leaves the step to the scaler.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Mapping, Sequence
from typing import Any, Literal, get_args

import torch
from torch import nn
from transformers import TrainerCallback

logger = logging.getLogger(__name__)

NonfinitePolicy = Literal["stop", "skip", "off"]
NONFINITE_POLICIES: tuple[str, ...] = get_args(NonfinitePolicy)
"""Values of ``MultiTaskTrainingArguments.nonfinite_policy``."""


def _running_stat_buffers(model: nn.Module) -> list[torch.Tensor]:
    """Buffers a training-mode forward pass changes: BatchNorm / InstanceNorm running statistics."""
    buffers = []
    for module in model.modules():
        if isinstance(module, nn.modules.batchnorm._NormBase) and module.training and module.track_running_stats:
            buffers.extend(b for b in (module.running_mean, module.running_var, module.num_batches_tracked) if b is not None)
    return buffers


def gradients_nonfinite(grads: Sequence[torch.Tensor]) -> torch.Tensor:
    """A bool tensor: does any gradient hold a NaN/inf? No host sync.

    Uses the fused check GradScaler runs (``_amp_foreach_non_finite_check_and_unscale_`` with a scale of 1.0, which
    leaves the gradients bit-identical): exact (a huge finite gradient is not flagged, as an overflowing 2-norm would
    be) and ~20x cheaper on CPU than a Python-level ``isfinite``/inf-norm over hundreds of tensors. Falls back to the
    inf-norm where a device or dtype lacks that kernel.
    """
    by_device: dict[torch.device, list[torch.Tensor]] = {}
    for grad in grads:
        by_device.setdefault(grad.device, []).append(grad)
    flags = []
    for device, group in by_device.items():
        found = torch.zeros(1, device=device)
        try:
            torch._amp_foreach_non_finite_check_and_unscale_(group, found, torch.ones(1, device=device))
            flags.append(found.reshape(()) > 0)
        except (RuntimeError, NotImplementedError):
            norm = torch.nn.utils.get_total_norm(group, norm_type=float("inf"), error_if_nonfinite=False)
            flags.append(~torch.isfinite(norm))
    first = flags[0].device
    return torch.stack([flag.to(first) for flag in flags]).any()


class NonFiniteGuard(TrainerCallback):
    """Detects NaN/Inf in inputs, labels, task losses and gradients; stops or skips the optimizer step."""

    def __init__(self, policy: str, task_names: Sequence[str], accelerator: Any = None):
        if policy not in ("stop", "skip"):
            raise ValueError(f"NonFiniteGuard policy must be 'stop' or 'skip', got {policy!r}")
        self.policy = policy
        self.task_names = list(task_names)
        self.accelerator = accelerator
        self.skipped_steps: list[int] = []
        """Optimizer steps (1-based, as ``state.global_step`` counts them) skipped in this run."""
        self.skipped_before_resume = 0
        self._reset()

    @property
    def num_skipped(self) -> int:
        return self.skipped_before_resume + len(self.skipped_steps)

    def _reset(self) -> None:
        self._input_flags: dict[str, torch.Tensor] = {}
        self._window: torch.Tensor | None = None  # [combined loss, labels per task, loss per task], OR over micro-batches
        self._buffers: list[tuple[torch.Tensor, torch.Tensor]] = []  # running statistics when the window began

    # -- per micro-batch, no host sync ---------------------------------------------------------------------------
    def before_forward(self, model: nn.Module) -> None:
        """At the first micro-batch of an optimizer step, keep the running statistics: a skipped step restores them."""
        if self._window is None:
            self._buffers = [(buffer, buffer.detach().clone()) for buffer in _running_stat_buffers(model)]

    def check_batch(
        self,
        inputs: Mapping[str, Any],
        labels: Mapping[str, torch.Tensor],
        task_losses: Mapping[str, torch.Tensor],
        loss: torch.Tensor,
    ) -> None:
        """Record which inputs, labels and losses of this micro-batch are non-finite (as device tensors)."""
        device = loss.device
        no = torch.zeros((), dtype=torch.bool, device=device)
        for name, value in inputs.items():
            if isinstance(value, torch.Tensor) and value.is_floating_point():
                flag = ~torch.isfinite(value).all()
                self._input_flags[name] = flag if name not in self._input_flags else self._input_flags[name] | flag
        label_flags, loss_flags = [], []
        for name in self.task_names:
            value = labels.get(name)
            label_flags.append(torch.isinf(value).any().to(device) if value is not None and value.is_floating_point() else no)
            loss_flags.append(~torch.isfinite(task_losses[name].detach()) if name in task_losses else no)
        flags = torch.stack([~torch.isfinite(loss.detach()), *label_flags, *loss_flags])
        self._window = flags if self._window is None else self._window | flags

    # -- once per optimizer step -----------------------------------------------------------------------------------
    def _scaler_active(self) -> bool:
        return getattr(self.accelerator, "scaler", None) is not None

    def on_train_begin(self, args, state, control, **kwargs):
        # on resume the count of earlier skipped steps comes back from the logs in trainer_state.json
        counts = [entry["nonfinite_skipped_steps"] for entry in state.log_history if "nonfinite_skipped_steps" in entry]
        self.skipped_before_resume = int(max(counts, default=0))
        self.skipped_steps = []
        self._reset()

    def on_pre_optimizer_step(self, args, state, control, model=None, optimizer=None, **kwargs):
        if self._window is None:  # no training forward pass went through compute_loss
            return
        window, input_flags, buffers = self._window, dict(self._input_flags), self._buffers
        self._reset()
        params = [p for group in optimizer.param_groups for p in group["params"]] if optimizer is not None else []
        grads = [p.grad for p in params if p.grad is not None]
        scaler = self._scaler_active()
        n = len(self.task_names)
        if scaler:  # loss/gradient overflow is the GradScaler's business: only data errors count
            keep = torch.zeros_like(window)
            keep[1 : 1 + n] = True  # the label flags
            window = window & keep
        any_input = torch.stack(list(input_flags.values())).any().reshape(1) if input_flags else window.new_zeros(1)
        grad_bad = window.new_zeros(1)
        if grads and not scaler:
            grad_bad = gradients_nonfinite(grads).reshape(1).to(window.device)
        vector = torch.cat([any_input.to(window.device), window, grad_bad]).float()
        if torch.distributed.is_available() and torch.distributed.is_initialized():
            torch.distributed.all_reduce(vector)  # every process takes the same decision
        if not vector.any().item():  # the one host sync per optimizer step
            return
        message = self._describe(vector.tolist(), input_flags, params, model, state, scaler)
        with torch.no_grad():  # the bad forward passes' BatchNorm statistics updates are undone too
            for buffer, saved in buffers:
                buffer.copy_(saved)
        if not scaler:
            for p in params:  # torch optimizers skip parameters without a gradient: no update, no decay, no moments
                p.grad = None
        if self.policy == "stop":
            raise FloatingPointError(
                f"{message}. The update was not applied: the weights are those after step {state.global_step}. "
                "Look for the row in the dataset (a NaN/inf input or label, or a value so large that the loss "
                "overflows), lower the learning rate or clip gradients (max_grad_norm), or set "
                "nonfinite_policy='skip' to skip such steps and go on."
            )
        self.skipped_steps.append(state.global_step + 1)
        logger.warning(f"{message}; skipped this optimizer step ({self.num_skipped} skipped so far)")

    def _describe(self, vector, input_flags, params, model, state, scaler) -> str:
        n = len(self.task_names)
        combined, labels, losses, grad_bad = vector[1], vector[2 : 2 + n], vector[2 + n : 2 + 2 * n], vector[-1]
        found = [f"input {name!r}" for name, flag in input_flags.items() if flag.item()]
        if vector[0] and not found:
            found.append("an input on another process")
        found += [f"labels of task {t!r} (±inf)" for t, flag in zip(self.task_names, labels) if flag]
        found += [f"loss of task {t!r}" for t, flag in zip(self.task_names, losses) if flag]
        if combined and not any(losses):
            found.append("the combined loss (a task weight is not finite)")
        if grad_bad and not found:
            names = {id(p): name for name, p in model.named_parameters()} if model is not None else {}
            bad = [names.get(id(p), "?") for p in params if p.grad is not None and not torch.isfinite(p.grad).all()]
            found.append(f"gradients of {len(bad)} parameter tensors (e.g. {', '.join(bad[:3])})")
        done = state.epoch or 0.0
        epoch = f"during epoch {math.floor(done) + 1}; {done:.2f} epochs done"
        note = " (fp16: the GradScaler decides whether this step is applied)" if scaler and self.policy == "skip" else ""
        return (
            f"non-finite values (NaN/inf) at optimizer step {state.global_step + 1} ({epoch}) in "
            f"{'; '.join(found)}{note}"
        )
