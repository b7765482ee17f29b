"""Advice before training, on a recipe's own data: which backbone transfers (LogME), whether transfer helps and how
much to freeze (heads-only probe against a random-init control), which tasks to train together (task affinity).

    hf-mtl advise recipes/fashion_grid_mixed_tasks.yaml
    hf-mtl advise recipes/fashion_grid_mixed_tasks.yaml --backbones tf_efficientnet_lite0@efficientnet_lite0_imagenet \
        mobilenetv3_small_100@none --max-samples 1000 --output-dir outputs/advice

Writes advice.md, advice.json and plots to the output folder.
"""

from __future__ import annotations

import argparse
import logging
import sys

from .arguments import RecipeError


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
    from ..advise import advise

    args = make_parser().parse_args(argv)
    logging.basicConfig(format="%(asctime)s %(levelname)s %(name)s: %(message)s", level=logging.INFO)
    try:
        report = advise(args.recipe, args.backbones, max_samples=args.max_samples, output_dir=args.output_dir,
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
