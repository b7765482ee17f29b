"""Freeze policies: which backbone blocks train, and frozen modules that stay in eval mode (BatchNorm stats included).

Every policy is "the top ``n`` backbone blocks train, the heads always train": ``heads`` is ``n = 0``, ``full`` is every
block, ``top_n`` is ``n``, ``auto`` picks one of them from the data and backbone size.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal, get_args

from torch import nn

from .blocks import backbone_blocks, unwrap_multitask_model

logger = logging.getLogger(__name__)

FreezePolicy = Literal["heads", "top_n", "full", "auto"]
FREEZE_POLICIES: tuple[str, ...] = get_args(FreezePolicy)

AUTO_HEADS_BELOW = 30
"""``auto``: fewer training samples per label than this → only the heads train. Measured (benchmarks/README.md 5b,
Fashion-MNIST grids, 10 labels): with the library's fine-tuning defaults the top blocks beat the heads-only stage by
more than the seeds' spread from 30 samples per label up (the smallest size measured); 100 had been a guess."""
AUTO_FULL_FROM = 1000
"""``auto``: at least this many samples per label (times the backbone-size factor) → the whole backbone trains."""
AUTO_SIZE_UNIT = 10_000_000
"""``auto``: each multiple of this many backbone parameters multiplies the data needed for full fine-tuning."""

_EVAL_HOOK = "_hf_mtl_frozen_eval_hook"
_NORM_HOOK = "_hf_mtl_norm_stats_hook"


@dataclass
class FreezeChoice:
    """The outcome of a freeze policy: the policy, how many top blocks train, and why (logged)."""

    policy: str
    trainable_blocks: int
    num_blocks: int
    reason: str


def choose_freeze_policy(num_train_samples: int, num_labels: int, backbone_params: int, num_blocks: int) -> FreezeChoice:
    """The ``auto`` rule, from the classic transfer-learning guidance.

    Little data per label: retrain only the heads. More: also the top blocks, more of them as data grows. A lot
    (more for a bigger backbone): everything, starting from the pretrained weights.
    """
    if num_train_samples <= 0 or num_labels <= 0:
        raise ValueError(f"auto freeze policy needs the training-set size and label count, got {num_train_samples}, "
                         f"{num_labels}")
    per_label = num_train_samples / num_labels
    size_factor = max(1.0, backbone_params / AUTO_SIZE_UNIT)
    full_from = AUTO_FULL_FROM * size_factor
    facts = (f"{num_train_samples} samples / {num_labels} labels = {per_label:.1f} per label, backbone "
             f"{backbone_params / 1e6:.2f}M parameters in {num_blocks} blocks")
    if per_label < AUTO_HEADS_BELOW:
        return FreezeChoice("heads", 0, num_blocks, f"{facts}: under {AUTO_HEADS_BELOW} per label, train only the heads")
    if per_label >= full_from:
        return FreezeChoice("full", num_blocks, num_blocks, f"{facts}: at least {full_from:.0f} per label, train all")
    if num_blocks < 2:
        return FreezeChoice("full", num_blocks, num_blocks, f"{facts}: enough data to fine-tune, one block: train all")
    share = math.log(per_label / AUTO_HEADS_BELOW) / math.log(full_from / AUTO_HEADS_BELOW)
    n = min(num_blocks - 1, max(1, math.ceil(share * (num_blocks - 1))))
    return FreezeChoice("top_n", n, num_blocks,
                        f"{facts}: between {AUTO_HEADS_BELOW} and {full_from:.0f} per label, train the top {n} blocks")


def apply_freeze_policy(
    model: nn.Module,
    policy: str,
    top_n: int = 1,
    num_train_samples: int | None = None,
    tasks: Sequence[str] | None = None,
) -> FreezeChoice:
    """Freeze the backbone per ``policy`` (``heads``, ``top_n``, ``full`` or ``auto``); the heads train.

    ``auto`` needs ``num_train_samples``; it and ``top_n`` count blocks as [`backbone_blocks`] does. ``tasks``
    limits training to those tasks' heads (e.g. a task just added to a trained model; the others stay exactly as
    they are); default every head.
    """
    if policy not in FREEZE_POLICIES:
        raise ValueError(f"freeze_policy must be one of {FREEZE_POLICIES}, got {policy!r}")
    base = unwrap_multitask_model(model)
    blocks = backbone_blocks(base)
    if policy == "heads":
        choice = FreezeChoice("heads", 0, len(blocks), "backbone frozen, heads train")
    elif policy == "full":
        choice = FreezeChoice("full", len(blocks), len(blocks), "everything trains")
    elif policy == "top_n":
        if not 0 <= top_n <= len(blocks):
            raise ValueError(f"freeze_top_n={top_n} but the backbone has {len(blocks)} blocks (0..{len(blocks)})")
        choice = FreezeChoice("top_n", top_n, len(blocks), f"top {top_n} of {len(blocks)} backbone blocks train")
    else:
        if num_train_samples is None:
            raise ValueError("freeze_policy='auto' needs the number of training samples (a sized train dataset)")
        num_labels = sum(spec.output_size for spec in base.task_specs)
        backbone_params = sum(p.numel() for p in base.backbone.parameters())
        choice = choose_freeze_policy(num_train_samples, num_labels, backbone_params, len(blocks))
    set_trainable_blocks(base, choice.trainable_blocks, blocks=blocks, tasks=tasks)
    # `auto` decides for the user, so it says so even at the default log level.
    log = logger.warning if policy == "auto" else logger.info
    log("freeze policy %r -> %s (%s)", policy, choice.policy, choice.reason)
    return choice


def set_trainable_blocks(
    model: nn.Module, n: int, blocks: list[list[str]] | None = None, tasks: Sequence[str] | None = None
) -> None:
    """Make the top ``n`` backbone blocks and the heads of ``tasks`` (default: all) trainable, freeze the rest, and
    keep frozen modules in eval mode (so BatchNorm statistics and dropout of frozen parts do not move)."""
    base = unwrap_multitask_model(model)
    blocks = backbone_blocks(base) if blocks is None else blocks
    names = list(base.heads)
    if tasks is not None:
        unknown = sorted(set(tasks) - set(names))
        if unknown:
            raise ValueError(f"trainable tasks {unknown} are not tasks of the model; its tasks are {names}")
    trained_heads = {f"heads.{name}." for name in (names if tasks is None else tasks)}
    trainable = {name for block in blocks[len(blocks) - n:] for name in block} if n > 0 else set()
    for name, param in base.named_parameters():
        if name.startswith("heads."):
            train = any(name.startswith(prefix) for prefix in trained_heads)
        else:
            train = not name.startswith("backbone.") or name in trainable
        param.requires_grad_(train)
    keep_frozen_modules_in_eval(base)


def trainable_tasks(model: nn.Module) -> list[str]:
    """Tasks whose heads train."""
    base = unwrap_multitask_model(model)
    return [name for name, head in base.heads.items() if all(p.requires_grad for p in head.parameters())]


def count_trainable_blocks(model: nn.Module, blocks: list[list[str]] | None = None) -> int:
    """How many top backbone blocks are entirely trainable."""
    base = unwrap_multitask_model(model)
    blocks = backbone_blocks(base) if blocks is None else blocks
    params = dict(base.named_parameters())
    n = 0
    for block in reversed(blocks):
        if not all(params[name].requires_grad for name in block):
            break
        n += 1
    return n


def keep_frozen_modules_in_eval(model: nn.Module) -> list[str]:
    """Keep every module whose parameters are all frozen in eval mode, whatever ``model.train()`` says.

    ``Trainer`` calls ``model.train()`` every step; a forward pre-hook on each outermost frozen module switches it
    (and its children: BatchNorm, dropout) back to eval just before it runs. Hooks from an earlier call are replaced.
    Returns the names of the hooked modules.
    """
    remove_frozen_eval_hooks(model)
    hooked: list[str] = []
    _hook_frozen(model, "", hooked)
    return hooked


def remove_frozen_eval_hooks(model: nn.Module) -> None:
    """Undo [`keep_frozen_modules_in_eval`]: modules follow ``model.train()`` / ``model.eval()`` again."""
    for module in model.modules():
        handle = module.__dict__.pop(_EVAL_HOOK, None)
        if handle is not None:
            handle.remove()


def _hook_frozen(module: nn.Module, name: str, hooked: list[str]) -> None:
    params = list(module.parameters())
    if params and not any(p.requires_grad for p in params):
        module.__dict__[_EVAL_HOOK] = module.register_forward_pre_hook(_to_eval)
        hooked.append(name)
        return
    for child_name, child in module.named_children():
        _hook_frozen(child, f"{name}.{child_name}" if name else child_name, hooked)


def _to_eval(module: nn.Module, args) -> None:
    if module.training:
        module.eval()


def has_estimated_statistics(module: nn.Module) -> bool:
    """Whether a BatchNorm layer holds running statistics estimated from data (pretrained), not its fresh 0 / 1."""
    mean, var = getattr(module, "running_mean", None), getattr(module, "running_var", None)
    if mean is None or var is None:
        return False
    return bool(mean.ne(0).any() or var.ne(1).any())


def freeze_norm_statistics(model: nn.Module, estimated_only: bool = False) -> list[str]:
    """Keep every BatchNorm layer of the backbone in eval mode while training: it normalises with its pretrained
    running statistics (which stop moving) while its scale and shift still train when trainable. ``estimated_only``:
    only layers whose statistics were estimated from data (a pretrained backbone; a fresh layer keeps batch statistics).

    Batch statistics of small fine-tuning batches are noisy and shift the features the heads were fitted on; Keras'
    transfer-learning guide keeps BatchNorm in inference mode when fine-tuning for this reason, and timm offers
    ``freeze_batch_norm_2d``. Returns the names of the hooked layers.
    """
    from torch.nn.modules.batchnorm import _BatchNorm

    base = unwrap_multitask_model(model)
    hooked = []
    for name, module in base.backbone.named_modules():
        if not isinstance(module, _BatchNorm):
            continue
        if _NORM_HOOK in module.__dict__:  # hooked by an earlier stage (e.g. heads-only): still kept, so listed
            hooked.append(f"backbone.{name}")
        elif not estimated_only or has_estimated_statistics(module):
            module.__dict__[_NORM_HOOK] = module.register_forward_pre_hook(_to_eval)
            hooked.append(f"backbone.{name}")
    return hooked
