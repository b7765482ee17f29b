"""[`MultiTaskTrainer`]: the stock Trainer with the masked multi-task loss and exact normalisation."""

from __future__ import annotations

import functools
import json
import logging
import os
import shutil
from collections.abc import Mapping
from typing import Any

import torch
from torch import nn
from transformers import Trainer
from transformers.trainer import TRAINING_ARGS_NAME
from transformers.trainer_optimizer import is_optimizer_factory
from transformers.trainer_utils import has_length

from .data import MultiTaskDataCollator
from .losses import count_present_labels, multitask_loss
from .training_args import MultiTaskTrainingArguments, lower_is_better

logger = logging.getLogger(__name__)


def _every_trainable_parameter_used(model: Any, args: MultiTaskTrainingArguments) -> bool:
    """Whether every trainable parameter reaches the loss at every step, so DDP need not search for unused ones.

    Every head is in the graph (a task without labels adds a connected zero) and a headless timm backbone runs all of
    its parameters; a transformers backbone may hold some its forward output skips (a pooler under mean pooling, masked
    spectrogram embeddings), unless it stays frozen (heads only). PEFT-wrapped models keep DDP's default."""
    config = getattr(model, "config", None)
    if hasattr(model, "peft_config") or getattr(config, "backbone_library", None) is None:
        return False
    return config.backbone_library == "timm" or (args.freeze_policy == "heads" and args.unfreeze_every is None)


def _check_stream_args(dataset: Any, args: MultiTaskTrainingArguments) -> None:
    """A [`TrainingStream`] has no length and keeps its position in the main process: ``max_steps`` decides how long
    training runs, there are no DataLoader workers, and the stream (not the Trainer) replays its rows on resume."""
    from .data import TrainingStream

    if not isinstance(dataset, TrainingStream):
        return
    if (args.max_steps is None or args.max_steps <= 0) and not args.feature_cache:  # a cache is map-style
        raise ValueError(f"a streaming train_dataset has no length: set max_steps (> 0), got {args.max_steps}")
    if args.dataloader_num_workers:
        raise ValueError(
            "a streaming train_dataset is read in the main process (its position must be known to resume on the same "
            f"rows): set dataloader_num_workers=0, got {args.dataloader_num_workers}"
        )
    args.ignore_data_skip = True  # the stream replays its raw rows itself (TrainingStream.resume_rows), cheaply


class MultiTaskTrainer(Trainer):
    """Train a [`MultiTaskModel`] on batches whose `labels` are a dict task → tensor with missing labels as -100.

    Each task's loss is normalised by its number of present labels in the whole effective batch: every micro-batch of
    the gradient-accumulation window on every process. So k accumulated micro-batches give the gradient of one batch
    of the same samples, and N processes the gradient of one process with N times the batch.
    """

    # compute_loss normalises over the whole accumulation window itself.
    loss_is_scaled_for_ga = True

    def __init__(self, model=None, args: MultiTaskTrainingArguments | None = None, data_collator=None, **kwargs: Any):
        if args is None:
            args = MultiTaskTrainingArguments(output_dir="hf_mtl_output")
        from .sharding import reshard

        reshard(model)  # a model an earlier stage sharded (FSDP): freezing and the optimizer act on sharded parameters
        if getattr(args, "lora_r", None) is not None and model is not None and not hasattr(model, "peft_config"):
            from .transfer import apply_lora

            model = apply_lora(model, r=args.lora_r, alpha=args.lora_alpha, dropout=args.lora_dropout,
                               target_modules=args.lora_target_modules)
        from .data import as_dataset

        for key in ("train_dataset", "eval_dataset"):  # a DataFrame or a dict of columns becomes a datasets.Dataset
            if isinstance(kwargs.get(key), Mapping) and key == "eval_dataset" and all(
                not isinstance(v, (list, tuple)) or (v and isinstance(v[0], Mapping)) for v in kwargs[key].values()
            ):
                kwargs[key] = {name: as_dataset(part, f"eval_dataset[{name!r}]") for name, part in kwargs[key].items()}
            elif kwargs.get(key) is not None:
                kwargs[key] = as_dataset(kwargs[key], key)
        if data_collator is None and model is not None:
            data_collator = MultiTaskDataCollator(
                model.task_specs,
                tokenizer=kwargs.get("processing_class"),
                features=getattr(kwargs.get("train_dataset"), "features", None),  # ClassLabel ids → names
            )
        from .metrics import ComputeMetrics

        if args.batch_eval_metrics and isinstance(kwargs.get("compute_metrics"), ComputeMetrics):  # before the stock
            raise ValueError(  # check, which asks the user to change a compute_metrics they did not write
                "batch_eval_metrics=True: hf_mtl's metrics (ROC AUC, QWK, threshold tuning) need every prediction of "
                "the evaluation set at once; leave it False (or pass your own compute_metrics)"
            )
        _check_stream_args(kwargs.get("train_dataset"), args)
        if args.ddp_find_unused_parameters is None and _every_trainable_parameter_used(model, args):
            args.ddp_find_unused_parameters = False  # DDP's search for unused parameters would find none, and warn
        from .data import TrainingStream

        stream_to_cache = kwargs.get("train_dataset") if isinstance(kwargs.get("train_dataset"), TrainingStream) \
            and args.feature_cache and args.max_steps <= 0 else None
        if stream_to_cache is not None:  # epochs over cached features: the stream is cached in _setup_transfer, after
            kwargs["train_dataset"] = None  # the stock check that a dataset without a length has max_steps
        super().__init__(model=model, args=args, data_collator=data_collator, **kwargs)
        if stream_to_cache is not None:
            self.train_dataset = stream_to_cache
        from .progress import use_line_progress

        use_line_progress(self)  # whole periodic lines instead of a tqdm bar when the output is a file
        self._task_loss_sums: dict[str, torch.Tensor] = {}
        self._task_counts: dict[str, torch.Tensor] = {}
        self._check_stock_fields()
        self._cap_text_length()
        self._validate_datasets()
        self._standardize_targets()
        self._validate_metric_for_best_model()
        self._setup_transfer()
        self._setup_balancing()
        self._setup_nonfinite_guard()

    # -- sharded models (hf_mtl.sharding) -----------------------------------------------------------------------------
    def create_accelerator_and_postprocess(self) -> None:
        """The stock accelerator; a CPU-only multi-process run that asked for FSDP gets it (accelerate would train it
        with DDP instead, see hf_mtl.sharding), wrapped per backbone block."""
        super().create_accelerator_and_postprocess()
        from .sharding import enable_fsdp_on_cpu

        if enable_fsdp_on_cpu(self.accelerator, self.args, self.model):
            self.is_fsdp_enabled = True
        if self.is_fsdp_enabled and self.args.save_on_each_node:
            raise ValueError(
                "save_on_each_node=True with FSDP: an FSDP checkpoint is either gathered on the first process (full "
                "state dict) or split over every process's shard (sharded), so no single node's disk can resume it; "
                "keep output_dir on a file system all nodes share and leave save_on_each_node False"
            )

    def save_model(self, output_dir: str | None = None, _internal_call: bool = False) -> None:
        """The stock save; with FSDP and a sharded checkpoint format (``state_dict_type: SHARDED_STATE_DICT``) the
        model folder still gets one full safetensors model (gathered on the main process), as ``from_pretrained``
        needs. Checkpoints keep their sharded ``pytorch_model_fsdp_0/`` for resuming."""
        if self.is_fsdp_enabled and "FULL_STATE_DICT" not in str(self.accelerator.state.fsdp_plugin.state_dict_type):
            state_dict = self.accelerator.get_state_dict(self.model)  # every process takes part in the gather
            self._save(output_dir if output_dir is not None else self.args.output_dir, state_dict=state_dict)
            if self.args.push_to_hub and not _internal_call:
                self.push_to_hub(commit_message="Model save", revision=self.args.hub_revision)
            return
        super().save_model(output_dir, _internal_call=_internal_call)

    # -- transfer learning (hf_mtl.transfer) -----------------------------------------------------------------------
    def _setup_transfer(self) -> None:
        """Apply the transfer arguments before any training work: freeze policy, gradual unfreezing, feature cache."""
        from . import transfer

        args = self.args
        self.freeze_choice: transfer.FreezeChoice | None = None
        if args.freeze_policy is not None:
            if hasattr(self.model, "peft_config"):
                raise ValueError("the model is PEFT-wrapped (LoRA freezes the backbone itself); leave freeze_policy unset")
            size = len(self.train_dataset) if has_length(self.train_dataset) else None
            self.freeze_choice = transfer.apply_freeze_policy(
                self.model, args.freeze_policy, top_n=args.freeze_top_n, num_train_samples=size,
                tasks=args.trainable_tasks,
            )
        elif args.trainable_tasks is not None:
            raise ValueError("trainable_tasks needs a freeze_policy (e.g. 'heads'): it chooses heads within that policy")
        frozen: list[str] = []
        if args.norm_statistics != "train" and self.model is not None and hasattr(self.model, "backbone"):
            frozen = transfer.freeze_norm_statistics(self.model, estimated_only=args.norm_statistics == "auto")
            if frozen:
                logger.info("%d pretrained BatchNorm layers keep their running statistics (norm_statistics=%r)",
                            len(frozen), args.norm_statistics)
        if args.unfreeze_every is not None and self._unfreezing_callback() is None:
            self.add_callback(
                transfer.GradualUnfreezingCallback(args.unfreeze_every, args.unfreeze_unit, args.unfreeze_blocks_per_stage)
            )
        # unset layer_decay: the default that goes with kept pretrained BatchNorm statistics in trained blocks
        self.layer_decay: float | None = args.layer_decay
        if args.layer_decay is None and frozen:
            self.layer_decay = transfer.default_layer_decay(self.model, frozen, args.unfreeze_every is not None)
            if self.layer_decay is not None:
                logger.info("layer_decay %s (unset; trained backbone blocks keep pretrained BatchNorm statistics, "
                            "benchmarks/README.md 5f); layer_decay=1 turns it off", self.layer_decay)
        if args.feature_cache:
            if self._unfreezing_callback() is not None:
                raise ValueError("feature_cache needs a backbone that stays frozen; it cannot go with gradual unfreezing")
            # Every process computes its share of the rows (a stream: its own shards) into its own part; the main
            # process publishes the folder once all parts are written (hf_mtl.transfer.feature_cache). Nodes that keep
            # their own files (save_on_each_node) each write a whole cache, split over the node's processes.
            local = args.save_on_each_node and args.world_size > 1
            cache = functools.partial(
                transfer.cache_features, self.model, collator=self.data_collator,
                batch_size=args.per_device_eval_batch_size, cache_dir=args.feature_cache_dir,
                num_workers=args.dataloader_num_workers,
                process_index=args.local_process_index if local else args.process_index,
                num_processes=int(os.environ.get("LOCAL_WORLD_SIZE", args.world_size)) if local else args.world_size,
                wait_for_everyone=self.accelerator.wait_for_everyone,
            )
            if self.train_dataset is not None:
                self.train_dataset = cache(self.train_dataset)
            if isinstance(self.eval_dataset, Mapping):
                self.eval_dataset = {name: cache(dataset) for name, dataset in self.eval_dataset.items()}
            elif self.eval_dataset is not None:
                self.eval_dataset = cache(self.eval_dataset)

    def _unfreezing_callback(self):
        from .transfer import GradualUnfreezingCallback

        found = [cb for cb in self.callback_handler.callbacks if isinstance(cb, GradualUnfreezingCallback)]
        return found[0] if found else None

    def create_optimizer(self, model=None):
        """Layer-wise LR decay and gradual unfreezing need their own parameter groups (hf_mtl.transfer.param_groups);
        everything else about the optimizer (class, kwargs, bitsandbytes, SageMaker) stays the stock Trainer's."""
        optimizer = self._create_optimizer(model)
        from .sharding import is_sharded

        # A model an earlier stage sharded: accelerate's prepare re-maps the optimizer's parameters by the address of
        # their local shards, which collide for shards that are empty; create_scheduler puts these lists back.
        self._sharded_param_groups = [list(g["params"]) for g in optimizer.param_groups] \
            if is_sharded(self.model) else None
        return optimizer

    def _create_optimizer(self, model=None):
        unfreezing = self._unfreezing_callback() is not None
        layer_decay = getattr(self, "layer_decay", self.args.layer_decay)  # _setup_transfer resolves an unset one
        if self.optimizer is not None or (layer_decay is None and not unfreezing):
            return super().create_optimizer(model)
        from .transfer import param_groups

        opt_model = self.model if model is None else model
        saved = self.optimizer_cls_and_kwargs
        optimizer_cls, optimizer_kwargs = saved or self.get_optimizer_cls_and_kwargs(self.args, opt_model)
        if is_optimizer_factory(optimizer_cls) or {"params", "model", "optimizer_dict"} & set(optimizer_kwargs):
            if self.args.layer_decay is None and not unfreezing:  # only the default asked for groups: do without
                logger.warning("optim=%r builds its own parameter groups: the default layer_decay %s is not applied",
                               self.args.optim, layer_decay)
                return super().create_optimizer(model)
            raise ValueError(
                f"layer_decay / gradual unfreezing need a plain torch optimizer; optim={self.args.optim!r} builds its "
                "own parameter groups"
            )
        groups = param_groups(
            opt_model, self.args.learning_rate, self.args.weight_decay, layer_decay, include_frozen=unfreezing
        )
        self.optimizer_cls_and_kwargs = (optimizer_cls, {**optimizer_kwargs, "params": groups})
        try:
            return super().create_optimizer(model)
        finally:
            self.optimizer_cls_and_kwargs = saved

    # -- labels and task balancing (hf_mtl.data, hf_mtl.balancing) ---------------------------------------------------
    def _check_stock_fields(self) -> None:
        """The stock fields whose meaning depends on the model or the metrics (marked (trainer) in
        ``hf_mtl.training_args.STOCK_FIELD_DECISIONS``): refused where they would be ignored or wrong, applied where
        they mean something."""
        import datasets

        from .metrics import ComputeMetrics
        from .preprocessing import input_kind

        args = self.args
        hf_metrics = isinstance(self.compute_metrics, ComputeMetrics)
        if hf_metrics and not args.eval_do_concat_batches:
            raise ValueError(
                "eval_do_concat_batches=False hands compute_metrics a list of per-batch dicts, and hf_mtl's metrics "
                "would score the first batch only; leave it True (or pass your own compute_metrics)"
            )
        if hf_metrics and args.include_for_metrics:
            raise ValueError(
                f"include_for_metrics={args.include_for_metrics!r}: hf_mtl's compute_metrics reads predictions and "
                "labels only, so the inputs / losses would be gathered for nothing; leave it empty (or pass your own "
                "compute_metrics)"
            )
        name = args.metric_for_best_model
        if args.prediction_loss_only and name and name.removeprefix("eval_") != "loss":
            raise ValueError(
                f"prediction_loss_only=True: evaluation reports only eval_loss, so metric_for_best_model={name!r} "
                "would fail at the first evaluation; leave prediction_loss_only False or select by 'eval_loss'"
            )
        model = self.model.get_base_model() if hasattr(self.model, "get_base_model") else self.model  # PEFT
        kind = input_kind(getattr(model, "main_input_name", None)) if model is not None else None
        if kind not in (None, "text") and args.include_num_input_tokens_seen not in ("no", False, None):
            raise ValueError(
                f"include_num_input_tokens_seen={args.include_num_input_tokens_seen!r}: this is an {kind} model, and "
                f"only a text model's input_ids are tokens (it would count every element of {model.main_input_name} "
                "as one); leave it 'no'"
            )
        train = self.train_dataset
        has_lengths = isinstance(train, datasets.Dataset) and args.length_column_name in train.column_names
        if kind not in (None, "text") and args.train_sampling_strategy in ("group_by_length", "batch_rebalance") \
                and not has_lengths:
            raise ValueError(
                f"train_sampling_strategy={args.train_sampling_strategy!r}: this is an {kind} model and the training "
                f"set has no {args.length_column_name!r} column (length_column_name), so every row's length would be "
                f"the size of its {model.main_input_name}'s first dimension; use 'random', or add the length column"
            )
        self._neftune_alpha = self.neftune_noise_alpha
        self.neftune_noise_alpha = None  # the stock activation asks the MultiTaskModel for embeddings it does not have
        if self._neftune_alpha is not None and self._token_embeddings() is None:
            raise ValueError(
                f"neftune_noise_alpha={self._neftune_alpha}: NEFTune adds noise to token embeddings, and this "
                f"{kind or 'model'}'s backbone has none; leave it unset"
            )

    def _token_embeddings(self) -> nn.Module | None:
        """The input (token) embeddings of a transformers text backbone, else None."""
        model = self.model.get_base_model() if hasattr(self.model, "get_base_model") else self.model
        backbone = getattr(getattr(model, "backbone", None), "model", None)
        if backbone is None or not hasattr(backbone, "get_input_embeddings"):
            return None
        try:
            embeddings = backbone.get_input_embeddings()
        except NotImplementedError:
            return None
        return embeddings if isinstance(embeddings, nn.Embedding) else None

    def _cap_text_length(self) -> None:
        """Every tokenizer this run uses (processing_class, the collator's, a ``dataset_transform``'s) truncates at the
        backbone's position limit, even when saved without ``model_max_length`` (preprocessing.cap_text_length)."""
        from .preprocessing import cap_text_length

        config = getattr(self.model, "config", None)
        datasets_ = [self.train_dataset, *(self.eval_dataset.values() if isinstance(self.eval_dataset, Mapping)
                                            else [self.eval_dataset])]
        transforms = [(getattr(d, "format", None) or {}).get("format_kwargs", {}).get("transform")
                      or getattr(d, "transform", None) for d in datasets_]  # (a TrainingStream's)
        tokenizers = [self.processing_class, getattr(self.data_collator, "tokenizer", None)]
        for tokenizer in tokenizers + [getattr(t, "processor", None) for t in transforms]:
            if tokenizer is not None and config is not None:
                cap_text_length(tokenizer, config)

    def _validate_datasets(self) -> None:
        """Encode every train and eval label once before training, and check the raw inputs of a
        ``dataset_transform`` dataset, so a bad row fails now (naming dataset, task, column and row), not at hour 3."""
        import datasets

        from .data import is_map_style, validate_inputs, validate_labels

        dataset, collator = self.train_dataset, self.data_collator
        if not self.args.validate_labels:
            return
        if not isinstance(collator, MultiTaskDataCollator) or not self.task_specs:
            return
        from .data import TrainingStream

        if collator.features is None and isinstance(dataset, (datasets.Dataset, TrainingStream)):
            collator.features = dataset.features  # Sequence(ClassLabel) ids are positive ids, not a 0/1 list
        evals = self.eval_dataset if isinstance(self.eval_dataset, dict) else {None: self.eval_dataset}
        named = [("train_dataset", dataset)] + [
            ("eval_dataset" if key is None else f"eval_dataset[{key!r}]", part) for key, part in evals.items()
        ]
        for name, part in named:
            if part is None:
                continue
            if isinstance(part, TrainingStream):  # its first `validate_stream_rows` rows, in data-set coordinates
                try:
                    part.check(collator.tasks, collator.label_columns, collator.known_label_columns,
                               decode_images=self.args.validate_images == "decode",
                               max_rows=self.args.validate_stream_rows)
                except ValueError as err:
                    raise ValueError(f"{name}: {err}") from err
                continue
            # every row of a map-style dataset; a stream's first `validate_stream_rows` (the rest: at their batch)
            max_rows = None if is_map_style(part) else self.args.validate_stream_rows
            try:
                validate_labels(part, collator.tasks, collator.label_columns, collator.known_label_columns,
                                max_rows=max_rows)
                if not isinstance(part, datasets.Dataset):
                    continue
                validate_inputs(part, decode_images=self.args.validate_images == "decode")
            except ValueError as err:
                raise ValueError(f"{name}: {err}") from err

    def _standardize_targets(self) -> None:
        """Regression targets get their training mean / std once, before training (see
        `hf_mtl.data.standardize_regression_targets`); a spec that already has them (a saved model) keeps them. A
        stream has no end to read: they are estimated from the rows validated before step 1 (the first
        ``validate_stream_rows`` of each process's share, gathered), and the log says so."""
        import datasets

        from .data import standardize_regression_targets

        dataset, collator = self.train_dataset, self.data_collator
        if not self.args.standardize_targets or self.model is None or not isinstance(collator, MultiTaskDataCollator):
            return
        from .data import TrainingStream

        estimated_from = None
        if isinstance(dataset, TrainingStream):  # the rows validated before step 1, of every process: one estimate
            columns = sorted({*(collator.label_columns.get(s.name, s.name) for s in collator.tasks),
                              *collator.known_label_columns.values()})
            dataset = dataset.head_rows(columns, self.args.validate_stream_rows)
            if self.args.world_size > 1:
                from accelerate.utils import gather_object

                dataset = gather_object(dataset)  # in rank order: every process computes the same statistics
            estimated_from = len(dataset)
        if not isinstance(dataset, (datasets.Dataset, list)):
            return
        model = self.model.get_base_model() if hasattr(self.model, "get_base_model") else self.model  # PEFT
        found = standardize_regression_targets(model, dataset, collator.label_columns, collator.known_label_columns,
                                               tasks=self.args.trainable_tasks)
        if found and estimated_from is not None:
            logger.info("streaming: regression target statistics of %s estimated from %d rows (the first "
                        "`validate_stream_rows` = %d of each process's stream), not the whole stream", sorted(found),
                        estimated_from, self.args.validate_stream_rows)

    def _validate_metric_for_best_model(self) -> None:
        """A ``metric_for_best_model`` typo would fail at the first evaluation, after training work: check it now
        against the keys hf_mtl's ``compute_metrics`` reports (a user's own ``compute_metrics`` is not checked)."""
        import difflib

        from .metrics import ComputeMetrics, build_compute_metrics, reported_metric_keys

        name = self.args.metric_for_best_model
        if not name or not isinstance(self.compute_metrics, ComputeMetrics) or not self.task_specs:
            return
        prefixes = [""] + ([f"{ds}_" for ds in self.eval_dataset] if isinstance(self.eval_dataset, Mapping) else [])

        def keys_of(found: set[str]) -> list[str]:  # several eval sets: eval_<set>_<metric>
            return sorted(prefix + key for prefix in prefixes for key in found | {"loss"})

        keys = keys_of(reported_metric_keys(self.compute_metrics, self.task_specs))
        key = name.removeprefix("eval_")
        if key in keys:
            if self.args.greater_is_better is not None and self.args.greater_is_better == lower_is_better(key):
                raise ValueError(
                    f"greater_is_better={self.args.greater_is_better} with metric_for_best_model={name!r}, for which "
                    f"{'lower' if lower_is_better(key) else 'higher'} is better: the best checkpoint would be the "
                    "worst; leave greater_is_better unset (hf_mtl takes it from the metric)"
                )
            return
        per_task = keys_of(reported_metric_keys(build_compute_metrics(self.task_specs, per_label=False), self.task_specs))
        close = difflib.get_close_matches(key, per_task, n=2, cutoff=0.5)
        close += difflib.get_close_matches(key, [k for k in keys if k not in per_task], n=3 - len(close), cutoff=0.6)
        hint = f"did you mean {', '.join(repr('eval_' + k) for k in close)}? " if close else ""
        raise ValueError(
            f"metric_for_best_model={name!r} is not a metric this model's evaluation reports; {hint}The task-level "
            f"metrics are {['eval_' + k for k in per_task]} (plus per label: 'eval_<task>_<label>_<metric>')"
        )

    def _setup_balancing(self) -> None:
        """Build the task balancer named by ``args.task_balancing`` (None for plain static ``loss_weight``)."""
        from .balancing import TaskBalancingCallback, build_balancer

        self.task_balancer = None
        if self.args.task_balancing == "static":
            return
        kwargs = self.args.task_balancing_kwargs or {}
        kwargs = dict(json.loads(kwargs) if isinstance(kwargs, str) else kwargs)
        if self.args.task_balancing == "rlw":
            kwargs.setdefault("seed", self.args.seed)  # the same weights on every process
        self.task_balancer = build_balancer(self.args.task_balancing, self.task_specs, **kwargs).to(self.args.device)
        self.add_callback(TaskBalancingCallback(self.task_balancer, self.accelerator))

    def _balanced_loss(self, specs, task_losses, labels, num_items, outputs) -> torch.Tensor:
        counts = count_present_labels(specs, labels)
        present = {}
        for spec in specs:
            count = counts[spec.name].to(task_losses[spec.name].device).float()
            normaliser = count if num_items is None else torch.as_tensor(num_items[spec.name]).to(count.device)
            present[spec.name] = count / normaliser.float().clamp(min=1)
        scale = 1.0 / self.args.gradient_accumulation_steps
        if num_items is not None and self.args.world_size > 1:
            scale /= self.accelerator.num_processes  # compute_loss multiplies the loss by the number of processes
        return self.task_balancer.combine(task_losses, present, outputs.pooled_features, scale)

    def _setup_nonfinite_guard(self) -> None:
        """``args.nonfinite_policy``: a NaN/inf step is stopped or skipped before it reaches the weights."""
        from .nonfinite import NonFiniteGuard

        self.nonfinite_guard: NonFiniteGuard | None = None
        if self.args.nonfinite_policy == "off" or self.model is None:
            return
        if self.is_deepspeed_enabled and self.args.nonfinite_policy == "skip":
            raise ValueError("nonfinite_policy='skip' cannot remove DeepSpeed's gradients; use 'stop' or 'off' (DeepSpeed "
                             "skips fp16 overflow steps itself)")
        self.nonfinite_guard = NonFiniteGuard(
            self.args.nonfinite_policy, [spec.name for spec in self.task_specs], self.accelerator
        )
        self.add_callback(self.nonfinite_guard)  # after the balancer's callback: its gradients are reduced by then

    def create_scheduler(self, num_training_steps: int, optimizer: torch.optim.Optimizer | None = None):
        """Learnable task weights (kept out of the model) join the optimizer as their own group at
        ``task_balancing_lr`` (following the LR schedule) just before the stock scheduler is built."""
        target = optimizer if optimizer is not None else self.optimizer
        saved, self._sharded_param_groups = getattr(self, "_sharded_param_groups", None), None
        if saved is not None and target is not None and len(saved) == len(target.param_groups):
            for group, params in zip(target.param_groups, saved):  # (see create_optimizer)
                group["params"] = params
        params = list(self.task_balancer.parameters()) if self.task_balancer is not None else []
        if params and target is not None and not any(p is params[0] for g in target.param_groups for p in g["params"]):
            target.add_param_group({"params": params, "lr": self.args.task_balancing_lr, "weight_decay": 0.0})
        return super().create_scheduler(num_training_steps, optimizer)

    def _load_optimizer_and_scheduler(self, checkpoint: str | None) -> None:
        """On resume, the task balancer's weights and statistics come back with the optimizer state."""
        super()._load_optimizer_and_scheduler(checkpoint)
        if checkpoint is not None and self.task_balancer is not None:
            from .balancing import load_balancer_state

            load_balancer_state(self.task_balancer, checkpoint)

    # -- checkpoints and resume (hf_mtl.checkpointing) ---------------------------------------------------------------
    def train(self, resume_from_checkpoint: str | bool | None = None, trial: Any = None, **kwargs: Any):
        """``resume_from_checkpoint=True`` / ``"true"`` picks the last COMPLETE checkpoint of ``output_dir`` (the stock
        lookup takes the highest-numbered folder, complete or not); ``"auto"`` also starts fresh when there is none."""
        from .checkpointing import check_resume_compatible, remove_staging, resolve_resume_checkpoint, staging_folders

        resume_from_checkpoint = resolve_resume_checkpoint(resume_from_checkpoint, self.args.output_dir)
        if resume_from_checkpoint is not None:
            check_resume_compatible(resume_from_checkpoint, self.model)
        if self.args.should_save:
            for folder in staging_folders(self.args.output_dir):
                remove_staging(folder)
        self._stream_resume_rows(resume_from_checkpoint)
        neftune = None
        if getattr(self, "_neftune_alpha", None) is not None:  # NEFTune on the backbone's token embeddings
            from transformers.integrations.neftune import neftune_post_forward_hook

            embeddings = self._token_embeddings()
            embeddings.neftune_noise_alpha = self._neftune_alpha
            neftune = embeddings.register_forward_hook(neftune_post_forward_hook)
        try:
            return super().train(resume_from_checkpoint=resume_from_checkpoint, trial=trial, **kwargs)
        finally:
            if neftune is not None:
                neftune.remove()
                del embeddings.neftune_noise_alpha

    def get_train_dataloader(self):
        """A [`TrainingStream`] is this process's share already (its own shards): batched here, with its own RNG,
        and not split again by accelerate (which would read every row on every process and keep a slice)."""
        from .data import TrainingStream

        if not isinstance(self.train_dataset, TrainingStream):
            return super().get_train_dataloader()
        from accelerate.data_loader import prepare_data_loader
        from torch.utils.data import DataLoader

        loader = DataLoader(self.train_dataset, batch_size=self._train_batch_size, collate_fn=self.data_collator,
                            num_workers=0, pin_memory=self.args.dataloader_pin_memory,
                            generator=torch.Generator())  # the global RNG is left as a resumed run restores it
        return prepare_data_loader(loader, device=self.args.device, num_processes=1, process_index=0,
                                   put_on_device=True, dispatch_batches=False)

    def _stream_resume_rows(self, checkpoint: str | None) -> None:
        """Rows of this process's stream that the checkpoint's steps consumed: the stream replays them on resume."""
        from .data import TrainingStream

        if not isinstance(self.train_dataset, TrainingStream):
            return
        step = 0
        if checkpoint is not None:
            with open(os.path.join(checkpoint, "trainer_state.json"), encoding="utf-8") as handle:
                step = int(json.load(handle).get("global_step", 0))
        self.train_dataset.resume_rows = step * self.args.gradient_accumulation_steps * self._train_batch_size

    def _save_checkpoint(self, model: nn.Module, trial: Any) -> None:
        """The stock checkpoint, made atomic: every process writes into ``_tmp-checkpoint-N`` and, once all have, the
        saving process fsyncs and renames it to ``checkpoint-N``; only then is it pushed and are old ones rotated.

        A kill at any moment leaves either the complete new checkpoint or none of it (see hf_mtl.checkpointing)."""
        from transformers.trainer_callback import ExportableState
        from transformers.trainer_utils import SaveStrategy, rotate_checkpoints

        from . import checkpointing

        if self.hp_search_backend is None and trial is None:
            self.store_flos()
        run_dir = self._get_output_dir(trial=trial)
        step = self.state.global_step
        final, staging = checkpointing.checkpoint_dir(run_dir, step), checkpointing.staging_dir(run_dir, step)
        if self.args.should_save:
            checkpointing.remove_staging(staging)  # an earlier save of this step that was interrupted
        self.accelerator.wait_for_everyone()
        self.save_model(staging, _internal_call=True)
        best_step = self.state.best_global_step
        if self.args.save_strategy in (SaveStrategy.STEPS, SaveStrategy.EPOCH, SaveStrategy.BEST) and best_step:
            best = checkpointing.checkpoint_dir(run_dir, best_step)
            if best_step == step or os.path.exists(best):  # this step's folder exists once renamed, below
                self.state.best_model_checkpoint = best
        if not self.args.save_only_model:
            self._save_optimizer_and_scheduler(staging)
            self._save_scaler(staging)
            self._save_rng_state(staging)
        if self.args.should_save:
            for cb in [c for c in self.callback_handler.callbacks + [self.control] if isinstance(c, ExportableState)]:
                name, cb_state = cb.__class__.__name__, cb.state()
                if isinstance(self.state.stateful_callbacks[name], list):
                    self.state.stateful_callbacks[name].append(cb_state)
                else:
                    self.state.stateful_callbacks[name] = cb_state
            if self.task_balancer is not None:  # inside the checkpoint before it is published (and pushed)
                from .balancing import save_balancer_state

                save_balancer_state(self.task_balancer, staging)
            # written last: the marker of a complete checkpoint for tools that do not know the staging folder
            self.state.save_to_json(os.path.join(staging, checkpointing.TRAINER_STATE_NAME))
        self.accelerator.wait_for_everyone()  # every process's share (RNG states, shards) is in the staging folder
        if self.args.should_save:
            checkpointing.publish_checkpoint(staging, final)
        self.accelerator.wait_for_everyone()
        if os.path.isdir(staging):  # a node without the saving process's file system: its share is not published
            shutil.rmtree(staging, ignore_errors=True)
        if self.args.push_to_hub:
            self._push_from_checkpoint(final)
        if self.args.should_save:
            rotate_checkpoints(
                output_dir=run_dir,
                save_total_limit=self.args.save_total_limit,
                best_model_checkpoint=self.state.best_model_checkpoint,
                use_mtime=True,
            )

    def tune_thresholds(
        self, eval_dataset: Any = None, objective: str = "f1", target: float | None = None
    ) -> dict[str, list[float]]:
        """Tune per-label thresholds of multilabel/binary tasks on ``eval_dataset`` and store them in the model config.

        ``objective``: ``f1`` (maximise), ``precision`` or ``recall`` (reach ``target``). Saving the model keeps them;
        prediction, the pipeline and metrics use them.
        """
        from .metrics import apply_thresholds, tune_thresholds

        dataset = eval_dataset if eval_dataset is not None else self.eval_dataset
        if dataset is None:
            raise ValueError("tune_thresholds needs an eval_dataset (a validation set, not the training set)")
        output = self.predict(dataset, metric_key_prefix="tune")
        if not isinstance(output.predictions, Mapping) or not isinstance(output.label_ids, Mapping):
            raise ValueError("tune_thresholds needs labels in the dataset: predict returned none")
        model = self.accelerator.unwrap_model(self.model)
        thresholds = tune_thresholds(model, output.predictions, output.label_ids, objective=objective, target=target)
        apply_thresholds(model, thresholds)
        return thresholds

    @property
    def task_specs(self):
        # Read twice per step: `self.model` is the unwrapped model (DDP wraps `model_wrapped`; PEFT forwards
        # attributes), and accelerate's `unwrap_model` walks every module each call (~3 ms a step on CPU, see
        # benchmarks/overhead.py), so it is only the fallback.
        specs = getattr(self.model, "task_specs", None)
        return specs if specs is not None else self.accelerator.unwrap_model(self.model).task_specs

    def _get_num_items_in_batch(self, batch_samples: list, device: torch.device) -> dict[str, torch.Tensor] | None:
        """Present labels per task over the accumulation window, summed over processes."""
        if not batch_samples or not isinstance(batch_samples[0].get("labels"), Mapping):
            return None
        specs = self.task_specs
        totals = torch.zeros(len(specs), dtype=torch.long, device=device)
        for batch in batch_samples:
            counts = count_present_labels(specs, batch["labels"])
            totals += torch.stack([counts[s.name].to(device) for s in specs])
        if self.args.world_size > 1:
            totals = self.accelerator.reduce(totals, reduction="sum")
        return {spec.name: totals[i] for i, spec in enumerate(specs)}

    def compute_loss(
        self,
        model: nn.Module,
        inputs: dict[str, Any],
        return_outputs: bool = False,
        num_items_in_batch: Mapping[str, torch.Tensor] | None = None,
    ):
        labels = inputs.pop("labels", None)
        if labels is None:
            raise ValueError("the batch has no `labels`; MultiTaskTrainer needs a label dict task → tensor to train")
        guard = self.nonfinite_guard if model.training else None
        if guard is not None:
            guard.before_forward(model)
        outputs = model(**inputs)
        specs = self.task_specs
        loss, task_losses = multitask_loss(
            specs, outputs.logits, labels, num_items=num_items_in_batch, label_smoothing=self.args.label_smoothing_factor
        )
        if self.task_balancer is not None and model.training:
            loss = self._balanced_loss(specs, task_losses, labels, num_items_in_batch, outputs)
        if num_items_in_batch is not None and self.args.world_size > 1:
            # DDP averages gradients over processes; the loss is normalised by a global count, so undo the mean.
            loss = loss * self.accelerator.num_processes
        if guard is not None:  # device-side flags, checked once per optimizer step (hf_mtl.nonfinite)
            guard.check_batch(inputs, labels, task_losses, loss)
        if model.training and self.args.log_task_losses:
            self._accumulate_task_losses(specs, task_losses, labels, num_items_in_batch)
        outputs.loss, outputs.task_losses = loss, task_losses
        return (loss, outputs) if return_outputs else loss

    def _accumulate_task_losses(self, specs, task_losses, labels, num_items) -> None:
        counts = count_present_labels(specs, labels)
        for spec in specs:
            count = counts[spec.name].to(task_losses[spec.name].device)
            normaliser = count if num_items is None else num_items[spec.name]
            loss_sum = task_losses[spec.name].detach() * torch.as_tensor(normaliser).clamp(min=1)
            if self.args.logging_nan_inf_filter:  # like the Trainer's `loss`: a NaN/inf batch is left out of the log
                finite = torch.isfinite(loss_sum)
                loss_sum, count = torch.where(finite, loss_sum, 0.0), torch.where(finite, count, 0)
            self._task_loss_sums[spec.name] = self._task_loss_sums.get(spec.name, 0) + loss_sum.float()
            self._task_counts[spec.name] = self._task_counts.get(spec.name, 0) + count

    def log(self, logs: dict[str, float], start_time: float | None = None) -> None:
        """Add `loss_<task>` (mean over present labels since the last log, all processes) to training logs."""
        if "loss" in logs and self._task_loss_sums:
            names = list(self._task_loss_sums)
            sums = torch.stack([torch.as_tensor(self._task_loss_sums[n]).float() for n in names])
            counts = torch.stack([torch.as_tensor(self._task_counts[n]).float() for n in names]).to(sums.device)
            if self.args.world_size > 1:
                sums = self.accelerator.reduce(sums, reduction="sum")
                counts = self.accelerator.reduce(counts.to(sums.device), reduction="sum")
            for name, total, count in zip(names, sums.tolist(), counts.tolist()):
                if count > 0:
                    logs[f"loss_{name}"] = round(total / count, 6)
            self._task_loss_sums, self._task_counts = {}, {}
        guard = self.nonfinite_guard
        if ("loss" in logs or "train_loss" in logs) and guard is not None and guard.policy == "skip":
            logs["nonfinite_skipped_steps"] = guard.num_skipped  # also in the metrics `train()` returns
        if "loss" in logs and self.task_balancer is not None:
            logs.update({f"task_weight_{n}": round(w, 6) for n, w in self.task_balancer.current_weights().items()})
        super().log(logs, start_time)

    def prediction_step(self, model, inputs, prediction_loss_only, ignore_keys=None):
        """Keep logits and labels as dicts task → tensor, so the eval loop gathers them per task."""
        inputs = self._prepare_inputs(inputs)
        labels = inputs.get("labels")
        with torch.no_grad(), self.compute_loss_context_manager():
            if labels is not None:
                loss, outputs = self.compute_loss(model, dict(inputs), return_outputs=True)
                loss = loss.detach()
            else:
                loss, outputs = None, model(**inputs)
        if prediction_loss_only:
            return loss, None, None
        logits = {name: value.detach() for name, value in outputs.logits.items()}
        labels = {name: value.detach() for name, value in labels.items()} if labels is not None else None
        return loss, logits, labels

    def _save(self, output_dir: str | None = None, state_dict: dict | None = None) -> None:
        """Save like the stock Trainer, but keep the folder pickle-free: the training arguments go to
        ``training_args.json`` (tokens redacted by ``TrainingArguments.to_dict``) instead of ``training_args.bin``."""
        from .safety import restore_default_modes

        super()._save(output_dir, state_dict=state_dict)
        output_dir = output_dir if output_dir is not None else self.args.output_dir
        if self.args.should_save and os.path.isdir(output_dir):  # PEFT adapters and state dicts bypass our save
            restore_default_modes(output_dir)
        if self.args.should_save and os.path.isfile(os.path.join(output_dir, TRAINING_ARGS_NAME)):
            self._write_training_args(output_dir)

    def _write_training_args(self, output_dir: str) -> None:
        """``training_args.json`` in place of the pickled ``training_args.bin`` (removed if there)."""
        pickled = os.path.join(output_dir, TRAINING_ARGS_NAME)
        if os.path.isfile(pickled):
            os.remove(pickled)
        with open(os.path.join(output_dir, "training_args.json"), "w", encoding="utf-8") as handle:
            handle.write(self.args.to_json_string())

    def _push_from_checkpoint(self, checkpoint_folder: str) -> None:
        """The stock push of ``output_dir`` while training (``push_to_hub=True`` with checkpoints), minus its pickle.

        transformers 5 writes the training arguments with ``torch.save`` as ``training_args.bin`` into ``output_dir``
        right before uploading it in the background, so that pickle would reach the Hub repo. This follows
        ``Trainer._push_from_checkpoint`` but copies the checkpoint's model files and writes ``training_args.json``;
        and a failed background push is logged (hf_mtl.hub.warn_if_push_failed), where the stock Trainer drops it.
        """
        from transformers.trainer import PushInProgress, hf_api
        from transformers.trainer_utils import PREFIX_CHECKPOINT_DIR, HubStrategy, SaveStrategy

        from .hub import warn_if_push_failed

        if not self.is_world_process_zero() or self.args.hub_strategy == HubStrategy.END:
            return
        if not self.args.hub_always_push and self.push_in_progress is not None and not self.push_in_progress.is_done():
            return  # the previous push is still running
        self.callback_handler.on_push_begin(self.args, self.state, self.control)
        output_dir = self.args.output_dir
        model_files = ("config.json", "generation_config.json", "adapter_config.json", "model.safetensors",
                       "model.safetensors.index.json", "adapter_model.safetensors")
        for name in os.listdir(checkpoint_folder):  # (sharded weights: model-0000x-of-0000y.safetensors)
            if name in model_files or (name.startswith("model-") and name.endswith(".safetensors")):
                shutil.copy(os.path.join(checkpoint_folder, name), os.path.join(output_dir, name))
        if self.processing_class is not None:
            self.processing_class.save_pretrained(output_dir)
        self._write_training_args(output_dir)
        step = self.state.global_step
        message = (f"Training in progress, step {step}" if self.args.save_strategy == SaveStrategy.STEPS
                   else f"Training in progress, epoch {int(self.state.epoch)}")
        upload = functools.partial(hf_api().upload_folder, repo_id=self.hub_model_id, token=self.args.hub_token,
                                   run_as_future=True, revision=self.args.hub_revision)
        jobs = [upload(folder_path=output_dir, commit_message=message,
                       ignore_patterns=["_*", f"{PREFIX_CHECKPOINT_DIR}-*"])]
        if self.args.hub_strategy in (HubStrategy.CHECKPOINT, HubStrategy.ALL_CHECKPOINTS):
            in_repo = "last-checkpoint" if self.args.hub_strategy == HubStrategy.CHECKPOINT else os.path.basename(
                checkpoint_folder)
            jobs.append(upload(folder_path=checkpoint_folder, path_in_repo=in_repo, commit_message=message + ", checkpoint"))
        for job in jobs:
            job.add_done_callback(functools.partial(warn_if_push_failed, self.hub_model_id, message))
        if self.push_in_progress is None or self.push_in_progress.is_done():
            self.push_in_progress = PushInProgress(jobs)
        else:
            self.push_in_progress.jobs.extend(jobs)

    # -- sharing on the Hub (hf_mtl.hub) -----------------------------------------------------------------------------
    def push_to_hub(self, commit_message: str | None = "End of training", blocking: bool = True,
                    token: str | None = None, revision: str | None = None, **kwargs: Any):
        """The stock push of ``output_dir``; if the Hub fails, a [`hf_mtl.hub.PushToHubError`] says what reached it
        (the files stay in ``output_dir``) and how to retry, instead of an HTTP error from deep inside the client."""
        from transformers.trainer_utils import PREFIX_CHECKPOINT_DIR

        from .hub import is_hub_error, push_failure

        try:
            return super().push_to_hub(commit_message, blocking=blocking, token=token, revision=revision, **kwargs)
        except Exception as err:
            if not is_hub_error(err):
                raise
            repo_ready = self.hub_model_id is not None  # set once the repo is created (here or at __init__)
            raise push_failure(
                err, repo_id=self.hub_model_id or self.args.hub_model_id or os.path.basename(self.args.output_dir),
                folder=self.args.output_dir, step="commit" if repo_ready else "create the repo", repo_ready=repo_ready,
                revision=revision or self.args.hub_revision, token=token or self.args.hub_token,
                retry="call trainer.push_to_hub() again", exclude=["_*", f"{PREFIX_CHECKPOINT_DIR}-*"],
            ) from err

    def last_eval_metrics(self) -> dict[str, float]:
        """The metrics of the last evaluation logged during this run (``eval_*`` keys), or ``{}``."""
        for entry in reversed(self.state.log_history):
            if any(key.startswith("eval_") for key in entry):
                return dict(entry)
        return {}

    def last_per_label_metrics(self) -> dict[str, Any] | None:
        """The per-label table of the last evaluation, when ``compute_metrics`` is hf_mtl's ([`ComputeMetrics`])."""
        from .metrics import ComputeMetrics

        if isinstance(self.compute_metrics, ComputeMetrics):
            return self.compute_metrics.last.per_label or None
        return None

    def create_model_card(
        self,
        *,
        metrics: Mapping[str, float] | None = None,
        per_label_metrics: Mapping[str, Mapping[str, Mapping[str, float]]] | None = None,
        datasets: str | list[str] | None = None,
        base_model: str | None = None,
        model_name: str | None = None,
        dataset: str | list[str] | None = None,
        dataset_tags: str | list[str] | None = None,
        finetuned_from: str | None = None,
        language: str | None = None,
        tasks: str | list[str] | None = None,
        dataset_args: str | list[str] | None = None,
        **card_kwargs: Any,
    ) -> None:
        """Write the hf_mtl model card (eval results, per-label table, plots, recipe, usage) and the processor files
        into ``output_dir``, so ``push_to_hub`` uploads them with the model.

        Takes the keyword arguments of ``hf_mtl.modelcard.create_model_card`` (the one card signature, shared with
        ``MultiTaskModel.push_to_hub`` and ``hf-mtl push``); ``metrics`` and ``per_label_metrics`` default to the last
        evaluation, the recipe to this run's arguments and state. transformers' ``dataset`` / ``dataset_tags`` /
        ``finetuned_from`` are read as ``datasets`` / ``base_model``; ``language``, ``tasks`` and ``dataset_args`` are
        not used by the hf_mtl card.
        """
        if not self.args.should_save:  # the main process (of each node with save_on_each_node)
            return
        from .modelcard import write_model_card

        model = self.accelerator.unwrap_model(self.model)
        if self.processing_class is None and getattr(self.data_collator, "tokenizer", None) is None:
            # Trainer._save wrote no processor: save the model's (set_processor), else the backbone's default one.
            if getattr(model, "_processor", None) is None and not model.name_or_path:
                logger.warning(
                    "no processing_class given to MultiTaskTrainer: pushing the backbone's default preprocessing; "
                    "pass processing_class= (or model.set_processor) if training used another one"
                )
            model.get_processor().save_pretrained(self.args.output_dir)
        datasets = datasets or dataset_tags or dataset
        tags = card_kwargs.pop("tags", None)
        if metrics is None and per_label_metrics is None:  # the last evaluation's scores and labels draw the plots
            from .metrics import ComputeMetrics

            if isinstance(self.compute_metrics, ComputeMetrics):
                card_kwargs.setdefault("evaluation", self.compute_metrics.last)
        card_kwargs.setdefault("histories", [("training", self.state.log_history)])
        write_model_card(
            model,
            self.args.output_dir,
            repo_id=card_kwargs.pop("repo_id", None) or self.hub_model_id or self.args.hub_model_id or model_name,
            model_name=model_name,
            metrics=metrics if metrics is not None else self.last_eval_metrics(),
            per_label_metrics=per_label_metrics if per_label_metrics is not None else self.last_per_label_metrics(),
            datasets=[datasets] if isinstance(datasets, str) else datasets,
            training_args=card_kwargs.pop("training_args", self.args),
            trainer_state=card_kwargs.pop("trainer_state", self.state),
            base_model=base_model or finetuned_from,
            tags=[tags] if isinstance(tags, str) else tags,
            **card_kwargs,
        )
