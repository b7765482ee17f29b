"""Gradual unfreezing (ULMFiT): start with the top of the network and unfreeze backbone blocks top-down on a schedule."""

from __future__ import annotations

import logging
import math
from typing import Literal, get_args

from transformers import TrainerCallback

from .blocks import backbone_blocks, unwrap_multitask_model
from .freezing import count_trainable_blocks, set_trainable_blocks, trainable_tasks

logger = logging.getLogger(__name__)

UnfreezeUnit = Literal["epoch", "step"]
UNFREEZE_UNITS: tuple[str, ...] = get_args(UnfreezeUnit)


class GradualUnfreezingCallback(TrainerCallback):
    """Unfreeze ``blocks_per_stage`` more backbone blocks, top-down, every ``every`` epochs (or optimizer steps).

    Training starts from whatever the freeze policy left trainable (typically ``heads``). The optimizer must already
    hold the frozen parameters with their (layer-decayed) LRs: [`MultiTaskTrainer`] builds it that way when this
    callback is present, and [`param_groups`] does with ``include_frozen=True``. A frozen parameter has no gradient,
    so torch optimizers skip it; once unfrozen, its state (e.g. Adam moments and step count) starts fresh at its first
    real update while the other parameters keep theirs, and the LR scheduler already covers its group. Nothing has to
    be rebuilt mid-training, which is what keeps schedules and checkpoints consistent.

    Args:
        every: epochs (``unit="epoch"``) or optimizer steps (``unit="step"``) between unfreezing stages.
        unit: ``"epoch"`` or ``"step"``.
        blocks_per_stage: blocks unfrozen at each stage.
    """

    def __init__(self, every: float = 1, unit: str = "epoch", blocks_per_stage: int = 1) -> None:
        if unit not in UNFREEZE_UNITS:
            raise ValueError(f"unfreeze unit must be one of {UNFREEZE_UNITS}, got {unit!r}")
        if not every > 0:
            raise ValueError(f"unfreeze every must be > 0, got {every}")
        if blocks_per_stage < 1:
            raise ValueError(f"blocks_per_stage must be >= 1, got {blocks_per_stage}")
        self.every = every
        self.unit = unit
        self.blocks_per_stage = blocks_per_stage
        self.start_blocks = 0
        self.history: list[tuple[float, int]] = []
        """(epoch or step, trainable top blocks) at each change, for logs and tests."""

    def on_train_begin(self, args, state, control, model=None, optimizer=None, **kwargs):
        if args.world_size > 1:
            raise ValueError(
                "gradual unfreezing changes requires_grad during training, which DistributedDataParallel does not "
                "follow (it registers trainable parameters once); train on one process or use a fixed freeze policy"
            )
        base = unwrap_multitask_model(model)
        self._blocks = backbone_blocks(base)
        self.start_blocks = count_trainable_blocks(base, self._blocks)
        self._tasks = trainable_tasks(base)
        if optimizer is not None:
            held = {id(p) for group in optimizer.param_groups for p in group["params"]}
            missing = [n for n, p in base.named_parameters() if n.startswith("backbone.") and id(p) not in held]
            if missing:
                raise ValueError(
                    f"the optimizer lacks {len(missing)} frozen backbone parameters (e.g. {missing[:2]}), so unfreezing "
                    "them would never train them: use MultiTaskTrainer, or build the optimizer from "
                    "hf_mtl.transfer.param_groups(model, ..., include_frozen=True)"
                )
        self._apply(base, state)

    def on_epoch_begin(self, args, state, control, model=None, **kwargs):
        if self.unit == "epoch":
            self._apply(unwrap_multitask_model(model), state)

    def on_step_begin(self, args, state, control, model=None, **kwargs):
        if self.unit == "step":
            self._apply(unwrap_multitask_model(model), state)

    def target_blocks(self, progress: float) -> int:
        """Trainable top blocks after ``progress`` epochs or steps."""
        stages = math.floor(progress / self.every + 1e-9)
        return min(len(self._blocks), self.start_blocks + stages * self.blocks_per_stage)

    def _apply(self, base, state) -> None:
        progress = (state.epoch or 0.0) if self.unit == "epoch" else state.global_step
        target = self.target_blocks(progress)
        if target > count_trainable_blocks(base, self._blocks):
            set_trainable_blocks(base, target, blocks=self._blocks, tasks=self._tasks)
            self.history.append((progress, target))
            logger.info("gradual unfreezing at %s %s: top %d of %d backbone blocks train", self.unit, progress,
                        target, len(self._blocks))
