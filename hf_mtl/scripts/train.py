"""Train a multi-task model from a recipe: a YAML file of arguments plus command-line overrides.

    hf-mtl train recipes/fashion_grid_efficientnet.yaml
    hf-mtl train recipes/fashion_grid_efficientnet.yaml --learning_rate 1e-3 max_steps=50
    hf-mtl train recipes/fashion_grid_efficientnet.yaml --resume_from_checkpoint true  # after a crash: last complete
    accelerate launch --num_processes 2 -m hf_mtl.scripts.train recipes/fashion_grid_efficientnet.yaml

Stages: an optional heads-only warm-up (backbone frozen, features cached once), then the main stage with the recipe's
`freeze_policy`; then evaluation per task and per label, and the model folder (safetensors, config, processor, model
card, metrics) in `output_dir`.
"""

from __future__ import annotations

import copy
import json
import logging
import os
import sys
import time
from typing import Any

from transformers import set_seed

from ..checkpointing import resolve_resume_checkpoint
from .arguments import DataArguments, ModelArguments, RecipeError, RecipeParser, ScriptArguments, parse_recipe
from .models import PACKAGED_BACKBONES, build_model, build_model_processor
from .recipe_data import check_inputs, check_labels, input_column, load_recipe_datasets, with_preprocessing

logger = logging.getLogger(__name__)

PER_LABEL_FILE = "per_label_metrics.json"


def _heads_only_args(training_args, script_args: ScriptArguments):
    args = copy.deepcopy(training_args)
    args.freeze_policy = "heads"
    args.unfreeze_every = None
    args.feature_cache = script_args.heads_only_feature_cache
    args.num_train_epochs = script_args.heads_only_epochs
    args.max_steps = -1
    if script_args.heads_only_learning_rate is not None:
        args.learning_rate = script_args.heads_only_learning_rate
    args.output_dir = os.path.join(training_args.output_dir, "heads_only")
    args.save_strategy = "no"
    args.eval_strategy = "no"
    args.load_best_model_at_end = False
    args.push_to_hub = False
    args.resume_from_checkpoint = None
    return args


def format_metrics(metrics: dict[str, float], specs: list, per_label: dict[str, Any] | None = None,
                   chance: dict[str, dict[str, float]] | None = None) -> str:
    """A readable per-task summary (and per-label table) of evaluation metrics."""
    lines = []
    for spec in specs:
        prefix = f"eval_{spec.name}_"
        head = {k[len(prefix):]: v for k, v in metrics.items() if k.startswith(prefix)}
        summary = ", ".join(f"{n}={head[n]:.4f}" for n in spec.task_type.summary_metrics() if n in head)
        lines.append(f"[{spec.name}] ({spec.type}) {summary}")
        table = (per_label or {}).get(spec.name)
        if table and spec.task_type.per_label_table:
            columns = [c for c in ("roc_auc", "average_precision", "f1", "accuracy", "support")
                       if any(c in row for row in table.values())]
            chance_cols = [spec.task_type.chance_baseline] if chance and spec.name in chance else []
            lines.append("    " + f"{'label':<18}" + "".join(f"{c:>19}" for c in columns + chance_cols))
            for label, row in table.items():
                cells = []
                for c in columns:
                    value = row.get(c)
                    cells.append(f"{'-' if value is None else (f'{value:.0f}' if c == 'support' else f'{value:.4f}'):>19}")
                if chance_cols:
                    cells.append(f"{chance[spec.name].get(label, float('nan')):>19.4f}")
                lines.append("    " + f"{label:<18}" + "".join(cells))
    return "\n".join(lines)


def label_prevalence(dataset: Any, specs: list, label_columns: dict | None) -> dict[str, dict[str, float]]:
    """Per-label chance baselines (``TaskType.chance_scores``, e.g. a multilabel label's share of positives among
    present labels: the average precision of a random scorer) of the tasks whose type has one."""
    from ..data import encode_labels

    out = {}
    rows = dataset.with_format(None)
    for spec in specs:
        if spec.task_type.chance_baseline is None:
            continue
        column = (label_columns or {}).get(spec.name, spec.name)
        labels = encode_labels([spec], [{column: v} for v in rows[column]], {spec.name: column})[spec.name]
        out[spec.name] = spec.task_type.chance_scores(spec, labels)
    return out


def run(
    model_args: ModelArguments,
    data_args: DataArguments,
    script_args: ScriptArguments,
    training_args,
    callbacks: list | None = None,
) -> dict[str, float]:
    """Run the training job; returns the final evaluation metrics (``eval_*``)."""
    from ..metrics import build_compute_metrics
    from ..preprocessing import input_kind
    from ..trainer import MultiTaskTrainer

    started = time.time()
    set_seed(training_args.seed)
    try:  # `true` / `auto` → the last COMPLETE checkpoint, before any work (and before the heads-only decision)
        training_args.resume_from_checkpoint = resolve_resume_checkpoint(
            training_args.resume_from_checkpoint, training_args.output_dir
        )
    except ValueError as err:
        raise RecipeError(str(err)) from err
    # The main process builds the `datasets` Arrow caches (load, split, map) first; the others then read them.
    with training_args.main_process_first(desc="load the recipe's datasets"):
        train_raw, eval_raw = load_recipe_datasets(data_args, seed=training_args.seed)
    model = build_model(model_args)
    specs = model.task_specs
    check_labels(train_raw, specs, data_args, "train")
    if eval_raw is not None:
        check_labels(eval_raw, specs, data_args, "eval")
    column = input_column(data_args, train_raw)
    for split, raw in (("train", train_raw), ("eval", eval_raw)):
        if raw is not None:
            check_inputs(raw, column, input_kind(model.main_input_name), data_args, split)
    allow_empty = data_args.allow_empty_text
    processor = build_model_processor(model, model_args)
    model.set_processor(processor)
    train_ds = with_preprocessing(train_raw, processor, column, train=data_args.augment, allow_empty_text=allow_empty)
    eval_ds = with_preprocessing(eval_raw, processor, column, train=False, allow_empty_text=allow_empty) \
        if eval_raw is not None else None
    compute_metrics = build_compute_metrics(model)
    common: dict[str, Any] = {"compute_metrics": compute_metrics, "processing_class": processor}
    if data_args.label_columns:
        from ..data import MultiTaskDataCollator

        common["data_collator"] = MultiTaskDataCollator(
            specs, tokenizer=processor, label_columns=data_args.label_columns
        )
    if script_args.heads_only_epochs > 0 and not training_args.resume_from_checkpoint:
        heads_args = _heads_only_args(training_args, script_args)
        heads_train = with_preprocessing(train_raw, processor, column, train=False, allow_empty_text=allow_empty) \
            if heads_args.feature_cache else train_ds
        logger.info("stage 1/2: heads only for %s epochs", script_args.heads_only_epochs)
        stage = MultiTaskTrainer(model=model, args=heads_args, train_dataset=heads_train, eval_dataset=eval_ds, **common)
        stage.train()
        heads_metrics = stage.evaluate() if eval_ds is not None else {}
        if stage.is_world_process_zero() and heads_metrics:
            print("\n== after the heads-only stage ==\n" + format_metrics(heads_metrics, specs), flush=True)
        # Only the main process removes the stage's empty folder; the others wait, so none races it to the removal
        # (or sees a half-removed tree) and the main stage starts on every process from the same file-system state.
        if stage.is_world_process_zero() and os.path.isdir(heads_args.output_dir) \
                and not os.listdir(heads_args.output_dir):
            os.rmdir(heads_args.output_dir)
        stage.accelerator.wait_for_everyone()
        del stage
        if training_args.freeze_policy is None:
            # Stage 1 froze the backbone; an unset policy would silently keep it frozen for the fine-tuning stage.
            logger.warning("no freeze_policy for the main stage after the heads-only stage: fine-tuning everything ('full')")
            training_args.freeze_policy = "full"
    trainer = MultiTaskTrainer(
        model=model, args=training_args, train_dataset=train_ds, eval_dataset=eval_ds, callbacks=callbacks, **common
    )
    if trainer.freeze_choice is not None:
        logger.info("main stage: freeze policy %s (%s)", trainer.freeze_choice.policy, trainer.freeze_choice.reason)
    train_result = trainer.train(resume_from_checkpoint=training_args.resume_from_checkpoint)
    if trainer.state.global_step < trainer.state.max_steps:
        logger.warning("training stopped early at step %d of %d", trainer.state.global_step, trainer.state.max_steps)
        return {}
    # With push_to_hub the stock save_model would push now, before the final evaluation: the push below carries it.
    trainer.save_model(_internal_call=training_args.push_to_hub)
    trainer.log_metrics("train", train_result.metrics)
    trainer.save_metrics("train", train_result.metrics)
    metrics: dict[str, float] = {}
    # a packaged backbone was loaded from a local folder: the card names its Hub id instead
    card: dict[str, Any] = {"datasets": data_args.dataset,
                            "base_model": model_args.backbone if model_args.backbone in PACKAGED_BACKBONES else None}
    if eval_ds is not None:
        metrics = trainer.evaluate()
        trainer.save_metrics("eval", metrics)
        per_label = compute_metrics.last.per_label
        if trainer.is_world_process_zero():
            with open(os.path.join(training_args.output_dir, PER_LABEL_FILE), "w", encoding="utf-8") as handle:
                json.dump(per_label, handle, indent=2)
            chance = label_prevalence(eval_raw, specs, data_args.label_columns)
            report = format_metrics(metrics, specs, per_label if script_args.show_per_label else None, chance)
            print("\n== evaluation (eval split, present labels only) ==\n" + report, flush=True)
        card["per_label_metrics"] = per_label
    if training_args.push_to_hub:  # every process: the card (final evaluation included), the model, its processor
        trainer.push_to_hub(**card)
    elif eval_ds is not None and trainer.is_world_process_zero():
        trainer.create_model_card(**card)
    if trainer.is_world_process_zero():
        elapsed = time.time() - started
        print(f"\nmodel folder: {os.path.abspath(training_args.output_dir)}  (wall time {elapsed / 60:.1f} min)",
              flush=True)
    return metrics


def make_parser() -> RecipeParser:
    """The recipe's keys as a parser: every field of the four argument dataclasses (``--help`` lists them)."""
    parser = RecipeParser()
    parser.prog = "hf-mtl train <recipe.yaml>"
    return parser


def main(argv: list[str] | None = None, callbacks: list | None = None) -> dict[str, float]:
    """``train <recipe.yaml> [overrides]``: parse, validate, run."""
    argv = list(sys.argv[1:] if argv is None else argv)
    if not argv or argv[0] in ("-h", "--help"):
        print(__doc__)
        make_parser().print_help()
        return {}
    recipe, overrides = (argv[0], argv[1:]) if not argv[0].startswith("-") and "=" not in argv[0] else (None, argv)
    logging.basicConfig(format="%(asctime)s %(levelname)s %(name)s: %(message)s", level=logging.INFO)
    model_args, data_args, script_args, training_args = parse_recipe(recipe, overrides)
    return run(model_args, data_args, script_args, training_args, callbacks=callbacks)


def cli_main(argv: list[str] | None = None) -> int:
    """``python -m hf_mtl.scripts.train``: as ``hf-mtl train`` (exit 2 and a one-line error for a bad recipe)."""
    try:
        main(argv)
    except RecipeError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(cli_main())
