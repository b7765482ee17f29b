"""Tune one decision threshold per label of a saved model's multilabel / binary tasks on labelled data (the recipe's
validation split unless told otherwise) and save them in the model's ``config.json``: ``predict``, the pipeline, the
ONNX predictor, the demo, the metrics and the model card all read them from there.

    hf-mtl tune-thresholds outputs/my_model my_recipe.yaml                        # maximise F1 on the validation split
    hf-mtl tune-thresholds outputs/my_model my_recipe.yaml --objective precision --target 0.9
    hf-mtl tune-thresholds outputs/my_model my_recipe.yaml --file data/dev.jsonl --save_to outputs/my_model_tuned
    hf-mtl eval outputs/my_model my_recipe.yaml --split test                      # then report data it never saw

The same from a recipe: `tune_thresholds: f1` tunes after training, before the model and its card are saved. Tune on
validation data, never on the test data you report: metrics on the tuning rows are optimistic. A label without a
present positive (or whose target cannot be reached) keeps its threshold.
"""

from __future__ import annotations

import argparse
import json
import os
from typing import Any

from .arguments import UNSET_HELP, RecipeError, check_threshold_objective
from .evaluation import add_data_arguments, cleanup, parse_args, setup

TUNING_FILE = "threshold_tuning.json"
OBJECTIVES = ("f1", "precision", "recall")  # hf_mtl.metrics.thresholds.OBJECTIVES (not imported: sklearn at --help)


def make_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="hf-mtl tune-thresholds", description=__doc__, epilog=UNSET_HELP,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    add_data_arguments(parser)
    parser.add_argument("--objective", choices=OBJECTIVES, default="f1",
                        help="f1: maximise F1; precision / recall: reach --target (the most recall / precision there)")
    parser.add_argument("--target", type=float, default=None, help="the precision / recall to reach, in (0, 1]")
    parser.add_argument("--save_to", default=None, metavar="FOLDER",
                        help="save the model with its tuned thresholds there (default: update the model folder's "
                             "config.json in place; required for a Hub id)")
    return parser


def check_tunable(specs: list, has_eval: bool) -> None:
    """Before any training: a recipe's `tune_thresholds` needs an evaluation split and a task that has thresholds."""
    if not has_eval:
        raise RecipeError("recipe: `tune_thresholds` tunes on the evaluation split, and this recipe's data has none")
    if not any(spec.task_type.uses_thresholds for spec in specs):
        raise RecipeError("recipe: `tune_thresholds`: no task has thresholds (multilabel and binary tasks do); "
                          f"the tasks are {[f'{s.name} ({s.type})' for s in specs]}")


def tune(trainer: Any, compute_metrics: Any, objective: str, target: float | None, dataset: Any = None) -> dict[str, Any]:
    """Tune the thresholds on ``dataset`` (default: the trainer's eval set) and write them into the model config.

    One prediction pass: the logits score the current thresholds, are tuned on (``hf_mtl.metrics.tune_thresholds``,
    as ``MultiTaskTrainer.tune_thresholds``), and score the new ones. Returns the report: ``thresholds``
    ``{task: [per label]}``, ``table`` (per label: threshold, F1 and accuracy before / after) and ``metrics``
    (``eval_*`` at the tuned thresholds)."""
    from transformers import EvalPrediction

    from ..metrics import apply_thresholds, tune_thresholds

    output = trainer.predict(dataset if dataset is not None else trainer.eval_dataset, metric_key_prefix="eval")
    per_label_before = compute_metrics.last.per_label
    model = trainer.accelerator.unwrap_model(trainer.model)
    specs_before = {spec.name: spec for spec in model.task_specs}
    thresholds = tune_thresholds(model, output.predictions, output.label_ids, objective=objective, target=target)
    apply_thresholds(model, thresholds)
    after = compute_metrics(EvalPrediction(predictions=output.predictions, label_ids=output.label_ids))
    metrics = {**output.metrics, **{f"eval_{key}": value for key, value in after.items()}}
    per_label_after = compute_metrics.last.per_label
    table = []
    for task, values in thresholds.items():
        spec = specs_before[task]
        old = spec.thresholds or [0.5] * spec.output_size
        for name, old_value, new_value in zip(spec.output_names, old, values):
            was, now = per_label_before.get(task, {}).get(name, {}), per_label_after.get(task, {}).get(name, {})
            table.append({"task": task, "label": name, "threshold_before": old_value, "threshold": new_value,
                          "f1_before": was.get("f1"), "f1": now.get("f1"), "accuracy_before": was.get("accuracy"),
                          "accuracy": now.get("accuracy"), "support": now.get("support")})
    return {"objective": objective, "target": target, "thresholds": thresholds, "table": table, "metrics": metrics}


def format_table(table: list[dict[str, Any]]) -> str:
    def number(value: Any) -> str:
        return "-" if value is None else f"{value:.4f}"

    lines = [f"    {'task':<14}{'label':<18}{'threshold':>20}{'f1':>20}{'accuracy':>20}"]
    for row in table:
        lines.append(
            f"    {row['task']:<14}{row['label']:<18}"
            f"{number(row['threshold_before']) + ' -> ' + number(row['threshold']):>20}"
            f"{number(row['f1_before']) + ' -> ' + number(row['f1']):>20}"
            f"{number(row['accuracy_before']) + ' -> ' + number(row['accuracy']):>20}"
        )
    return "\n".join(lines)


def tune_after_training(trainer: Any, compute_metrics: Any, objective: str, target: float | None,
                        where: str = "the evaluation split") -> dict[str, float]:
    """A recipe's `tune_thresholds`: tune on the trainer's eval split after training; returns the metrics at the tuned
    thresholds, which the saved model and its card then carry."""
    report = tune(trainer, compute_metrics, objective, target)
    if trainer.is_world_process_zero():
        goal = objective if target is None else f"{objective} >= {target}"
        print(f"\n== thresholds tuned ({goal}) on {where}; the metrics below are on the same rows (optimistic: "
              "report a test split, `hf-mtl eval <model> <recipe> --split test`) ==\n" + format_table(report["table"]),
              flush=True)
        os.makedirs(trainer.args.output_dir, exist_ok=True)
        with open(os.path.join(trainer.args.output_dir, TUNING_FILE), "w", encoding="utf-8") as handle:
            json.dump({k: v for k, v in report.items() if k != "metrics"} | {"data": where}, handle, indent=2)
    return report["metrics"]


def main(argv: list[str] | None = None) -> dict[str, list[float]]:
    """Returns the tuned thresholds ``{task: [per label]}``."""
    args, overrides = parse_args(make_parser(), argv)
    try:
        check_threshold_objective(args.objective, args.target, keys=("--objective", "--target"))
    except RecipeError as err:
        raise RecipeError(str(err).replace("recipe: ", "tune-thresholds: ", 1)) from None
    local = os.path.isdir(args.model)
    if not local and args.save_to is None:
        raise RecipeError(f"tune-thresholds: {args.model!r} is not a local folder: give --save_to FOLDER")
    run = setup(args, overrides)
    specs = run.model.task_specs
    if not any(spec.task_type.uses_thresholds for spec in specs):
        raise RecipeError(f"tune-thresholds: no task of {args.model} has thresholds (multilabel and binary tasks do)")
    print(f"== hf-mtl tune-thresholds ==\nmodel: {os.path.abspath(args.model) if local else args.model}\n"
          f"data:  {run.data.header()}", flush=True)
    if run.data.name == "test" or run.data.source.get("split") == "test":
        print("warning: tuning on a test split: metrics on it are no longer unbiased", flush=True)
    report = tune(run.trainer, run.compute_metrics, args.objective, args.target)
    cleanup(run)
    goal = args.objective if args.target is None else f"{args.objective} >= {args.target}"
    print(f"\n== thresholds tuned ({goal}) on {run.data.name}: before -> after, on the same rows ==\n"
          + format_table(report["table"]), flush=True)
    folder = args.save_to or args.model
    if args.save_to is None:
        run.model.config.save_pretrained(folder)  # only config.json changes; the weights stay as they are
    else:
        run.model.save_pretrained(folder)
        run.trainer.processing_class.save_pretrained(folder)
    record = {k: v for k, v in report.items() if k != "metrics"}
    record["data"] = {**run.data.source, "description": run.data.description, "rows": run.data.rows}
    with open(os.path.join(folder, TUNING_FILE), "w", encoding="utf-8") as handle:
        json.dump(record, handle, indent=2)
    print(f"\nthresholds saved in {os.path.join(os.path.abspath(folder), 'config.json')} "
          f"(table: {TUNING_FILE}); `hf-mtl push` renders the card with them", flush=True)
    if args.save_to is None:
        from ..modelcard import refresh_saved_card

        card = refresh_saved_card(run.model, folder)
        if card is not None:
            print(f"card: {card} (with the tuned thresholds)", flush=True)
    return report["thresholds"]
