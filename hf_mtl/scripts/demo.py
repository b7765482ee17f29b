"""A local Gradio app for a saved model: image or text in, every task's predictions (probabilities, thresholds) out.

    hf-mtl demo outputs/fashion_grid_efficientnet [--port 7860] [--onnx] [--share]
    hf-mtl demo outputs/fashion_grid_efficientnet --write_space space/ --repo_id user/fashion-grid-presence

`--write_space` writes a Space-ready ``app.py`` (and ``requirements.txt``) for the pushed model instead of serving.
"""

from __future__ import annotations

import argparse
import sys

from .arguments import RecipeError


def make_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="hf-mtl demo", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("model", help="saved model folder or Hub id")
    parser.add_argument("--host", default="127.0.0.1", help="address to serve on")
    parser.add_argument("--port", type=int, default=7860)
    parser.add_argument("--onnx", nargs="?", const="", default=None, metavar="GRAPH",
                        help="predict with the exported ONNX graph (default <model>/model.onnx)")
    parser.add_argument("--top_k", type=int, default=5, help="classes shown for multiclass tasks")
    parser.add_argument("--share", action="store_true", help="also open a public gradio.live link")
    parser.add_argument("--write_space", default=None, metavar="FOLDER",
                        help="write a Space app.py for --repo_id (default: the model argument) there and exit")
    parser.add_argument("--repo_id", default=None, help="the Hub id the Space app loads (with --write_space)")
    return parser


def main(argv: list[str] | None = None) -> None:
    args = make_parser().parse_args(sys.argv[1:] if argv is None else argv)
    from ..demo import build_demo, write_space_app

    if args.write_space is not None:
        repo_id = args.repo_id or args.model
        if repo_id.count("/") != 1:
            raise RecipeError(f"demo --write_space: give --repo_id owner/name (the pushed model), not {repo_id!r}")
        for path in write_space_app(args.write_space, repo_id):
            print(f"wrote {path}", flush=True)
        return
    from .export import load_predictor

    predictor = load_predictor(args.model, args.onnx)
    try:
        demo = build_demo(predictor, top_k=args.top_k, title=args.model.rstrip("/").split("/")[-1])
    except ImportError as err:
        raise RecipeError(f"demo: {err} (pip install 'hf-mtl[demo]')") from err
    demo.launch(server_name=args.host, server_port=args.port, share=args.share, show_error=True)
