"""The `hf-mtl` command: train from a recipe, evaluate, predict and push a saved model.

    hf-mtl train recipes/fashion_grid_efficientnet.yaml [key=value | --key value ...]
    hf-mtl eval outputs/fashion_grid_efficientnet recipes/fashion_grid_efficientnet.yaml [overrides]
    hf-mtl predict outputs/fashion_grid_efficientnet image1.png image2.png [--top_k 3]
    hf-mtl push outputs/fashion_grid_efficientnet user/fashion-grid-presence [--private]

`train` also runs under `accelerate launch` (`accelerate launch -m hf_mtl.cli train recipe.yaml`).
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
import tempfile
from typing import Any

from .scripts.arguments import RecipeError

logger = logging.getLogger(__name__)


def _load_model(path: str):
    from . import MultiTaskModel

    if not os.path.isdir(path) and "/" not in path:
        raise RecipeError(f"model {path!r} is not a folder nor a Hub id (owner/name)")
    try:
        return MultiTaskModel.from_pretrained(path)
    except (OSError, ValueError) as err:
        raise RecipeError(f"cannot load a multi-task model from {path!r}: {err}") from err


def evaluate_command(model_path: str, recipe: str | None, overrides: list[str]) -> dict[str, float]:
    """Evaluate a saved model on a recipe's evaluation data; prints and returns ``eval_*`` metrics."""
    from .metrics import build_compute_metrics
    from .scripts.arguments import check_values, parse_overrides, parse_recipe, read_recipe_file
    from .scripts.models import build_model_processor
    from .scripts.recipe_data import check_labels, input_column, load_recipe_datasets, with_preprocessing
    from .scripts.train import format_metrics, label_prevalence
    from .trainer import MultiTaskTrainer
    from .training_args import MultiTaskTrainingArguments

    values = read_recipe_file(recipe) if recipe else {}
    values.update(parse_overrides(overrides))
    values = check_values(values, "eval recipe", from_text=True)
    # the model comes from model_path: drop what built the original one
    for key in ("backbone", "tasks", "weights", "backbone_library", "backbone_kwargs", "pooling"):
        values.pop(key, None)
    values["model_name_or_path"] = model_path
    output_dir = values.pop("output_dir", None) or tempfile.mkdtemp(prefix="hf_mtl_eval_")
    model_args, data_args, _, _ = parse_recipe({k: v for k, v in values.items() if k in _recipe_keys(("model", "data"))})
    eval_keys = {k: v for k, v in values.items() if k in _recipe_keys(("training",))}
    for key in ("freeze_policy", "feature_cache", "unfreeze_every", "push_to_hub", "resume_from_checkpoint"):
        eval_keys.pop(key, None)
    args = MultiTaskTrainingArguments(output_dir=output_dir, **{"report_to": "none", **eval_keys})
    model = _load_model(model_path)
    specs = model.task_specs
    _, eval_raw = load_recipe_datasets(data_args, seed=args.seed)
    if eval_raw is None:
        raise RecipeError("the recipe's data has no evaluation split")
    check_labels(eval_raw, specs, data_args, "eval")
    processor = build_model_processor(model, model_args)
    eval_ds = with_preprocessing(eval_raw, processor, input_column(data_args, eval_raw), train=False)
    compute_metrics = build_compute_metrics(model)
    trainer = MultiTaskTrainer(model=model, args=args, eval_dataset=eval_ds, compute_metrics=compute_metrics,
                               processing_class=processor)
    metrics = trainer.evaluate()
    chance = label_prevalence(eval_raw, specs, data_args.label_columns)
    print(format_metrics(metrics, specs, compute_metrics.per_label_metrics, chance), flush=True)
    return metrics


def _recipe_keys(groups: tuple[str, ...]) -> set[str]:
    import dataclasses

    from .scripts.arguments import DataArguments, ModelArguments
    from .training_args import MultiTaskTrainingArguments

    classes = {"model": ModelArguments, "data": DataArguments, "training": MultiTaskTrainingArguments}
    return {f.name for g in groups for f in dataclasses.fields(classes[g]) if f.init}


def predict_command(model_path: str, inputs: list[str], top_k: int = 1, batch_size: int = 32) -> list[dict[str, Any]]:
    """Predict every task for image paths or texts (``-``: one input per line on stdin); prints JSON lines."""
    if inputs == ["-"]:
        inputs = [line.rstrip("\n") for line in sys.stdin if line.strip()]
    if not inputs:
        raise RecipeError("predict: give at least one input (image paths or texts, or - for stdin)")
    model = _load_model(model_path)
    results = model.predict(inputs, top_k=top_k, batch_size=batch_size)
    for item, result in zip(inputs, results):
        print(json.dumps({"input": item, **result}), flush=True)
    return results


def push_command(model_path: str, repo_id: str, private: bool = False, revision: str | None = None,
                 commit_message: str | None = None) -> Any:
    """Push a saved model folder with its card (metrics and per-label table from the training run's files)."""
    from .scripts.train import PER_LABEL_FILE

    model = _load_model(model_path)
    card: dict[str, Any] = {}
    eval_file = os.path.join(model_path, "eval_results.json")
    if os.path.isfile(eval_file):
        with open(eval_file, encoding="utf-8") as handle:
            card["metrics"] = json.load(handle)
    per_label_file = os.path.join(model_path, PER_LABEL_FILE)
    if os.path.isfile(per_label_file):
        with open(per_label_file, encoding="utf-8") as handle:
            card["per_label_metrics"] = json.load(handle)
    # the token comes from huggingface_hub's own login / HF_TOKEN: it is never an argument that could be logged
    info = model.push_to_hub(repo_id, private=private, revision=revision, commit_message=commit_message, **card)
    print(f"pushed {model_path} to {repo_id}: {getattr(info, 'commit_url', info)}", flush=True)
    return info


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="hf-mtl", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="command", required=True)
    train = sub.add_parser("train", help="train from a YAML recipe", add_help=False)
    train.add_argument("rest", nargs=argparse.REMAINDER)
    evaluate = sub.add_parser("eval", help="evaluate a saved model on a recipe's eval data")
    evaluate.add_argument("model", help="saved model folder or Hub id")
    evaluate.add_argument("recipe", nargs="?", help="recipe YAML naming the data")
    evaluate.add_argument("overrides", nargs=argparse.REMAINDER, help="key=value or --key value")
    predict = sub.add_parser("predict", help="predict every task for images or texts")
    predict.add_argument("model", help="saved model folder or Hub id")
    predict.add_argument("inputs", nargs="+", help="image paths or texts; - reads one per line from stdin")
    predict.add_argument("--top_k", type=int, default=1, help="classes returned by multiclass tasks")
    predict.add_argument("--batch_size", type=int, default=32)
    push = sub.add_parser("push", help="push a saved model (with its card) to the Hub")
    push.add_argument("model", help="saved model folder")
    push.add_argument("repo_id", help="owner/name on the Hub")
    push.add_argument("--private", action="store_true")
    push.add_argument("--revision", default=None)
    push.add_argument("--commit_message", default=None)
    return parser


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    parser = build_parser()
    if argv[:1] == ["train"]:  # everything after `train` belongs to the recipe parser (incl. --help, --key value)
        args = argparse.Namespace(command="train", rest=argv[1:])
    else:
        args = parser.parse_args(argv)
    logging.basicConfig(format="%(asctime)s %(levelname)s %(name)s: %(message)s", level=logging.INFO)
    import hf_mtl  # noqa: F401  (registers the Auto classes and the pipeline)

    from .hub import PushToHubError

    try:
        if args.command == "train":
            from .scripts.train import main as train_main

            train_main(args.rest)
        elif args.command == "eval":
            evaluate_command(args.model, args.recipe, args.overrides)
        elif args.command == "predict":
            predict_command(args.model, args.inputs, top_k=args.top_k, batch_size=args.batch_size)
        else:
            push_command(args.model, args.repo_id, private=args.private, revision=args.revision,
                         commit_message=args.commit_message)
    except RecipeError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    except PushToHubError as err:  # the Hub failed: the message says what reached it; no local file is lost
        message = f"error: {err}"
        if args.command == "push":
            message += f"\nThe model folder {args.model} is unchanged: `hf-mtl push {args.model} {args.repo_id}` again."
        print(message, file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
