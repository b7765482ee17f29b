"""Backbone blocks: the backbone's parameters grouped bottom (stem) to top, found through the libraries' own APIs.

timm models describe their own layer groups (``group_matcher``, the same grouping timm's layer-wise LR decay uses) or,
failing that, their stages (``feature_info``); transformers models keep their layers in one ``nn.ModuleList`` (the
encoder layer list). Nothing here guesses parameter names per architecture.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable

from accelerate.utils import extract_model_from_parallel
from torch import nn

from ..modeling_mtl import MultiTaskModel

logger = logging.getLogger(__name__)

BACKBONE_PREFIX = "backbone.model."


def unwrap_multitask_model(model: nn.Module) -> nn.Module:
    """The [`MultiTaskModel`] inside accelerate's wrappers (DDP, FSDP, DeepSpeed, ``torch.compile``: accelerate's
    ``extract_model_from_parallel``) and a PEFT wrapper (``get_base_model``), or the model itself."""
    inner = extract_model_from_parallel(model, keep_torch_compile=False)
    if hasattr(inner, "get_base_model"):
        inner = extract_model_from_parallel(inner.get_base_model(), keep_torch_compile=False)
    if isinstance(inner, MultiTaskModel):
        return inner
    raise TypeError(f"expected a MultiTaskModel (optionally PEFT-wrapped), got {type(model).__name__}")


def backbone_blocks(model: nn.Module, fine: bool = False) -> list[list[str]]:
    """Names (as in ``model.named_parameters()``) of the backbone's parameters, one list per block, stem first.

    Args:
        model: a [`MultiTaskModel`].
        fine: timm only: ``True`` splits stages into their blocks (``group_matcher(coarse=False)``, what timm's
            layer-wise LR decay uses); ``False`` gives stages for convnets and blocks for ViTs.
    """
    model = unwrap_multitask_model(model)
    inner = model.backbone.model
    names = [name for name, _ in inner.named_parameters()]
    if model.config.backbone_library == "timm":
        groups = _timm_groups(inner, names, fine)
    else:
        groups = _transformers_groups(inner, names)
    blocks = [[BACKBONE_PREFIX + name for name in group] for group in groups if group]
    return blocks


def _timm_groups(inner: nn.Module, names: list[str], fine: bool) -> list[list[str]]:
    matcher = getattr(inner, "group_matcher", None)
    if matcher is not None:
        try:
            spec = matcher(coarse=not fine)
        except NotImplementedError:
            spec = None
        if spec is not None:
            from timm.models import group_parameters

            grouped = group_parameters(inner, spec)
            return [grouped[key] for key in sorted(grouped)]
    if getattr(inner, "feature_info", None):
        return feature_info_groups(inner, names)
    logger.warning("%s exposes neither group_matcher nor feature_info: treating it as one block", type(inner).__name__)
    return [names]


def feature_info_groups(inner: nn.Module, names: list[str]) -> list[list[str]]:
    """Stages from a timm model's ``feature_info`` (for models without ``group_matcher``): stem, then one group per
    stage module."""
    feature_info = inner.feature_info
    info = feature_info.info if hasattr(feature_info, "info") else feature_info
    stages = [entry["module"] for entry in info if entry.get("module")]
    return [group for group in _groups_by_prefix(names, stages) if group]


def _transformers_groups(inner: nn.Module, names: list[str]) -> list[list[str]]:
    layers = find_layer_list(inner)
    if layers is None:
        logger.warning("%s has no layer list (nn.ModuleList): treating it as one block", type(inner).__name__)
        return [names]
    prefix, count = layers
    return _groups_by_prefix(names, [f"{prefix}.{i}" if prefix else str(i) for i in range(count)])


def find_layer_list(inner: nn.Module) -> tuple[str, int] | None:
    """(qualified name, length) of the model's stack of layers: the ``nn.ModuleList`` of same-class modules holding the
    most parameters, preferring one as long as ``config.num_hidden_layers`` (the encoder layer list)."""
    candidates = []
    for name, module in inner.named_modules():
        if isinstance(module, nn.ModuleList) and len(module) >= 2 and len({type(m) for m in module}) == 1:
            size = sum(p.numel() for p in module.parameters())
            if size:
                candidates.append((size, name, len(module)))
    if not candidates:
        return None
    wanted = getattr(getattr(inner, "config", None), "num_hidden_layers", None)
    preferred = [c for c in candidates if c[2] == wanted] or candidates
    _, name, count = max(preferred)
    return name, count


def _groups_by_prefix(names: Iterable[str], block_prefixes: list[str]) -> list[list[str]]:
    """Group 0 is everything before the first block; a parameter outside every block joins the block registered
    before it (e.g. a final norm or pooler joins the top block), as timm's ``MATCH_PREV_GROUP``."""
    groups: list[list[str]] = [[] for _ in range(len(block_prefixes) + 1)]
    current = 0
    for name in names:
        for index, prefix in enumerate(block_prefixes):
            if name.startswith(prefix + "."):
                current = index + 1
                break
        groups[current].append(name)
    return groups
