"""Optimizer parameter groups with layer-wise learning-rate decay and weight decay kept off norms and biases.

Heads get the base LR; backbone block ``b`` of ``B`` (stem = 0) sits at depth ``B - b`` and gets
``lr * layer_decay ** depth``. The scaled LR is written into each group's ``lr``, so the stock transformers / torch
schedulers (``LambdaLR`` multiplies each group's initial LR) apply it. timm's ``param_groups_layer_decay`` instead
stores an ``lr_scale`` that only timm's own schedulers read; we do not set ``lr_scale`` so nothing applies it twice.
"""

from __future__ import annotations

from typing import Any

from torch import nn

from .blocks import backbone_blocks, unwrap_multitask_model

DEFAULT_LAYER_DECAY = 0.5
"""``layer_decay`` when it is unset and trainable backbone blocks keep pretrained BatchNorm statistics
(benchmarks/README.md 5f: kept statistics without a lower backbone LR lose more than stock fine-tuning; both together
keep the heads-only stage's score)."""


def no_weight_decay_names(model: nn.Module) -> set[str]:
    """Parameters that get no weight decay: norms and biases (every tensor with at most one dimension) and what a timm
    backbone lists in ``no_weight_decay()`` (position embeddings, class tokens)."""
    base = unwrap_multitask_model(model)
    names = {name for name, param in base.named_parameters() if param.ndim <= 1}
    inner = base.backbone.model
    declared = getattr(inner, "no_weight_decay", None)
    if callable(declared):
        skip = set(declared())
        names |= {"backbone.model." + name for name, _ in inner.named_parameters() if name in skip}
    return names


def layer_depths(model: nn.Module, fine: bool = True) -> dict[str, int]:
    """Parameter name → depth below the heads (heads and anything outside the backbone: 0)."""
    base = unwrap_multitask_model(model)
    blocks = backbone_blocks(base, fine=fine)
    depths = {name: 0 for name, _ in base.named_parameters()}
    for index, block in enumerate(blocks):
        for name in block:
            depths[name] = len(blocks) - index
    return depths


def param_groups(
    model: nn.Module,
    lr: float,
    weight_decay: float = 0.0,
    layer_decay: float | None = None,
    include_frozen: bool = False,
) -> list[dict[str, Any]]:
    """Parameter groups for any torch optimizer: one per (depth, decay or not).

    Args:
        model: a [`MultiTaskModel`] (PEFT-wrapped is fine: names are matched on the wrapped model's parameters).
        lr: the heads' learning rate.
        weight_decay: applied to weight matrices only.
        layer_decay: per-block LR factor (e.g. 0.75); ``None`` or 1 keeps one LR.
        include_frozen: also hold frozen parameters (they have no gradient, so torch optimizers skip them), so a
            later unfreezing needs no new optimizer and the LR scheduler already covers them.
    """
    if layer_decay is not None and not 0.0 < layer_decay <= 1.0:
        raise ValueError(f"layer_decay must be in (0, 1], got {layer_decay}")
    base = unwrap_multitask_model(model)
    depths = layer_depths(base) if layer_decay is not None else {}
    no_decay = no_weight_decay_names(base)
    ids = {id(param): name for name, param in base.named_parameters()}
    groups: dict[tuple[int, bool], dict[str, Any]] = {}
    for param in model.parameters():
        if not param.requires_grad and not include_frozen:
            continue
        name = ids.get(id(param))
        if name is None:  # a wrapper's own parameter, outside the MultiTaskModel: base LR
            depth, decays = 0, param.ndim > 1
        else:
            depth, decays = depths.get(name, 0), name not in no_decay
        key = (depth, decays)
        if key not in groups:
            scale = layer_decay**depth if layer_decay is not None else 1.0
            groups[key] = {"params": [], "lr": lr * scale, "weight_decay": weight_decay if decays else 0.0,
                           "layer_depth": depth}
        groups[key]["params"].append(param)
    return [groups[key] for key in sorted(groups)]


def default_layer_decay(model: nn.Module, kept_norms: list[str], unfreezing: bool = False) -> float | None:
    """The layer decay an unset ``layer_decay`` means: `DEFAULT_LAYER_DECAY` when a backbone block that trains (or,
    with gradual unfreezing, will train) holds a BatchNorm layer in ``kept_norms`` (its pretrained statistics kept by
    ``freeze_norm_statistics``), else ``None`` (one LR). The two settings are only measured to help together."""
    if not kept_norms:
        return None
    base = unwrap_multitask_model(model)
    params = dict(base.named_parameters())
    prefixes = tuple(name + "." for name in kept_norms)
    for name, param in params.items():
        if name.startswith(prefixes) and (param.requires_grad or unfreezing):
            return DEFAULT_LAYER_DECAY
    return None
