"""Sharded training (FSDP2) of a [`MultiTaskModel`] through the stock path: ``TrainingArguments(fsdp=True,
fsdp_config={"version": 2, ...})`` or an ``accelerate config`` / ``accelerate launch --use_fsdp``.

Two gaps of the stock path are closed here:

- On a machine without GPUs, accelerate 1.x keeps a multi-process CPU run ``MULTI_CPU`` and silently drops the FSDP
  plugin (``AcceleratorState`` only turns the GPU-like types into ``FSDP``): the run trains with DDP while the user
  asked for sharding. torch's ``fully_shard`` runs on CPU with gloo, so [`enable_fsdp_on_cpu`] applies the plugin the
  same way accelerate does on GPUs (distributed type ``FSDP``, the plugin in the shared state).
- A [`MultiTaskModel`] wraps its backbone in a plain module, so transformers does not collect the backbone's
  ``_no_split_modules`` and FSDP would shard the whole model as one unit (every step gathers all of it).
  [`default_wrap_classes`] names the backbone's block classes, so each block is its own FSDP unit.
"""

from __future__ import annotations

import logging
import os
from typing import Any

from torch import nn

logger = logging.getLogger(__name__)


def fsdp_requested(args: Any) -> bool:
    """FSDP asked for by the training arguments (``fsdp=...``) or by the launcher (``accelerate launch --use_fsdp`` /
    an accelerate config with ``distributed_type: FSDP`` sets ``ACCELERATE_USE_FSDP``)."""
    return getattr(args, "fsdp_plugin_args", None) is not None or \
        os.environ.get("ACCELERATE_USE_FSDP", "false").lower() == "true"


def enable_fsdp_on_cpu(accelerator: Any, args: Any, model: nn.Module | None) -> bool:
    """Turn a multi-process CPU run (``MULTI_CPU``, gloo) that asked for FSDP into an FSDP run; True if it did.

    The plugin is the one the stock Trainer builds from ``args.fsdp_plugin_args`` (or accelerate's from the launcher's
    environment), put where accelerate puts it on GPUs. Nothing changes when accelerate already enabled FSDP.
    """
    from accelerate.state import AcceleratorState, PartialState
    from accelerate.utils import DistributedType, FullyShardedDataParallelPlugin

    state = accelerator.state
    if state.distributed_type != DistributedType.MULTI_CPU or not fsdp_requested(args):
        return False
    plugin_args = getattr(args, "fsdp_plugin_args", None)
    plugin = FullyShardedDataParallelPlugin(**plugin_args) if plugin_args is not None else \
        FullyShardedDataParallelPlugin()
    if plugin.fsdp_version != 2:
        raise ValueError("FSDP on CPU needs FSDP2 (fully_shard): set fsdp_config={'version': 2} (or "
                         "`accelerate launch --fsdp_version 2`); FSDP1 has no CPU support")
    if plugin.transformer_cls_names_to_wrap is None and model is not None:
        names = default_wrap_classes(model)
        if names:
            plugin.transformer_cls_names_to_wrap = names
    AcceleratorState._shared_state["distributed_type"] = DistributedType.FSDP
    PartialState._shared_state["distributed_type"] = DistributedType.FSDP
    AcceleratorState._shared_state["fsdp_plugin"] = plugin
    logger.info("FSDP2 on CPU (gloo): %d processes shard the model; wrapped per block: %s", state.num_processes,
                plugin.transformer_cls_names_to_wrap)
    return True


def default_wrap_classes(model: nn.Module) -> list[str]:
    """Class names of the backbone's blocks, for FSDP's per-block wrapping (``transformer_layer_cls_to_wrap``).

    A transformers backbone names them itself (``_no_split_modules``); otherwise (timm) the classes of the modules
    holding each block of [`hf_mtl.transfer.backbone_blocks`] (the grouping freezing and layer decay use)."""
    from .transfer.blocks import backbone_blocks, unwrap_multitask_model

    try:
        inner_model = unwrap_multitask_model(model)
    except TypeError:
        return []
    if getattr(inner_model, "_no_split_modules", None):
        return []  # transformers collected them: accelerate's default already wraps per block
    inner = inner_model.backbone.model
    own = getattr(inner, "_no_split_modules", None)
    if own:
        # accelerate gives the input embeddings their own unit: a class around them (BertEmbeddings) would shard
        # their weight twice
        embeddings = inner_model.get_input_embeddings()
        around = {type(m).__name__ for m in inner.modules() if embeddings is not None and m is not embeddings
                  and any(sub is embeddings for sub in m.modules())}
        return sorted(set(own) - around)
    modules = dict(inner_model.named_modules())
    names: set[str] = set()
    for block in backbone_blocks(inner_model, fine=True):
        parts = os.path.commonprefix([name.split(".")[:-1] for name in block])  # the block's own module
        module = modules.get(".".join(parts))
        if module is not None and module is not inner and len(block) > 1:
            names.add(type(module).__name__)
    return sorted(names - {"Sequential", "ModuleList", "ModuleDict"})


def reshard(model: nn.Module | None) -> None:
    """Put every FSDP2 unit of an already sharded model back to its sharded parameters.

    A forward outside training (``evaluate``) leaves the root unit holding full, unsharded parameters registered on
    the modules; freezing (``requires_grad``), a new optimizer or ``state_dict`` would then act on those temporary
    tensors instead of the sharded parameters FSDP keeps. Call it before any of these on a model a previous stage
    sharded."""
    if model is None:
        return
    from torch.distributed.fsdp import FSDPModule

    for module in model.modules():
        if isinstance(module, FSDPModule):
            module.reshard()


def is_sharded(model: nn.Module | None) -> bool:
    """Whether ``model`` is already an FSDP2 unit (``fully_shard`` turned it into an ``FSDPModule`` in place)."""
    from torch.distributed.fsdp import FSDPModule

    return isinstance(model, FSDPModule)
