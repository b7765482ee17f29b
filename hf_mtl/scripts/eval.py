"""Evaluate a saved model on a recipe's evaluation data; prints the per-task (and per-label) metrics.

    hf-mtl eval outputs/fashion_grid_efficientnet recipes/fashion_grid_efficientnet.yaml [key=value | --key value ...]
"""

from __future__ import annotations

import argparse
import sys
import tempfile

from .arguments import RecipeError, parse_overrides, parse_recipe, read_recipe_file
from .models import build_model_processor, load_saved_model
from .recipe_data import check_labels, input_column, load_recipe_datasets, with_preprocessing
from .train import format_metrics, label_prevalence

MODEL_KEYS = ("backbone", "tasks", "weights", "backbone_library", "backbone_kwargs", "pooling")
"""Recipe keys that built the original model: the model comes from the saved folder instead."""
TRAINING_ONLY_KEYS = ("freeze_policy", "feature_cache", "unfreeze_every", "push_to_hub", "resume_from_checkpoint")


def make_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="hf-mtl eval", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("model", help="saved model folder or Hub id")
    parser.add_argument("recipe", nargs="?", help="recipe YAML naming the data")
    parser.add_argument("overrides", nargs=argparse.REMAINDER, help="key=value or --key value")
    return parser


def main(argv: list[str] | None = None) -> dict[str, float]:
    """Returns the ``eval_*`` metrics."""
    from ..metrics import build_compute_metrics
    from ..trainer import MultiTaskTrainer

    args = make_parser().parse_args(sys.argv[1:] if argv is None else argv)
    values = read_recipe_file(args.recipe) if args.recipe else {}
    overrides = parse_overrides(args.overrides)
    for source in (values, overrides):
        for key in (*MODEL_KEYS, *TRAINING_ONLY_KEYS):
            source.pop(key, None)
    values["model_name_or_path"] = args.model
    values.setdefault("report_to", "none")
    if "output_dir" not in values and "output_dir" not in overrides:
        values["output_dir"] = tempfile.mkdtemp(prefix="hf_mtl_eval_")
    model_args, data_args, _, training_args = parse_recipe(values, overrides)
    model = load_saved_model(args.model)
    specs = model.task_specs
    _, eval_raw = load_recipe_datasets(data_args, seed=training_args.seed)
    if eval_raw is None:
        raise RecipeError("the recipe's data has no evaluation split")
    check_labels(eval_raw, specs, data_args, "eval")
    processor = build_model_processor(model, model_args)
    eval_ds = with_preprocessing(eval_raw, processor, input_column(data_args, eval_raw), train=False)
    compute_metrics = build_compute_metrics(model)
    trainer = MultiTaskTrainer(model=model, args=training_args, eval_dataset=eval_ds, compute_metrics=compute_metrics,
                               processing_class=processor)
    metrics = trainer.evaluate()
    chance = label_prevalence(eval_raw, specs, data_args.label_columns)
    print(format_metrics(metrics, specs, compute_metrics.last.per_label, chance), flush=True)
    return metrics
