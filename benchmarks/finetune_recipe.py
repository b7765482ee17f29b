"""Issue 14, item 2: which fine-tuning settings keep what the heads-only stage (on pretrained features) gave.

Fashion-MNIST 2x2 grids (30% of training labels missing), ImageNet EfficientNet-Lite0 at 56px, macro ROC-AUC of the
``present`` task on fully labelled test grids. Every variant starts from the same heads-only model (heads trained 10
epochs at lr 3e-3 on cached features, as the recipes' stage 1) and fine-tunes with ``MultiTaskTrainer``:

* ``old``: the recipes' former stage 2: lr 1e-3 for backbone and heads, BatchNorm statistics updated, 1 epoch;
* ``bn_frozen``: ``old`` with ``norm_statistics="frozen"`` (pretrained BatchNorm statistics, affine weights train);
* ``layer_decay``: ``old`` with ``layer_decay=0.5`` (each block below the heads at half the LR of the one above);
* ``both``: ``bn_frozen`` + ``layer_decay``;
* ``both_3ep``: ``both`` for 3 epochs (more steps at the lower backbone LR).

Each for ``top_n`` (top 2 blocks) and ``full``. The heads-only score is the reference every variant must keep.
"""

from __future__ import annotations

import sys
from pathlib import Path

if __package__ in (None, ""):
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from benchmarks.common import base_parser, mean_std, setup_logging, write_report  # noqa: E402
from benchmarks.demo_setup import (  # noqa: E402
    DEMO_BACKBONE,
    demo_model,
    fit_and_evaluate,
    frozen_features,
    grid_datasets,
    pixel_tensor,
    processor_for,
    rows,
)

NAME = "finetune_recipe"
QUESTION = "Which fine-tuning settings (BatchNorm statistics, layer decay, epochs) keep the heads-only stage's score"
METRIC = "eval_present_macro_roc_auc"
VARIANTS = {
    "old": {"epochs": 1.0, "norm_statistics": "train"},
    "bn_frozen": {"epochs": 1.0, "norm_statistics": "frozen"},
    "layer_decay": {"epochs": 1.0, "norm_statistics": "train", "layer_decay": 0.5},
    "both": {"epochs": 1.0, "norm_statistics": "frozen", "layer_decay": 0.5},
    "both_3ep": {"epochs": 3.0, "norm_statistics": "frozen", "layer_decay": 0.5},
}


def main(argv: list[str] | None = None) -> dict:
    parser = base_parser(__doc__.splitlines()[0])
    parser.add_argument("--backbone", default=DEMO_BACKBONE)
    parser.add_argument("--image-size", type=int, default=56)
    parser.add_argument("--sizes", type=int, nargs="+", default=None)
    parser.add_argument("--num-eval", type=int, default=None)
    parser.add_argument("--seeds", type=int, default=None)
    parser.add_argument("--policies", nargs="+", default=["top_n", "full"])
    parser.add_argument("--variants", nargs="+", default=list(VARIANTS))
    parser.add_argument("--top-n", type=int, default=2)
    parser.add_argument("--batch-size", type=int, default=32)
    args = parser.parse_args(argv)
    args.sizes = args.sizes or ([64] if args.quick else [1000])
    args.num_eval = args.num_eval or (64 if args.quick else 300)
    args.seeds = args.seeds or (1 if args.quick else 2)
    setup_logging()

    curves = ["heads"] + [f"{p}/{v}" for p in args.policies for v in args.variants]
    scores: dict[str, dict[str, list[float]]] = {c: {str(n): [] for n in args.sizes} for c in curves}

    def report(seeds_done: int) -> dict:
        stats = {c: {n: mean_std(v) for n, v in by.items()} for c, by in scores.items()}
        minus_heads = {c: {n: stats[c][n]["mean"] - stats["heads"][n]["mean"] for n in stats[c]} for c in curves}
        return write_report(NAME, QUESTION, args, {"seeds_completed": seeds_done, "metric": METRIC,
                                                   "macro_roc_auc": stats, "minus_heads_only": minus_heads},
                            argv=argv)

    for seed in range(args.seed, args.seed + args.seeds):
        pretrained = demo_model(backbone=args.backbone, seed=seed)
        processor = processor_for(pretrained, args.image_size)
        train_all, test = grid_datasets(max(args.sizes), args.num_eval, seed=seed)
        pixels_all, test_pixels = pixel_tensor(train_all, processor), pixel_tensor(test, processor)
        features_all = frozen_features(pretrained, pixels_all)
        test_labels = {"present": test["present"]}
        eval_pixels = rows("pixel_values", test_pixels, test_labels)
        eval_features = rows("features", frozen_features(pretrained, test_pixels), test_labels)
        for n in args.sizes:
            labels = {"present": train_all["present"][:n]}
            heads_model = demo_model(backbone=args.backbone, seed=seed)
            heads = fit_and_evaluate(heads_model, rows("features", features_all[:n], labels), eval_features,
                                     freeze_policy="heads", epochs=10, min_steps=20, learning_rate=3e-3,
                                     batch_size=args.batch_size, seed=seed)
            scores["heads"][str(n)].append(heads["metrics"][METRIC])
            warm = {k: v.clone() for k, v in heads_model.state_dict().items()}
            for policy in args.policies:
                for variant in args.variants:
                    settings = dict(VARIANTS[variant])
                    model = demo_model(backbone=args.backbone, seed=seed)
                    model.load_state_dict(warm)
                    run = fit_and_evaluate(model, rows("pixel_values", pixels_all[:n], labels), eval_pixels,
                                           freeze_policy=policy, freeze_top_n=args.top_n, min_steps=20,
                                           learning_rate=1e-3, batch_size=args.batch_size, seed=seed, **settings)
                    scores[f"{policy}/{variant}"][str(n)].append(run["metrics"][METRIC])
                    print(f"seed {seed} n {n} {policy}/{variant}: {run['metrics'][METRIC]:.4f} "
                          f"(heads {heads['metrics'][METRIC]:.4f}, {run['train_seconds']:.0f}s)", flush=True)
        report(seed - args.seed + 1)
    return report(args.seeds)


if __name__ == "__main__":
    main()
