"""Push a saved model folder to the Hub with the card the training run wrote: rendered again from the inputs it saved
beside the model (``card_inputs.json``: recipe per stage, evaluated data, metrics, per-label table) with its plots,
plus every ``hf-mtl eval`` result in the folder (``eval_<split>_results.json`` and its plots). A folder from an older
version without ``card_inputs.json`` gets a card from ``eval_results.json`` and ``per_label_metrics.json``.

    hf-mtl push outputs/fashion_grid_efficientnet user/fashion-grid-presence [--private] [--revision dev]

The token comes from huggingface_hub's own login / ``HF_TOKEN``: it is never an argument that could be logged.
"""

from __future__ import annotations

import argparse
import os
import sys
from typing import Any

from ..hub import PushToHubError
from ..modelcard import saved_card_kwargs
from .models import load_saved_model


def make_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="hf-mtl push", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("model", help="saved model folder")
    parser.add_argument("repo_id", help="owner/name on the Hub")
    parser.add_argument("--private", action="store_true")
    parser.add_argument("--revision", default=None)
    parser.add_argument("--commit_message", default=None)
    parser.add_argument("--space_app", default=None, metavar="FOLDER",
                        help="also write a Gradio Space app.py (and requirements.txt) serving the pushed model there")
    return parser


def card_from_run(folder: str) -> dict[str, Any]:
    """The card keyword arguments of the card the run wrote in ``folder`` (``hf_mtl.modelcard.saved_card_kwargs``),
    titled after the repo rather than the folder it was trained in (unless the run named it otherwise)."""
    card = saved_card_kwargs(folder)
    if card.get("model_name") == os.path.basename(os.path.abspath(folder)):
        del card["model_name"]
    return card


def main(argv: list[str] | None = None) -> Any:
    """Returns huggingface_hub's ``CommitInfo``; a failed push is a [`PushToHubError`] that says how to retry."""
    args = make_parser().parse_args(sys.argv[1:] if argv is None else argv)
    model = load_saved_model(args.model)
    try:
        info = model.push_to_hub(args.repo_id, private=args.private, revision=args.revision,
                                 commit_message=args.commit_message, **card_from_run(args.model))
    except PushToHubError as err:
        err.args = (f"{err}\nThe model folder {args.model} is unchanged: `hf-mtl push {args.model} {args.repo_id}` "
                    "again.",)
        raise
    print(f"pushed {args.model} to {args.repo_id}: {getattr(info, 'commit_url', info)}", flush=True)
    if args.space_app is not None:
        from ..demo import write_space_app

        for path in write_space_app(args.space_app, args.repo_id):
            print(f"wrote {path}", flush=True)
    return info
