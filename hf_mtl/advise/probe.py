"""Heads-only probe: train the task heads on frozen features and score them on a held-out split.

Run on the pretrained backbone and on the same backbone randomly initialised, it answers "is transfer helping at
all?": if the pretrained features are no better than random ones, freezing the backbone buys nothing.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import torch

from ..losses import multitask_loss
from ..metrics import compute_task_metrics
from ..tasks import TaskSpec
from .affinity import FeatureHeads

__all__ = ["probe", "split_indices"]


def split_indices(n: int, validation_share: float = 0.2, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """A seeded random train / validation split of ``n`` rows (at least one row on each side)."""
    order = torch.randperm(n, generator=torch.Generator().manual_seed(seed))
    cut = min(max(1, round(n * validation_share)), n - 1)
    return order[cut:], order[:cut]


def probe(
    features: torch.Tensor,
    labels: Mapping[str, torch.Tensor],
    specs: Sequence[TaskSpec],
    *,
    steps: int = 300,
    learning_rate: float = 3e-3,
    weight_decay: float = 1e-3,
    validation_share: float = 0.2,
    eval_every: int = 10,
    seed: int = 0,
) -> dict[str, Any]:
    """Heads (the specs' hidden layers included) trained full-batch with AdamW on standardised features, each task's
    head stopped early at its step with the lowest validation loss (checked every ``eval_every`` steps): a probe
    that overfits would compare how fast two backbones overfit, not how good their features are.

    Returns ``{"val_loss": {task: loss}, "metrics": {task: {metric: value}}}`` on the validation split: the masked
    task loss (lower is better, comparable between backbones) and the task type's own metrics.
    """
    torch.manual_seed(seed)
    train, val = split_indices(len(features), validation_share, seed)
    x = torch.as_tensor(features).float()
    mean, std = x[train].mean(0), x[train].std(0).clamp(min=1e-6)
    x = (x - mean) / std
    model = FeatureHeads(x.shape[1], specs)
    optimizer = torch.optim.AdamW(model.parameters(), lr=learning_rate, weight_decay=weight_decay)
    train_labels = {name: value[train] for name, value in labels.items()}
    val_labels = {name: value[val] for name, value in labels.items()}
    # the heads share nothing, so each task stops at its own best step
    best = {spec.name: (float("inf"), 0, None) for spec in specs}
    for step in range(0, steps + 1):
        if step:
            model.train()
            optimizer.zero_grad()
            total, _ = multitask_loss(specs, model(x[train]), train_labels)
            total.backward()
            optimizer.step()
        if step % eval_every == 0 or step == steps:
            model.eval()
            with torch.no_grad():
                _, val_losses = multitask_loss(specs, model(x[val]), val_labels)
            for name, loss in val_losses.items():
                if float(loss) < best[name][0]:
                    state = {k: v.clone() for k, v in model.heads[name].state_dict().items()}
                    best[name] = (float(loss), step, state)
    for name, (_, _, state) in best.items():
        if state is not None:
            model.heads[name].load_state_dict(state)
    model.eval()
    with torch.no_grad():
        logits = model(x[val])
        _, losses = multitask_loss(specs, logits, val_labels)
    metrics = {}
    for spec in specs:
        flat, _ = compute_task_metrics(spec, logits[spec.name], val_labels[spec.name], per_label=False)
        metrics[spec.name] = {key.removeprefix(f"{spec.name}_"): round(value, 6) for key, value in flat.items()}
    return {"val_loss": {name: round(float(loss), 6) for name, loss in losses.items()}, "metrics": metrics,
            "train_rows": len(train), "validation_rows": len(val), "best_step": {name: b[1] for name, b in best.items()}}
