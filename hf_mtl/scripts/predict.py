"""Predict every task of a saved model for image paths or texts; prints one JSON line per input.

    hf-mtl predict outputs/fashion_grid_efficientnet image1.png image2.png [--top_k 3]
    cat texts.txt | hf-mtl predict outputs/wordnet_minilm -
    hf-mtl predict outputs/fashion_grid_efficientnet image1.png --onnx   # from `hf-mtl export onnx`'s graph
"""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any

from .arguments import RecipeError
from .export import load_predictor


def make_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="hf-mtl predict", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("model", help="saved model folder or Hub id")
    parser.add_argument("inputs", nargs="+", help="image paths or texts; - reads one per line from stdin")
    parser.add_argument("--top_k", type=int, default=1, help="classes returned by multiclass tasks")
    parser.add_argument("--batch_size", type=int, default=32)
    parser.add_argument("--onnx", nargs="?", const="", default=None, metavar="GRAPH",
                        help="run the exported ONNX graph (default <model>/model.onnx) with onnxruntime")
    return parser


def main(argv: list[str] | None = None) -> list[dict[str, Any]]:
    args = make_parser().parse_args(sys.argv[1:] if argv is None else argv)
    inputs = args.inputs
    if inputs == ["-"]:
        inputs = [line.rstrip("\n") for line in sys.stdin if line.strip()]
    if not inputs:
        raise RecipeError("predict: give at least one input (image paths or texts, or - for stdin)")
    model = load_predictor(args.model, args.onnx)
    results = model.predict(inputs, top_k=args.top_k, batch_size=args.batch_size)
    for item, result in zip(inputs, results):
        print(json.dumps({"input": item, **result}), flush=True)
    return results
