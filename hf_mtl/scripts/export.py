"""Export a saved multi-task model: an ONNX graph with one named output per task, checked against PyTorch.

    hf-mtl export onnx outputs/fashion_grid_efficientnet [--output model.onnx] [--exporter torchscript]

The graph (default ``<model>/model.onnx``) has a dynamic batch axis (and sequence axis for text); onnxruntime's
logits are compared with PyTorch's on fresh inputs and the largest absolute difference is printed and written to
``<graph>.json``. `hf-mtl predict <model> ... --onnx` then runs from the graph.
"""

from __future__ import annotations

import argparse
import json
import os
import sys

from .arguments import RecipeError


def make_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="hf-mtl export", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("format", choices=["onnx"], help="what to export to")
    parser.add_argument("model", help="saved model folder or Hub id")
    parser.add_argument("--output", default=None, help="the .onnx file (default: <model>/model.onnx)")
    parser.add_argument("--opset", type=int, default=None, help="ONNX opset (default: 18)")
    parser.add_argument("--exporter", choices=["dynamo", "torchscript"], default="dynamo",
                        help="torch.onnx exporter: dynamo (torch.export) or the legacy TorchScript tracer")
    parser.add_argument("--tolerance", type=float, default=1e-4,
                        help="fail when onnxruntime and PyTorch logits differ by more than this")
    return parser


def main(argv: list[str] | None = None) -> dict:
    args = make_parser().parse_args(sys.argv[1:] if argv is None else argv)
    from ..export import DEFAULT_OPSET, ONNX_FILE, export_onnx
    from .models import load_saved_model

    model = load_saved_model(args.model)
    if args.output is None and not os.path.isdir(args.model):
        raise RecipeError(f"export: {args.model!r} is not a local folder; give --output")
    output = args.output or os.path.join(args.model, ONNX_FILE)
    try:
        report = export_onnx(model, output, opset=args.opset or DEFAULT_OPSET, exporter=args.exporter)
    except ImportError as err:
        raise RecipeError(f"export: {err} (pip install 'hf-mtl[export]')") from err
    with open(output + ".json", "w", encoding="utf-8") as handle:
        json.dump(report, handle, indent=2)
    print(f"wrote {output}: inputs {report['inputs']}, outputs {report['outputs']} (opset {report['opset']}, "
          f"{report['exporter']}); onnxruntime vs PyTorch max abs diff {report['max_abs_diff']:.3g}", flush=True)
    if report["max_abs_diff"] > args.tolerance:
        raise RecipeError(f"export: onnxruntime differs from PyTorch by {report['max_abs_diff']:.3g} "
                          f"(> --tolerance {args.tolerance}); the graph at {output} is not faithful")
    return report


def load_predictor(model: str, onnx: str | None = None):
    """A saved model for `predict` / `demo`: PyTorch, or with ``onnx`` (a path, or ``""`` for ``<model>/model.onnx``)
    its exported graph run by onnxruntime with the same processor and decoding."""
    from .models import load_saved_model

    if onnx is None:
        return load_saved_model(model)
    from ..export import OnnxMultiTaskModel

    try:
        return OnnxMultiTaskModel.from_pretrained(model, onnx or None)
    except (FileNotFoundError, ImportError, OSError, ValueError) as err:
        raise RecipeError(f"--onnx: {err}") from err
