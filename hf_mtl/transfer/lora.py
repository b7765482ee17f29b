"""LoRA on the backbone through PEFT, with every task head fully trained and saved beside the adapter."""

from __future__ import annotations

import logging
import os
from collections.abc import Sequence
from typing import Any

from torch import nn

from .blocks import unwrap_multitask_model
from .freezing import keep_frozen_modules_in_eval, remove_frozen_eval_hooks

logger = logging.getLogger(__name__)

LORA_LAYER_TYPES = (nn.Linear, nn.Conv2d, nn.Conv1d)


def lora_target_modules(model: nn.Module, target_modules: Sequence[str] | None = None) -> list[str]:
    """Full names of the backbone layers LoRA adapts: every linear and non-grouped convolution, or those whose name
    ends with one of ``target_modules`` (e.g. ``["query", "value"]``). Heads are never targets: they train fully."""
    base = unwrap_multitask_model(model)
    names = []
    for name, module in base.backbone.named_modules():
        if not isinstance(module, LORA_LAYER_TYPES) or getattr(module, "groups", 1) != 1:
            continue
        if target_modules is None or any(name == t or name.endswith("." + t) for t in target_modules):
            names.append("backbone." + name)
    if not names:
        raise ValueError(
            f"no backbone layer matches target_modules={list(target_modules) if target_modules else None}; LoRA "
            f"adapts {', '.join(t.__name__ for t in LORA_LAYER_TYPES)} layers of the backbone"
        )
    return names


def apply_lora(
    model: nn.Module,
    r: int = 8,
    alpha: int = 16,
    dropout: float = 0.0,
    target_modules: Sequence[str] | None = None,
    **lora_kwargs: Any,
):
    """Wrap a [`MultiTaskModel`] in a ``peft.PeftModel``: LoRA adapters on the backbone, heads trained in full
    (``modules_to_save``), everything else frozen (frozen BatchNorm statistics included).

    Extra keyword arguments go to ``peft.LoraConfig`` (e.g. ``use_dora=True``).
    """
    try:
        from peft import LoraConfig, get_peft_model
    except ImportError as err:  # pragma: no cover - peft is an optional extra
        raise ImportError("LoRA needs peft: pip install 'hf-mtl[peft]'") from err
    base = unwrap_multitask_model(model)
    config = LoraConfig(
        r=r,
        lora_alpha=alpha,
        lora_dropout=dropout,
        target_modules=lora_target_modules(base, target_modules),
        modules_to_save=[f"heads.{name}" for name in base.config.task_names],
        **lora_kwargs,
    )
    peft_model = get_peft_model(base, config)
    keep_frozen_modules_in_eval(peft_model)
    trainable = sum(p.numel() for p in peft_model.parameters() if p.requires_grad)
    logger.info("LoRA r=%d on %d backbone layers; %d trainable parameters", r, len(config.target_modules), trainable)
    return peft_model


def load_lora(adapter_path: str | os.PathLike, base_model: nn.Module | str | None = None, is_trainable: bool = False):
    """Load a LoRA adapter (and its heads) saved with ``PeftModel.save_pretrained`` onto its base model.

    Args:
        adapter_path: the folder with ``adapter_config.json`` and ``adapter_model.safetensors``.
        base_model: the base [`MultiTaskModel`], or a folder / Hub id to load it from; by default the
            ``base_model_name_or_path`` recorded in the adapter config.
    """
    from peft import PeftConfig, PeftModel

    from ..modeling_mtl import MultiTaskModel
    from ..safety import require_safetensors

    # PEFT falls back to a pickled adapter_model.bin (torch.load with weights_only=True); hf_mtl reads safetensors only
    require_safetensors(adapter_path, ["adapter_model.safetensors"])
    if base_model is None:
        base_model = PeftConfig.from_pretrained(os.fspath(adapter_path)).base_model_name_or_path
        if not base_model:
            raise ValueError(f"{adapter_path}: the adapter records no base model; pass base_model=")
    if isinstance(base_model, (str, os.PathLike)):
        base_model = MultiTaskModel.from_pretrained(os.fspath(base_model))
    try:
        model = PeftModel.from_pretrained(base_model, os.fspath(adapter_path), is_trainable=is_trainable)
    except Exception as err:
        if type(err).__name__ != "SafetensorError":  # safetensors' own error names no file
            raise
        weights = os.path.join(os.fspath(adapter_path), "adapter_model.safetensors")
        raise ValueError(f"LoRA adapter weights {weights!r} cannot be read ({err}); save or download them again") from err
    keep_frozen_modules_in_eval(model)
    return model


def merge_lora(peft_model) -> nn.Module:
    """Fold the adapters into the backbone weights and return the plain [`MultiTaskModel`] (trained heads in place),
    which saves and loads like any other."""
    merged = peft_model.merge_and_unload()
    remove_frozen_eval_hooks(merged)
    for param in merged.parameters():
        param.requires_grad_(True)
    return merged
