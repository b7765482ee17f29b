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


LOWER_IS_BETTER_SUFFIXES = ("loss", "_mae", "_rmse", "_mse")
"""Metric names ending so are errors (lower is better): hf_mtl's regression / ordinal MAE and RMSE, their constant
baselines, and losses."""


def lower_is_better(metric: str) -> bool:
    """Whether a lower ``metric`` (e.g. ``eval_score_mae``) is better, from its name."""
    return metric.endswith(LOWER_IS_BETTER_SUFFIXES)


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
            "gets `learning_rate * layer_decay**d`; works with every transformers scheduler. Unset: 0.5 when trained "
            "backbone blocks keep pretrained BatchNorm statistics (`norm_statistics` auto/frozen on a pretrained "
            "CNN; kept statistics alone fine-tune worse than stock, both together keep the heads-only score: "
            "benchmarks/README.md 5f), else one LR; 1 turns it off."
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
    validate_stream_rows: int = field(
        default=1000,
        metadata={"help": "With `validate_labels`: how many rows of a stream (an `IterableDataset`, which cannot be "
                  "read twice cheaply) are checked before training; a bad label further on fails at its batch. "
                  "Map-style datasets (datasets.Dataset, lists, torch Datasets) are checked in full, label columns "
                  "only where the data allows (a torch Dataset of your own is read through its __getitem__)."},
    )
    standardize_targets: bool = field(
        default=True,
        metadata={"help": "Regression tasks without target statistics get the mean / std / median of their present "
                  "training values stored in their spec; the loss works on standardised targets, predictions and "
                  "metrics stay in the original units. False keeps raw-scale targets. A stream's statistics are "
                  "estimated from its first `validate_stream_rows` rows (of each process), as logged."},
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
        if self.greater_is_better is None and self.metric_for_best_model is not None:
            # the stock rule takes every name but '*loss' as higher-is-better, so it would keep the worst MAE
            self.greater_is_better = not lower_is_better(self.metric_for_best_model)
        if isinstance(self.fsdp, str) and self.fsdp.strip().lower() in ("true", "false", ""):
            # a recipe's `fsdp: true` / `--fsdp true` arrives as text; transformers reads text as legacy FSDP options
            self.fsdp = self.fsdp.strip().lower() == "true" or None
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
        """Stock fields the masked multi-task loss would silently ignore or contradict are errors here: the ones
        marked (args) in [`STOCK_FIELD_DECISIONS`] (the others depend on the model or the metrics and are checked by
        ``MultiTaskTrainer``)."""
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
        # (transformers copies the deprecated gradient_checkpointing* aliases into these)
        if self.activation_checkpointing:
            raise ValueError(
                "activation_checkpointing=True (or gradient_checkpointing=True): MultiTaskModel does not support "
                "activation checkpointing (the Trainer would fail at train(), after the data checks); leave it False, "
                "and lower per_device_train_batch_size (with gradient_accumulation_steps, which gives the same "
                "gradient) to save memory"
            )
        if self.activation_checkpointing_kwargs:
            raise ValueError(
                f"activation_checkpointing_kwargs={self.activation_checkpointing_kwargs!r} (or "
                "gradient_checkpointing_kwargs): read only with activation checkpointing, which MultiTaskModel does "
                "not support; leave it unset"
            )
        if self.use_liger_kernel or self.liger_kernel_config:
            name = "use_liger_kernel" if self.use_liger_kernel else "liger_kernel_config"
            raise ValueError(
                f"{name}={getattr(self, name)!r}: Liger kernels patch the layers and causal-LM loss of known "
                "architectures by model_type, and a MultiTaskModel ('multitask') is not one of them: nothing would be "
                "patched. Leave it unset"
            )
        if self.use_cache:
            raise ValueError("use_cache=True: a KV cache serves generation, and a MultiTaskModel generates nothing; "
                             "leave it False")
        if self.eval_use_gather_object:
            raise ValueError(
                "eval_use_gather_object=True: MultiTaskTrainer's predictions are dicts of tensors, gathered per task "
                "across processes; gathered as Python objects they would become lists of task names. Leave it False"
            )
        config = self.parallelism_config
        split = {name: getattr(config, name, 1) for name in ("tp_size", "cp_size", "sp_size")} if config else {}
        split = {name: size for name, size in split.items() if size and size > 1}
        if split:
            raise ValueError(
                f"parallelism_config with {split}: MultiTaskModel has no tensor-parallel plan, and context / sequence "
                "parallelism would pool features over a part of each sequence; use data parallelism (dp_replicate_size "
                "/ dp_shard_size, or FSDP) instead"
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


# -- every stock TrainingArguments field, decided ---------------------------------------------------------------------
STOCK = "stock"
"""The stock Trainer's meaning holds as is for the multi-task model and loss."""
ADAPTED = "adapted"
"""The field keeps its meaning, implemented by hf_mtl for the masked multi-task loss / MultiTaskTrainer."""
REFUSED = "refused"
"""Some values would be ignored or would mean something wrong here: they are an error naming the field (the value
refused and where it is checked are in the entry's reason)."""

_TOKENS = "only a text model's `input_ids` are tokens"
STOCK_FIELD_DECISIONS: dict[str, tuple[str, str]] = {
    # name: (decision, why). tests/test_training_args_audit.py fails when transformers adds a field not listed here.
    "output_dir": (STOCK, "where checkpoints and the final model go (checkpoints are written atomically)"),
    "per_device_train_batch_size": (STOCK, "rows per device per micro-batch"),
    "num_train_epochs": (STOCK, "epochs"),
    "max_steps": (STOCK, "optimizer steps"),
    "learning_rate": (STOCK, "the heads' rate; `layer_decay` scales it down the backbone"),
    "lr_scheduler_type": (STOCK, "any transformers scheduler (layer-wise decay keeps per-group ratios)"),
    "lr_scheduler_kwargs": (STOCK, "passed to the scheduler"),
    "warmup_steps": (STOCK, "scheduler warm-up"),
    "optim": (STOCK, "any optimizer; layer_decay / gradual unfreezing refuse the ones that build their own groups"),
    "optim_args": (STOCK, "passed to the optimizer"),
    "weight_decay": (STOCK, "applied per parameter group as the Trainer does"),
    "adam_beta1": (STOCK, "optimizer hyper-parameter"),
    "adam_beta2": (STOCK, "optimizer hyper-parameter"),
    "adam_epsilon": (STOCK, "optimizer hyper-parameter"),
    "optim_target_modules": (STOCK, "GaLore / APOLLO target modules, by name, as for any model"),
    "gradient_accumulation_steps": (ADAPTED, "each task's loss is normalised by its present labels over the whole "
                                    "window, so k micro-batches give the gradient of one batch of the same rows"),
    "average_tokens_across_devices": (REFUSED, "False (args): each task is always normalised by its count over all "
                                      "processes"),
    "max_grad_norm": (STOCK, "clipping of the summed multi-task gradient"),
    "label_smoothing_factor": (ADAPTED, "smooths classification targets (multiclass cross-entropy, binary / "
                               "multilabel 0/1 targets → ε/2, 1-ε/2); regression untouched; [0, 1) (args)"),
    "bf16": (STOCK, "mixed precision"),
    "fp16": (STOCK, "mixed precision"),
    "bf16_full_eval": (STOCK, "evaluation in bf16"),
    "fp16_full_eval": (STOCK, "evaluation in fp16"),
    "tf32": (STOCK, "matmul precision"),
    "activation_checkpointing": (REFUSED, "True (args): MultiTaskModel does not support activation checkpointing; "
                                 "the Trainer would fail at train() after the data checks"),
    "activation_checkpointing_kwargs": (REFUSED, "set (args): read only with activation_checkpointing"),
    "gradient_checkpointing": (REFUSED, "True (args): deprecated alias of activation_checkpointing"),
    "gradient_checkpointing_kwargs": (REFUSED, "set (args): deprecated alias of activation_checkpointing_kwargs"),
    "torch_compile": (STOCK, "compiles the model's forward; the masked loss runs outside it"),
    "torch_compile_backend": (STOCK, "with torch_compile"),
    "torch_compile_mode": (STOCK, "with torch_compile"),
    "use_liger_kernel": (REFUSED, "True (args): Liger patches known architectures by model_type; 'multitask' is not "
                         "one, so nothing would be patched"),
    "liger_kernel_config": (REFUSED, "set (args): read only with use_liger_kernel"),
    "use_cache": (REFUSED, "True (args): a KV cache for generation; a MultiTaskModel generates nothing"),
    "neftune_noise_alpha": (ADAPTED, "noise on the token embeddings of a text backbone while training (trainer); "
                            "refused for image / audio backbones, which have no token embeddings"),
    "torch_empty_cache_steps": (STOCK, "empties the accelerator cache every N steps"),
    "auto_find_batch_size": (STOCK, "halves the per-device batch on out-of-memory; normalisation follows the batch"),
    "logging_strategy": (STOCK, "when to log (loss_<task> is logged with loss)"),
    "logging_steps": (STOCK, "loss_<task> covers the same window as loss"),
    "logging_first_step": (STOCK, "log step 1"),
    "log_on_each_node": (STOCK, "logging verbosity per node"),
    "logging_nan_inf_filter": (ADAPTED, "also leaves a NaN/inf batch out of loss_<task>; nonfinite_policy decides "
                               "whether the update is applied"),
    "include_num_input_tokens_seen": (REFUSED, f"other than 'no' for an image / audio model (trainer): {_TOKENS}, "
                                      "it would count pixels or samples as tokens"),
    "log_level": (STOCK, "logging"),
    "log_level_replica": (STOCK, "logging"),
    "disable_tqdm": (ADAPTED, "a bar on a terminal; whole periodic lines when the output is a file (progress)"),
    "report_to": (STOCK, "trackers (loss_<task>, task_weight_<task> and eval_<task>_<metric> are logged there)"),
    "run_name": (STOCK, "trackers"),
    "project": (STOCK, "trackers"),
    "trackio_space_id": (STOCK, "trackers"),
    "trackio_bucket_id": (STOCK, "trackers"),
    "trackio_static_space_id": (STOCK, "trackers"),
    "eval_strategy": (STOCK, "when to evaluate"),
    "eval_steps": (STOCK, "when to evaluate"),
    "eval_delay": (STOCK, "when to evaluate"),
    "per_device_eval_batch_size": (STOCK, "also the feature cache's batch"),
    "prediction_loss_only": (REFUSED, "True with a metric_for_best_model other than the loss (trainer): evaluation "
                             "would report no metric to select by; otherwise its stock meaning"),
    "eval_on_start": (STOCK, "an evaluation before step 1"),
    "eval_do_concat_batches": (REFUSED, "False with hf_mtl's compute_metrics (trainer): it would score the first "
                               "batch only"),
    "eval_use_gather_object": (REFUSED, "True (args): predictions are dicts of tensors gathered per task; gathered as "
                               "Python objects they become a list of task names across processes"),
    "eval_accumulation_steps": (STOCK, "moves predictions (dicts per task) to the CPU every N steps"),
    "include_for_metrics": (REFUSED, "non-empty with hf_mtl's compute_metrics (trainer): it reads predictions and "
                            "labels only; with your own compute_metrics the stock meaning holds"),
    "batch_eval_metrics": (REFUSED, "True with hf_mtl's compute_metrics (trainer): ROC AUC, QWK and threshold tuning "
                           "need every prediction at once"),
    "save_only_model": (STOCK, "checkpoints without optimizer state"),
    "save_strategy": (STOCK, "when to checkpoint"),
    "save_steps": (STOCK, "when to checkpoint"),
    "save_on_each_node": (STOCK, "checkpoint on every node; also the model folder, card and the datasets / feature "
                                 "caches (each node's main process); an error with FSDP"),
    "save_total_limit": (STOCK, "rotation of complete checkpoints"),
    "enable_jit_checkpoint": (STOCK, "a checkpoint on SIGTERM, written atomically like the others"),
    "push_to_hub": (ADAPTED, "pushes training_args.json (no pickle) and names what reached the Hub when a push fails"),
    "hub_token": (ADAPTED, "never written to disk (pickles and training_args.json drop it)"),
    "hub_private_repo": (STOCK, "Hub"),
    "hub_model_id": (STOCK, "Hub"),
    "hub_strategy": (STOCK, "Hub (checkpoints pushed without their pickle)"),
    "hub_always_push": (STOCK, "Hub"),
    "hub_revision": (STOCK, "Hub"),
    "load_best_model_at_end": (STOCK, "the best complete checkpoint"),
    "metric_for_best_model": (ADAPTED, "checked against the keys hf_mtl's compute_metrics reports (trainer), with "
                              "suggestions"),
    "greater_is_better": (ADAPTED, "unset: taken from the metric's name (args: MAE / RMSE / loss lower is better; "
                          "the stock rule thinks only '*loss' is); set against the direction of an hf_mtl metric: "
                          "refused (trainer)"),
    "ignore_data_skip": (STOCK, "resume"),
    "restore_callback_states_from_checkpoint": (STOCK, "resume"),
    "full_determinism": (STOCK, "determinism"),
    "seed": (STOCK, "also seeds random loss weighting (rlw), the same on every process"),
    "data_seed": (STOCK, "sampler seed"),
    "use_cpu": (ADAPTED, "set for a multi-process launch without an accelerator, so the processes form one group"),
    "accelerator_config": (STOCK, "accelerate"),
    "parallelism_config": (REFUSED, "tp_size / cp_size / sp_size > 1 (args): MultiTaskModel has no tensor-parallel "
                           "plan, and pooled features over a sequence split across processes are wrong; data "
                           "parallel sizes keep their stock meaning"),
    "dataloader_drop_last": (STOCK, "data loading"),
    "dataloader_num_workers": (STOCK, "data loading (also the feature cache's)"),
    "dataloader_pin_memory": (ADAPTED, "off without an accelerator (nothing to pin for)"),
    "dataloader_persistent_workers": (STOCK, "data loading"),
    "dataloader_prefetch_factor": (STOCK, "data loading"),
    "dataloader_multiprocessing_context": (STOCK, "data loading"),
    "dataloader_in_order": (STOCK, "data loading"),
    "remove_unused_columns": (REFUSED, "True (args): would drop the task label columns; the default is False"),
    "label_names": (REFUSED, "other than None / ['labels'] (args): every task's labels are one dict under `labels`"),
    "train_sampling_strategy": (REFUSED, "'group_by_length' / 'batch_rebalance' for an image / audio model without a "
                                f"length column (trainer): {_TOKENS}, the lengths would be pixel counts"),
    "length_column_name": (STOCK, "with train_sampling_strategy='group_by_length' / 'batch_rebalance'"),
    "ddp_find_unused_parameters": (ADAPTED, "unset: False when every trainable parameter reaches the loss"),
    "ddp_bucket_cap_mb": (STOCK, "DDP"),
    "ddp_broadcast_buffers": (STOCK, "DDP"),
    "ddp_static_graph": (STOCK, "DDP"),
    "ddp_backend": (STOCK, "DDP"),
    "ddp_timeout": (STOCK, "DDP"),
    "fsdp": (STOCK, "FSDP; a CPU-only multi-process run gets FSDP2 where accelerate would fall back to DDP "
                    "(hf_mtl.sharding); a recipe's `true` is read as a bool"),
    "fsdp_config": (STOCK, "FSDP settings (`version: 2` on CPU); wrapping defaults to one unit per backbone block"),
    "deepspeed": (STOCK, "DeepSpeed (nonfinite_policy='skip' is refused with it)"),
    "debug": (STOCK, "underflow / overflow detection hooks any module"),
    "skip_memory_metrics": (STOCK, "memory metrics"),
    "do_train": (STOCK, "read by scripts, not by the Trainer (stock and hf_mtl alike)"),
    "do_eval": (STOCK, "read by scripts, not by the Trainer (stock and hf_mtl alike)"),
    "do_predict": (STOCK, "read by scripts, not by the Trainer (stock and hf_mtl alike)"),
    "resume_from_checkpoint": (ADAPTED, "`hf-mtl train` resumes from it; true / auto pick the last complete checkpoint"),
    "local_rank": (STOCK, "set by the launcher"),
}
"""Every stock ``TrainingArguments`` field and what the masked multi-task loss / MultiTaskTrainer makes of it:
``(decision, why)`` with decision [`STOCK`], [`ADAPTED`] or [`REFUSED`]. Refusals marked (args) are checked by
``MultiTaskTrainingArguments``, those marked (trainer) by ``MultiTaskTrainer`` (they depend on the model or the
metrics)."""
