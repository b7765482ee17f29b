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
import glob
import json
import logging
import os
import sys
import time
from typing import Any

from transformers import set_seed

from ..chart import PLOTS_DIR
from ..checkpointing import resolve_resume_checkpoint
from ..modelcard import default_model_name, drop_eval_results
from .arguments import DataArguments, ModelArguments, RecipeError, RecipeParser, ScriptArguments, parse_recipe
from .models import PACKAGED_BACKBONES, build_model, build_model_processor
from .recipe_data import (
    check_inputs,
    check_labels,
    describe_eval_rows,
    input_column,
    load_recipe_datasets,
    load_stream_datasets,
    stream_with_preprocessing,
    training_eval_source,
    with_preprocessing,
)

logger = logging.getLogger(__name__)

HUB_BUILDERS = ("json", "csv", "parquet", "imagefolder", "audiofolder", "text", "arrow")
"""``dataset`` values that name a ``datasets`` builder, not a Hub data set: never the card's ``datasets``."""


def packaged_hub_id(name: str | None) -> str | None:
    """The Hub id a packaged backbone name (``PACKAGED_BACKBONES``, aliases included) is a local copy of."""
    if name not in PACKAGED_BACKBONES:
        return None
    resolve = PACKAGED_BACKBONES[name]
    return next((key for key, value in PACKAGED_BACKBONES.items() if value is resolve and "/" in key), name)


def describe_eval_data(data_args: DataArguments, rows: int, seed: int) -> tuple[str, str]:
    """``(split, what)``: the split the run is evaluated on and the data it is, in the words of ``hf-mtl eval``'s header
    ([`describe_eval_rows`]), with paths shortened and quoted as a published card shows them."""
    from ..modelcard import card_path

    source = training_eval_source(data_args, seed)
    return source["split"], describe_eval_rows(source, rows, path=card_path)


def card_recipe(model_args: ModelArguments, data_args: DataArguments, script_args: ScriptArguments, training_args,
                state, heads_state=None, kept: str | None = None) -> dict[str, list[tuple[str, Any]]]:
    """The card's recipe, per stage: every model / data / stage key the run used (unset keys left out; the tasks
    have their own card section), the heads-only stage as it ran, the main stage's training arguments."""
    from dataclasses import fields

    from ..modelcard import display_path, training_recipe

    def section(args: Any, always: tuple[str, ...]) -> list[tuple[str, Any]]:
        """The keys the recipe set (or that differ from their defaults), and ``always``."""
        return [(f.name, display_path(getattr(args, f.name))) for f in fields(args) if f.name != "tasks"
                and getattr(args, f.name) is not None and (f.name in always or getattr(args, f.name) != f.default)]

    recipe = {"model": section(model_args, ("backbone", "weights", "image_size", "pooling")),
              "data": section(data_args, ("dataset", "augment"))}
    if script_args.heads_only_epochs > 0:
        heads = [("freeze_policy", "heads"), ("num_train_epochs", script_args.heads_only_epochs),
                 ("learning_rate", script_args.heads_only_learning_rate or training_args.learning_rate),
                 ("feature_cache", script_args.heads_only_feature_cache)]
        if heads_state is not None:
            heads.append(("trained_steps", heads_state.global_step))
        recipe["stage 1: heads only (backbone frozen)"] = heads
    main = training_recipe(training_args, state)
    stage = "stage 2: main" if script_args.heads_only_epochs > 0 else "training"
    recipe[stage] = main
    selection = [("final_model", script_args.final_model)] + ([("kept", f"the {kept} stage")] if kept else [])
    if script_args.heads_only_epochs > 0:
        recipe["final model"] = selection
    return recipe


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
        names = [*spec.task_type.summary_metrics(), *spec.task_type.baseline_metric_names]  # + constant predictor
        summary = ", ".join(f"{n}={head[n]:.4f}" for n in names if n in head)
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


STAGE_SELECTION_FILE = "stage_selection.json"


def compare_stages(
    heads: dict[str, float], tuned: dict[str, float], specs: list, rule: str = "best_stage"
) -> tuple[bool, str, list[dict[str, Any]]]:
    """Whether the fine-tuned model is kept over the heads-only stage, why, and the per-task table it decided from.

    ``heads`` / ``tuned``: ``eval_*`` metrics of the two. ``best_stage``: kept only when no task's main metric is
    worse; ``best_mean``: kept when the mean `TaskType.main_score` is at least the heads-only one; ``last``: kept.
    """
    from ..metrics import MAIN_SCORE

    table, worse = [], []
    for spec in specs:
        key = f"eval_{spec.name}_{spec.task_type.main_metric}"
        before, after = heads.get(key), tuned.get(key)
        row = {"task": spec.name, "metric": spec.task_type.main_metric, "heads_only": before, "fine_tuned": after}
        if before is not None and after is not None:
            better = after >= before if spec.task_type.greater_is_better else after <= before
            row["fine_tuned_at_least_as_good"] = bool(better)
            if not better:
                worse.append(f"{spec.name} {spec.task_type.main_metric} {after:.4f} vs {before:.4f}")
        table.append(row)
    mean_before, mean_after = heads.get(f"eval_{MAIN_SCORE}"), tuned.get(f"eval_{MAIN_SCORE}")
    table.append({"task": "(mean)", "metric": MAIN_SCORE, "heads_only": mean_before, "fine_tuned": mean_after})
    if rule == "last":
        return True, "final_model=last keeps the fine-tuned model", table
    if rule == "best_mean":
        if mean_before is None or mean_after is None or mean_after >= mean_before:
            return True, f"mean {MAIN_SCORE} {mean_after} >= heads-only {mean_before}", table
        return False, f"mean {MAIN_SCORE} {mean_after:.4f} < heads-only {mean_before:.4f}", table
    if worse:
        return False, "fine-tuning is worse than the heads-only stage on " + "; ".join(worse), table
    return True, "fine-tuning is at least as good as the heads-only stage on every task's main metric", table


AUTO_POLICY_FILE = "freeze_auto.json"
POLICY_ORDER = ("heads", "top_n", "full")
"""Candidates of the measured `auto` policy, from the least to the most trained (a tie keeps the earlier)."""


def measure_freeze_policy(model, training_args, script_args, train_ds, eval_ds, heads_metrics: dict[str, float],
                          common: dict[str, Any]) -> tuple[str, list[dict[str, Any]]]:
    """`freeze_policy: auto` by evidence: from the heads-only model, short seeded trials of `top_n` and `full`
    (``auto_trial_steps`` each) compared on the evaluation set's `main_score`.

    Whether to fine-tune at all is decided here only with ``final_model: last``. Otherwise the heads-only stage stays a
    candidate to the end, where `compare_stages` weighs it against the fully trained model: a short trial measures
    the dip right after unfreezing, not where the schedule ends (`claim_data_size`, 3,000 grids: 50-step trials scored
    below the heads-only stage in 3 of 3 seeds, the trained `top_n` ended 0.019 above it), so the trials only choose
    how much of the backbone trains. Returns the winning policy and the decision table; the model is left as the
    heads-only stage made it.
    """
    from ..metrics import MAIN_SCORE
    from ..trainer import MultiTaskTrainer

    heads_decides_later = script_args.final_model != "last"
    state = {k: v.detach().to("cpu", copy=True) for k, v in model.state_dict().items()}
    table = [{"policy": "heads", "steps": 0, MAIN_SCORE: heads_metrics.get(f"eval_{MAIN_SCORE}"),
              "note": f"the heads-only stage itself; {script_args.final_model} compares it with the trained model at "
                      "the end" if heads_decides_later else "the heads-only stage itself"}]
    for policy in POLICY_ORDER[1:]:
        args = copy.deepcopy(training_args)
        args.freeze_policy, args.max_steps, args.unfreeze_every = policy, script_args.auto_trial_steps, None
        args.output_dir = os.path.join(training_args.output_dir, f"auto_trial_{policy}")
        args.eval_strategy = args.save_strategy = "no"
        args.load_best_model_at_end = args.push_to_hub = False
        args.resume_from_checkpoint = None
        trial = MultiTaskTrainer(model=model, args=args, train_dataset=train_ds, eval_dataset=eval_ds, **common)
        trial.train()
        metrics = trial.evaluate()
        row = {"policy": policy, "steps": script_args.auto_trial_steps, MAIN_SCORE: metrics.get(f"eval_{MAIN_SCORE}")}
        if policy == "top_n":
            row["freeze_top_n"] = training_args.freeze_top_n
        table.append(row)
        del trial
        model.load_state_dict(state)
        if os.path.isdir(args.output_dir) and not os.listdir(args.output_dir):
            os.rmdir(args.output_dir)
    scored = [row for row in table if row[MAIN_SCORE] is not None and not (heads_decides_later and
                                                                          row["policy"] == "heads")]
    best = max(scored, key=lambda row: (row[MAIN_SCORE], -POLICY_ORDER.index(row["policy"])))["policy"] \
        if scored else "heads"
    return best, table


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
    if data_args.streaming:  # a stream per process (its own shards); its first rows are checked by the trainer
        if training_args.max_steps <= 0:
            raise RecipeError(f"recipe: `streaming: true` needs `max_steps` (> 0): a stream has no length, got "
                              f"{training_args.max_steps}")
        train_raw, eval_raw = load_stream_datasets(data_args, training_args.seed, training_args.process_index,
                                                   training_args.world_size)
        prepare = stream_with_preprocessing
    else:
        # The main process builds the `datasets` Arrow caches (load, split, map) first; the others then read them.
        # Several nodes: each node's main when they keep their own files (save_on_each_node), else the first node's.
        with training_args.main_process_first(desc="load the recipe's datasets", local=training_args.save_on_each_node):
            train_raw, eval_raw = load_recipe_datasets(data_args, seed=training_args.seed)
        prepare = with_preprocessing
    model = build_model(model_args)
    if model_args.model_name_or_path is None and packaged_hub_id(model_args.backbone):
        model.config.backbone_hub_id = packaged_hub_id(model_args.backbone)  # loaded from a package's local copy
    specs = model.task_specs
    if not data_args.streaming:
        check_labels(train_raw, specs, data_args, "train")
    if eval_raw is not None:
        check_labels(eval_raw, specs, data_args, "eval")
    column = input_column(data_args, train_raw)
    for split, raw in (("train", train_raw), ("eval", eval_raw)):
        if raw is not None and not (data_args.streaming and split == "train"):
            check_inputs(raw, column, input_kind(model.main_input_name), data_args, split)
    allow_empty = data_args.allow_empty_text
    processor = build_model_processor(model, model_args)
    model.set_processor(processor)
    train_ds = prepare(train_raw, processor, column, train=data_args.augment, allow_empty_text=allow_empty)
    eval_ds = with_preprocessing(eval_raw, processor, column, train=False, allow_empty_text=allow_empty) \
        if eval_raw is not None else None
    if script_args.tune_thresholds:  # before any training: an evaluation split and a task with thresholds
        from .tune_thresholds import check_tunable

        check_tunable(specs, eval_ds is not None)
    compute_metrics = build_compute_metrics(model)
    common: dict[str, Any] = {"compute_metrics": compute_metrics, "processing_class": processor}
    if data_args.label_columns:
        from ..data import MultiTaskDataCollator

        common["data_collator"] = MultiTaskDataCollator(
            specs, tokenizer=processor, label_columns=data_args.label_columns
        )
    heads_metrics: dict[str, float] = {}
    heads_state: dict[str, Any] | None = None
    histories: list[tuple[str, list[dict[str, Any]]]] = []  # per stage, the Trainer's log history (training curves)
    heads_trainer_state = None
    if script_args.heads_only_epochs > 0 and not training_args.resume_from_checkpoint:
        heads_args = _heads_only_args(training_args, script_args)
        heads_train = prepare(train_raw, processor, column, train=False, allow_empty_text=allow_empty) \
            if heads_args.feature_cache else train_ds
        logger.info("stage 1/2: heads only for %s epochs", script_args.heads_only_epochs)
        stage = MultiTaskTrainer(model=model, args=heads_args, train_dataset=heads_train, eval_dataset=eval_ds, **common)
        stage.train()
        heads_metrics = stage.evaluate() if eval_ds is not None else {}
        histories.append(("heads only", list(stage.state.log_history)))
        heads_trainer_state = stage.state
        if stage.is_world_process_zero() and heads_metrics:
            print("\n== after the heads-only stage ==\n" + format_metrics(heads_metrics, specs), flush=True)
        if heads_metrics and script_args.final_model != "last":  # the candidate fine-tuning must beat
            heads_state = {k: v.detach().to("cpu", copy=True) for k, v in model.state_dict().items()}
        # Only the main process removes the stage's empty folder; the others wait, so none races it to the removal
        # (or sees a half-removed tree) and the main stage starts on every process from the same file-system state.
        if stage.args.should_save and os.path.isdir(heads_args.output_dir) \
                and not os.listdir(heads_args.output_dir):
            os.rmdir(heads_args.output_dir)
        stage.accelerator.wait_for_everyone()
        del stage
        if training_args.freeze_policy == "auto" and heads_metrics:
            policy, table = measure_freeze_policy(model, training_args, script_args, train_ds, eval_ds, heads_metrics,
                                                  common)
            logger.warning("freeze_policy 'auto' -> %s, measured on the eval set (%d steps per trial): %s", policy,
                           script_args.auto_trial_steps, table)
            if training_args.should_save:  # the main process
                print(f"\n== freeze_policy auto: {policy} ==\n" + "\n".join(json.dumps(row) for row in table),
                      flush=True)
                os.makedirs(training_args.output_dir, exist_ok=True)
                with open(os.path.join(training_args.output_dir, AUTO_POLICY_FILE), "w", encoding="utf-8") as handle:
                    json.dump({"policy": policy, "trial_steps": script_args.auto_trial_steps,
                               "seed": training_args.seed, "table": table}, handle, indent=2)
            training_args.freeze_policy = policy
            if policy == "heads" and not data_args.augment:  # the heads-only stage won: more of it, on cached features
                training_args.feature_cache = script_args.heads_only_feature_cache
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
    metrics: dict[str, float] = trainer.evaluate() if eval_ds is not None else {}
    kept = None
    if heads_state is not None and metrics:
        keep, reason, table = compare_stages(heads_metrics, metrics, specs, script_args.final_model)
        if not keep:  # never worse than where fine-tuning started
            trainer.accelerator.unwrap_model(trainer.model).load_state_dict(heads_state)
            metrics = trainer.evaluate()
        kept = "fine-tuned" if keep else "heads-only"
        logger.info("final model: the %s stage (%s)", kept, reason)
        if trainer.is_world_process_zero():
            print(f"\n== final model: the {kept} stage ({reason}) ==", flush=True)
        if trainer.args.should_save:  # the main process (of each node with save_on_each_node)
            os.makedirs(training_args.output_dir, exist_ok=True)
            with open(os.path.join(training_args.output_dir, STAGE_SELECTION_FILE), "w", encoding="utf-8") as handle:
                json.dump({"kept": kept, "reason": reason, "rule": script_args.final_model, "table": table}, handle,
                          indent=2)
    if script_args.tune_thresholds and metrics:  # saved in the config below, so the card and predict use them
        from .tune_thresholds import tune_after_training

        where = describe_eval_rows(training_eval_source(data_args, training_args.seed), len(eval_raw))
        metrics = tune_after_training(trainer, compute_metrics, script_args.tune_thresholds,
                                      script_args.threshold_target, where)
    # With push_to_hub the stock save_model would push now, before the final evaluation: the push below carries it.
    if trainer.args.should_save:
        drop_eval_results(training_args.output_dir)
    trainer.save_model(_internal_call=training_args.push_to_hub)
    trainer.log_metrics("train", train_result.metrics)
    trainer.save_metrics("train", train_result.metrics)
    histories.append(("fine-tuning" if histories else "training", list(trainer.state.log_history)))
    # Only Hub data sets go into the card's `datasets` metadata; files and builders are named in its text.
    hub_dataset = data_args.dataset if data_args.dataset not in (*HUB_BUILDERS, "fashion_grid", "wordnet_glosses") \
        and data_args.dataset is not None and not os.path.exists(data_args.dataset) else None
    card: dict[str, Any] = {
        "datasets": hub_dataset, "histories": histories,
        "model_name": None if training_args.hub_model_id else default_model_name(model.config, training_args.output_dir),
        "recipe": card_recipe(model_args, data_args, script_args, training_args, trainer.state, heads_trainer_state,
                              kept),
    }
    if eval_ds is not None:
        trainer.save_metrics("eval", metrics)
        per_label = compute_metrics.last.per_label
        card["eval_split"], card["eval_data"] = describe_eval_data(data_args, len(eval_raw), training_args.seed)
        if trainer.is_world_process_zero():
            chance = label_prevalence(eval_raw, specs, data_args.label_columns)
            report = format_metrics(metrics, specs, per_label if script_args.show_per_label else None, chance)
            print(f"\n== evaluation on {card['eval_data']}, present labels only ==\n" + report, flush=True)
        card["per_label_metrics"] = per_label
        card["evaluation"] = compute_metrics.last
    if training_args.push_to_hub:  # every process: the card (final evaluation included), the model, its processor
        trainer.push_to_hub(**card)  # (one upload, from the first node's main process)
    if eval_ds is not None and trainer.args.should_save and not (training_args.push_to_hub and
                                                                 trainer.is_world_process_zero()):
        trainer.create_model_card(**card)  # the card in the model folder (of every node with save_on_each_node)
    if trainer.is_world_process_zero():
        plots = sorted(glob.glob(os.path.join(training_args.output_dir, PLOTS_DIR, "*.png")))
        if plots:
            print(f"\nplots: {', '.join(os.path.relpath(p, training_args.output_dir) for p in plots)}", flush=True)
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
