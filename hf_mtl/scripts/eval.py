"""Evaluate a saved model on any split, file or folder: says what it evaluated (and how many rows), prints the per-task
(and per-label) metrics and writes them as JSON next to the model (``eval_<split>_results.json``).

    hf-mtl eval outputs/my_model my_recipe.yaml                      # the recipe's evaluation split, as in training
    hf-mtl eval outputs/my_model my_recipe.yaml --split test         # `test_file`, or the data_dir's test/ folder
    hf-mtl eval outputs/my_model my_recipe.yaml --file data/new.jsonl
    hf-mtl eval outputs/my_model my_recipe.yaml --data_dir photos/batch2   # an imagefolder or save_to_disk folder
    hf-mtl eval outputs/my_model my_recipe.yaml --split test max_eval_samples=200 per_device_eval_batch_size=64

The model and its processor come from the saved folder; the recipe gives the data keys (dataset, input and label
columns). Only the evaluated rows are read and validated: never the training data (except `--split train`, and a
validation share held out of the training file, which can only be drawn from it). Every row is evaluated unless
`max_eval_samples` is given on this command line (the recipe's own value, meant for evaluation during training, is
not used; built-in data keeps it, as it sets how many rows are generated).
"""

from __future__ import annotations

import argparse
import json
import os

from .arguments import UNSET_HELP
from .evaluation import EvalSetup, add_data_arguments, cleanup, parse_args, setup
from .train import format_metrics, label_prevalence


def make_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="hf-mtl eval", description=__doc__, epilog=UNSET_HELP,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    return add_data_arguments(parser)


def results_path(model: str, name: str) -> str:
    """``eval_<name>_results.json`` in the model folder (a Hub id: the current directory)."""
    folder = model if os.path.isdir(model) else os.getcwd()
    return os.path.join(folder, f"eval_{name}_results.json")


def write_results(path: str, run: EvalSetup, model: str, metrics: dict[str, float],
                  plots: list[tuple[str, str]] | None = None) -> str:
    """The results file; ``plots`` (``(caption, path relative to the model folder)``) and the data described as a
    card shows it let ``hf-mtl push`` put this evaluation into the model's card."""
    from ..modelcard import card_path

    result = {
        "model": os.path.abspath(model) if os.path.isdir(model) else model,
        "data": {**run.data.source, "description": run.data.description, "card_description": run.data.header(card_path)},
        "rows": run.data.rows,
        "total_rows": run.data.total_rows,
        "metrics": metrics,
        "per_label_metrics": run.compute_metrics.last.per_label,
        "plots": [list(plot) for plot in plots or []],
    }
    with open(path, "w", encoding="utf-8") as handle:
        json.dump(result, handle, indent=2)
    return path


def main(argv: list[str] | None = None) -> dict[str, float]:
    """Returns the ``eval_*`` metrics."""
    from ..chart import write_evaluation_plots  # the plots of the evaluated split, beside the model
    from ..modelcard import display_path, refresh_saved_card

    args, overrides = parse_args(make_parser(), argv)
    run = setup(args, overrides)
    local = os.path.isdir(args.model)
    print(f"== hf-mtl eval ==\nmodel: {os.path.abspath(args.model) if local else args.model}\n"
          f"data:  {run.data.header()}", flush=True)
    metrics = run.trainer.evaluate()
    cleanup(run)
    specs = run.model.task_specs
    chance = label_prevalence(run.data.dataset, specs, run.data_args.label_columns)
    print(f"\n== evaluation ({run.data.name}, present labels only) ==\n"
          + format_metrics(metrics, specs, run.compute_metrics.last.per_label, chance), flush=True)
    path = results_path(args.model, run.data.name)
    folder = os.path.dirname(path)  # the plots go beside the results: the model folder, or for a Hub id the cwd
    plots = write_evaluation_plots(specs, run.compute_metrics.last, args.model, folder, split=run.data.name,
                                   what=run.data.header(display_path))  # no local path in a plot a card may show
    path = write_results(path, run, args.model, metrics, plots)
    print(f"\nresults: {path}", flush=True)
    print("plots: " + ", ".join(os.path.join(folder, plot) for _, plot in plots), flush=True)
    card = refresh_saved_card(run.model, args.model) if local else None  # the card hf_mtl wrote: add this run
    if card is not None:
        print(f"card: {card} (with this evaluation; `hf-mtl push` publishes the same)", flush=True)
    return metrics
