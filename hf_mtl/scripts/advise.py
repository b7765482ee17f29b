"""Advice before training, on a recipe's own data: which backbone transfers (LogME), whether transfer helps and how
much to freeze (heads-only probe against a random-init control), which tasks to train together (task affinity).

    hf-mtl advise recipes/fashion_grid_mixed_tasks.yaml
    hf-mtl advise recipes/fashion_grid_mixed_tasks.yaml --backbones tf_efficientnet_lite0@efficientnet_lite0_imagenet \
        mobilenetv3_small_100@none --max-samples 1000 --output-dir outputs/advice

Writes advice.md, advice.json and plots to the output folder.
"""

from __future__ import annotations

import argparse
import dataclasses
import logging
import os
import sys
from collections.abc import Sequence
from typing import Any

from .arguments import ModelArguments, RecipeError


def recipe_model_factory(model_args: ModelArguments):
    """``(name, weights) -> (model, processor)`` built the way the recipe builds its model (its backbone library,
    pooling, image size, packaged weights), with the candidate's backbone and weights swapped in."""
    from .models import build_model, build_model_processor

    def build(name: str, weights: str) -> tuple[Any, Any]:
        args = dataclasses.replace(model_args, backbone=name, weights=weights, model_name_or_path=None)
        model = build_model(args)
        return model, build_model_processor(model, args)

    return build


def advise_recipe(
    recipe: str | os.PathLike | dict[str, Any],
    backbones: Sequence[str] | None = None,
    *,
    max_samples: int | None = 2000,
    output_dir: str | os.PathLike | None = None,
    overrides: list[str] | dict[str, Any] | None = None,
    **kwargs: Any,
) -> dict[str, Any]:
    """`hf_mtl.advise.advise` on a recipe: its training data (the first ``max_samples`` rows), tasks, input and label
    columns, and its backbone and weights as the default candidate. Other keyword arguments go to `advise`.

    Args:
        output_dir: report folder (default: ``<recipe output_dir>/advice``).
    """
    from ..advise import advise
    from ..tasks import TaskSpec
    from .arguments import parse_recipe
    from .recipe_data import check_labels, input_column, load_recipe_datasets

    model_args, data_args, _, training_args = parse_recipe(recipe, overrides)
    if max_samples is not None:
        data_args.max_train_samples = int(max_samples)
    specs = [TaskSpec.from_dict(t) for t in model_args.tasks]
    output_dir = os.fspath(output_dir or os.path.join(training_args.output_dir, "advice"))
    train_raw, _ = load_recipe_datasets(data_args, seed=kwargs.get("seed", 0))
    if max_samples is not None and len(train_raw) > max_samples:
        train_raw = train_raw.select(range(max_samples))
    check_labels(train_raw, specs, data_args, "train")
    default = model_args.backbone if model_args.weights == "pretrained" else f"{model_args.backbone}@{model_args.weights}"
    return advise(
        train_raw, specs, list(backbones or [default]), output_dir=output_dir,
        input_column=input_column(data_args, train_raw), label_columns=data_args.label_columns,
        build_model=recipe_model_factory(model_args), max_samples=max_samples,
        cache_dir=training_args.feature_cache_dir, allow_empty_text=data_args.allow_empty_text,
        source=os.fspath(recipe) if not isinstance(recipe, dict) else None, **kwargs,
    )


def make_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="hf-mtl advise", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("recipe", help="training recipe YAML (its data, tasks, backbone and weights)")
    parser.add_argument("--backbones", nargs="+", default=None, metavar="NAME[@WEIGHTS]",
                        help="candidate backbones (weights: pretrained, none, a packaged name, a file); default: the "
                             "recipe's")
    parser.add_argument("--max-samples", type=int, default=2000, help="training rows used (default 2000)")
    parser.add_argument("--output-dir", default=None, help="report folder (default: <recipe output_dir>/advice)")
    parser.add_argument("--affinity-steps", type=int, default=100, help="steps of the short joint run for affinity")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("overrides", nargs="*", help="recipe overrides key=value")
    return parser


def main(argv: list[str] | None = None) -> int:
    args = make_parser().parse_args(argv)
    logging.basicConfig(format="%(asctime)s %(levelname)s %(name)s: %(message)s", level=logging.INFO)
    try:
        report = advise_recipe(args.recipe, args.backbones, max_samples=args.max_samples, output_dir=args.output_dir,
                        overrides=args.overrides, affinity_steps=args.affinity_steps, seed=args.seed)
    except ValueError as err:  # bad candidates, labels or features: the CLI prints it and exits with 2
        if isinstance(err, RecipeError):
            raise
        raise RecipeError(f"advise: {err}") from err
    with open(f"{report['output_dir']}/advice.md", encoding="utf-8") as handle:
        print(handle.read(), flush=True)
    print(f"advice written to {report['output_dir']}", flush=True)
    return 0


if __name__ == "__main__":
    try:
        sys.exit(main())
    except RecipeError as err:
        print(f"error: {err}", file=sys.stderr)
        sys.exit(2)
