"""Training arguments of [`MultiTaskTrainer`]."""

from __future__ import annotations

import copy
import json
import os
from dataclasses import dataclass, field, fields
from typing import Any, Literal, get_args

import torch
from transformers import TrainingArguments

from .balancing import TaskBalancing
from .nonfinite import NonfinitePolicy
from .transfer.freezing import FreezePolicy
from .transfer.unfreezing import UnfreezeUnit

ValidateImages = Literal["header", "decode"]
VALIDATE_IMAGES: tuple[str, ...] = get_args(ValidateImages)
"""Values of ``MultiTaskTrainingArguments.validate_images``."""
NormStatistics = Literal["auto", "frozen", "train"]
NORM_STATISTICS: tuple[str, ...] = get_args(NormStatistics)
"""Values of ``MultiTaskTrainingArguments.norm_statistics``."""


def multi_process_without_accelerator() -> bool:
    """True in a multi-process launch (``WORLD_SIZE`` > 1) on a machine with no GPU or other accelerator."""
    if int(os.environ.get("WORLD_SIZE", "1")) <= 1:
        return False
    accelerator = getattr(torch, "accelerator", None)
    if accelerator is not None and hasattr(accelerator, "is_available"):
        return not accelerator.is_available()
    return not torch.cuda.is_available()


ENUMERATED_FIELDS = ("freeze_policy", "norm_statistics", "unfreeze_unit", "validate_images", "task_balancing",
                     "nonfinite_policy")
"""The fields of `MultiTaskTrainingArguments` typed ``Literal[...]`` (with ``choices``), checked in ``__post_init__``."""


@dataclass
class MultiTaskTrainingArguments(TrainingArguments):
    """[`~transformers.TrainingArguments`] with multi-task defaults.

    Task columns are not arguments of the model's `forward`, so `remove_unused_columns` defaults to `False`: the
    collator picks model inputs and label columns itself.
    """

    remove_unused_columns: bool = field(
        default=False,
        metadata={"help": "Keep dataset columns: the multi-task collator reads the label columns by task name."},
    )
    log_task_losses: bool = field(
        default=True, metadata={"help": "Log each task's mean loss over the logging window as `loss_<task>`."}
    )
    # -- transfer learning (hf_mtl.transfer) --------------------------------------------------------------------------
    freeze_policy: FreezePolicy | None = field(
        default=None,
        metadata={
            "help": "What trains: `heads` (backbone frozen), `top_n` (the top `freeze_top_n` backbone blocks too), "
            "`full`, or `auto` (picked from training samples per label and backbone size, and logged). Unset leaves "
            "`requires_grad` as the model has it. Frozen parts keep BatchNorm statistics and dropout in eval mode.",
            "choices": list(get_args(FreezePolicy)),
        },
    )
    freeze_top_n: int = field(
        default=1, metadata={"help": "With freeze_policy='top_n': how many top backbone blocks (stages/layers) train."}
    )
    trainable_tasks: list[str] | None = field(
        default=None,
        metadata={
            "help": "With a freeze policy: only these tasks' heads train (e.g. a task just added to a trained model, "
            "the other heads stay exactly as they are). Default: every head."
        },
    )
    layer_decay: float | None = field(
        default=None,
        metadata={
            "help": "Layer-wise LR decay in (0, 1]: heads get `learning_rate`, the backbone block `d` levels below "
            "gets `learning_rate * layer_decay**d`; works with every transformers scheduler."
        },
    )
    norm_statistics: NormStatistics = field(
        default="auto",
        metadata={
            "help": "BatchNorm running statistics of the backbone's trainable blocks while training: `train` (stock: "
            "normalise with batch statistics and update the running ones), `frozen` (normalise with the pretrained "
            "running statistics, which stay as they are; the affine weights still train) or `auto` (frozen for layers "
            "whose statistics were estimated from data, i.e. a pretrained backbone; fresh layers train theirs). "
            "Frozen blocks always keep theirs. Measured in benchmarks/README.md (fine-tuning recipe).",
            "choices": list(NORM_STATISTICS),
        },
    )
    unfreeze_every: float | None = field(
        default=None,
        metadata={
            "help": "Gradual unfreezing: unfreeze `unfreeze_blocks_per_stage` more backbone blocks, top-down, every "
            "this many epochs or steps (`unfreeze_unit`), starting from what `freeze_policy` left trainable."
        },
    )
    unfreeze_unit: UnfreezeUnit = field(
        default="epoch",
        metadata={"help": "Gradual unfreezing schedule unit: epoch or step.", "choices": list(get_args(UnfreezeUnit))},
    )
    unfreeze_blocks_per_stage: int = field(default=1, metadata={"help": "Backbone blocks unfrozen at each stage."})
    feature_cache: bool = field(
        default=False,
        metadata={
            "help": "With a frozen backbone and un-augmented inputs, compute pooled backbone features once (an Arrow "
            "cache keyed by backbone + preprocessing fingerprint) and train the heads on them."
        },
    )
    feature_cache_dir: str | None = field(
        default=None, metadata={"help": "Where the feature cache lives (default: beside the dataset's cache files)."}
    )
    lora_r: int | None = field(
        default=None,
        metadata={
            "help": "LoRA rank: wrap the model in PEFT LoRA adapters on the backbone (heads train in full; "
            "`save_model` writes adapter + heads; `hf_mtl.transfer.merge_lora` gives a plain model). Unset: no LoRA."
        },
    )
    lora_alpha: int = field(default=16, metadata={"help": "LoRA scaling numerator (`lora_alpha / lora_r`)."})
    lora_dropout: float = field(default=0.0, metadata={"help": "Dropout on the LoRA path."})
    lora_target_modules: list[str] | None = field(
        default=None,
        metadata={"help": "Backbone layer names (suffixes, e.g. query value) LoRA adapts; default every linear / conv."},
    )

    # -- labels and task balancing (hf_mtl.data, hf_mtl.balancing) ---------------------------------------------------
    validate_labels: bool = field(
        default=True,
        metadata={"help": "Encode every training label once before training; a bad value fails at once, naming task, "
                  "column and row."},
    )
    validate_images: ValidateImages = field(
        default="header",
        metadata={"help": "How image inputs are checked before training (with `validate_labels`): `header` reads each "
                  "file's header (cheap: missing and unreadable files), `decode` decodes every image once (also files "
                  "corrupt past a valid header, which would otherwise fail when first read, mid-training).",
                  "choices": list(VALIDATE_IMAGES)},
    )
    standardize_targets: bool = field(
        default=True,
        metadata={"help": "Regression tasks without target statistics get the mean / std / median of their present "
                  "training values stored in their spec; the loss works on standardised targets, predictions and "
                  "metrics stay in the original units. False keeps raw-scale targets."},
    )
    task_balancing: TaskBalancing = field(
        default="static",
        metadata={
            "help": "How task losses combine: `static` (each task's `loss_weight`), `uncertainty` (Kendall et al. "
            "2018), `dwa` (dynamic weight averaging), `gradnorm` (GradNorm at the pooled features) or `rlw` (random "
            "loss weighting). Dynamic weights multiply `loss_weight` and are logged as `task_weight_<task>`.",
            "choices": list(get_args(TaskBalancing)),
        },
    )
    task_balancing_kwargs: dict[str, Any] | str | None = field(
        default=None,
        metadata={"help": "Options of the balancer (JSON on the command line), e.g. dwa: temperature, period; "
                  "gradnorm: alpha."},
    )
    task_balancing_lr: float = field(
        default=0.025,
        metadata={"help": "Learning rate of learnable task weights (uncertainty, gradnorm); follows the LR schedule."},
    )
    # -- numerical safety (hf_mtl.nonfinite) --------------------------------------------------------------------------
    nonfinite_policy: NonfinitePolicy = field(
        default="stop",
        metadata={
            "help": "What a NaN/inf in an input, a label, a task loss or the gradients does: `stop` (raise a "
            "FloatingPointError naming the step and the task/input; the bad update is not applied), `skip` (skip that "
            "optimizer step, warn, and log the count as `nonfinite_skipped_steps`) or `off` (stock Trainer: the update "
            "is applied). NaN labels mean 'missing' and are never an error.",
            "choices": list(get_args(NonfinitePolicy)),
        },
    )

    def __post_init__(self) -> None:
        if not self.use_cpu and multi_process_without_accelerator():
            # accelerate gives each process of a CPU-only multi-process launch (torchrun / accelerate launch) its own
            # undistributed run unless told cpu=True; with it the processes form one gloo group and train one model
            self.use_cpu = True
        super().__post_init__()
        self._refuse_meaningless_stock_fields()
        fields_by_name = {spec.name: spec for spec in fields(self)}
        for name in ENUMERATED_FIELDS:  # fail at argument parsing, not after the model is built
            choices, value = fields_by_name[name].metadata["choices"], getattr(self, name)
            if value is not None and value not in choices:
                raise ValueError(f"unknown {name} {value!r}; choose one of {choices}")
        if self.dataloader_pin_memory and (self.use_cpu or not _accelerator_available()):
            self.dataloader_pin_memory = False  # nothing to pin for, and torch's DataLoader warns at every stage
        if isinstance(self.task_balancing_kwargs, str):
            try:
                self.task_balancing_kwargs = json.loads(self.task_balancing_kwargs)
            except json.JSONDecodeError as err:
                raise ValueError(f"task_balancing_kwargs is not valid JSON: {self.task_balancing_kwargs!r}") from err

    def _refuse_meaningless_stock_fields(self) -> None:
        """Stock fields the masked multi-task loss would silently ignore or contradict are errors here.

        Implemented: ``label_smoothing_factor`` (classification targets, see ``TaskType.loss_terms``). Refused:
        ``label_names`` (labels are one dict ``{task: tensor}`` under ``labels``), ``remove_unused_columns=True``
        (drops the task label columns), ``average_tokens_across_devices=False`` (each task is always normalised by its
        count over all processes). ``eval_do_concat_batches=False`` is refused by the trainer with hf_mtl's metrics.
        """
        if not (0.0 <= self.label_smoothing_factor < 1.0):
            raise ValueError(f"label_smoothing_factor must lie in [0, 1), got {self.label_smoothing_factor!r}")
        if self.label_names not in (None, ["labels"]):
            raise ValueError(
                f"label_names={self.label_names!r}: hf_mtl's collator puts every task's labels into one dict under "
                "`labels`; map dataset columns to tasks with MultiTaskDataCollator(label_columns=...) instead"
            )
        if self.remove_unused_columns:
            raise ValueError(
                "remove_unused_columns=True would drop the task label columns (they are not arguments of the model's "
                "forward) and train without labels; leave it False: the collator picks inputs and labels itself"
            )
        if not self.average_tokens_across_devices:
            raise ValueError(
                "average_tokens_across_devices=False: MultiTaskTrainer always normalises each task's loss by its number "
                "of present labels over all processes (so N processes give the gradient of one with N times the "
                "batch); leave it True"
            )

    def __getstate__(self) -> dict[str, Any]:
        """Pickles (the Trainer's ``training_args.bin``, pushed with the model) never carry a token."""
        state = dict(self.__dict__)
        for key in state:
            if key.endswith("_token"):
                state[key] = None
        return state

    def __copy__(self) -> MultiTaskTrainingArguments:
        new = object.__new__(type(self))
        new.__dict__.update(self.__dict__)
        return new

    def __deepcopy__(self, memo: dict[int, Any]) -> MultiTaskTrainingArguments:
        """In-memory copies keep the token (only what is written to disk drops it)."""
        new = object.__new__(type(self))
        memo[id(self)] = new
        new.__dict__.update(copy.deepcopy(self.__dict__, memo))
        return new


def _accelerator_available() -> bool:
    accelerator = getattr(torch, "accelerator", None)  # torch >= 2.6: CUDA, XPU, MPS, ...
    return bool(accelerator.is_available()) if accelerator is not None else torch.cuda.is_available()
