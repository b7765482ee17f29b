"""The `hf-mtl` command: train from a recipe, evaluate, predict and push a saved model.

    hf-mtl train recipes/fashion_grid_efficientnet.yaml [key=value | --key value ...]
    hf-mtl eval outputs/my_model my_recipe.yaml [--split test | --file data.jsonl | --data_dir folder] [overrides]
    hf-mtl tune-thresholds outputs/my_model my_recipe.yaml [--objective f1 | precision | recall --target 0.9]
    hf-mtl predict outputs/fashion_grid_efficientnet image1.png image2.png [--top_k 3]
    hf-mtl push outputs/fashion_grid_efficientnet user/fashion-grid-presence [--private] [--space_app space/]
    hf-mtl advise recipes/fashion_grid_mixed_tasks.yaml [--backbones a b c] [--max-samples N] [--output-dir DIR]
    hf-mtl export onnx outputs/fashion_grid_efficientnet [--output model.onnx]
    hf-mtl demo outputs/fashion_grid_efficientnet [--port 7860] [--onnx]

Overrides are recipe keys: `key=value` or `--key value` (`--flag` / `--no_flag` for booleans); `key=null` or
`--no_key` (`--no-key`) unsets a key that may be null, e.g. `data_dir=null` (`none` stays a value: `weights=none`).

Each command is a module `hf_mtl.scripts.<command>` with `make_parser()` and `main(argv)`; this only dispatches.
`train` also runs under `accelerate launch` (`accelerate launch -m hf_mtl.cli train recipe.yaml`).
"""

from __future__ import annotations

import argparse
import logging
import sys
from types import ModuleType

COMMANDS = {
    "train": "train from a YAML recipe",
    "eval": "evaluate a saved model on a split, file or folder (results JSON beside the model)",
    "tune-thresholds": "tune multilabel / binary decision thresholds on validation data, saved in the config",
    "predict": "predict every task for images or texts",
    "push": "push a saved model (with its card) to the Hub",
    "advise": "before training: which backbone, freeze policy and task grouping (a report)",
    "export": "export a saved model (ONNX graph, one output per task)",
    "demo": "a local Gradio app for a saved model",
}


def command_module(name: str) -> ModuleType:
    """``hf_mtl.scripts.<name>`` (``-`` read as ``_``), imported when its command runs (each pulls in different
    layers)."""
    if name == "train":
        from .scripts import train as module
    elif name == "eval":
        from .scripts import eval as module
    elif name == "tune-thresholds":
        from .scripts import tune_thresholds as module
    elif name == "predict":
        from .scripts import predict as module
    elif name == "advise":
        from .scripts import advise as module
    elif name == "export":
        from .scripts import export as module
    elif name == "demo":
        from .scripts import demo as module
    else:
        from .scripts import push as module
    return module


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="hf-mtl", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="command", required=True)
    for name, help_text in COMMANDS.items():  # each command parses its own arguments (`hf-mtl <command> --help`)
        sub.add_parser(name, help=help_text, add_help=False).add_argument("rest", nargs=argparse.REMAINDER)
    return parser


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv[:1] and argv[0] in COMMANDS:  # everything after the command is that command's (incl. --help)
        command, rest = argv[0], argv[1:]
    else:
        build_parser().parse_args(argv)  # usage / --help / an unknown command: argparse exits
        return 2
    logging.basicConfig(format="%(asctime)s %(levelname)s %(name)s: %(message)s", level=logging.INFO)
    import hf_mtl  # noqa: F401  (registers the Auto classes and the pipeline)

    from .hub import PushToHubError
    from .scripts.arguments import RecipeError

    try:
        command_module(command).main(rest)
    except RecipeError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    except PushToHubError as err:  # the Hub failed: the message says what reached it; no local file is lost
        print(f"error: {err}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
