"""Question 5a: with labels missing, does the masked loss beat the usual shortcuts?

Fashion-MNIST 2x2 grids, one presence label per class, a share of training labels hidden (0/30/60/90%). Three ways to
train on them, same model, same number of optimizer steps:

* ``masked``: hf_mtl's masked loss (missing labels contribute nothing);
* ``missing_as_negative``: every missing label treated as 0 ("not present"), the common shortcut;
* ``drop_partial``: only samples with every label known are kept (none are left at high missing rates: then the
  heads stay untrained).

Heads-only on the frozen ImageNet EfficientNet-Lite0 (features computed once with ``hf_mtl.transfer.compute_features``,
what the feature cache stores), scored by macro ROC-AUC on fully labelled test grids (``hf_mtl.metrics``), 3 seeds.
"""

from __future__ import annotations

import math
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

NAME = "claim_missing_labels"
QUESTION = "Masked loss vs missing-as-negative vs dropping partly labelled samples at 0/30/60/90% missing labels"
STRATEGIES = ("masked", "missing_as_negative", "drop_partial")
METRIC = "eval_present_macro_roc_auc"


def apply_strategy(strategy: str, present: list[list]) -> tuple[list[int], list[list]]:
    """(kept row indices, their labels) under a way of handling missing labels."""
    if strategy == "masked":
        return list(range(len(present))), present
    if strategy == "missing_as_negative":
        return list(range(len(present))), [[0 if v is None else v for v in row] for row in present]
    kept = [i for i, row in enumerate(present) if all(v is not None for v in row)]
    return kept, [present[i] for i in kept]


def main(argv: list[str] | None = None) -> dict:
    parser = base_parser(__doc__.splitlines()[0])
    parser.add_argument("--backbone", default=DEMO_BACKBONE)
    parser.add_argument("--image-size", type=int, default=56, help="56: the grids' own size.")
    parser.add_argument("--num-train", type=int, default=None)
    parser.add_argument("--num-eval", type=int, default=None)
    parser.add_argument("--rates", type=float, nargs="+", default=[0.0, 0.3, 0.6, 0.9])
    parser.add_argument("--seeds", type=int, default=None, help="Number of seeds (error bars).")
    parser.add_argument("--epochs", type=float, default=None, help="Epochs over the full training set (all "
                        "strategies get this many optimizer steps).")
    parser.add_argument("--batch-size", type=int, default=32)
    args = parser.parse_args(argv)
    args.num_train = args.num_train or (64 if args.quick else 2000)
    args.num_eval = args.num_eval or (64 if args.quick else 300)
    args.seeds = args.seeds or (2 if args.quick else 3)
    args.epochs = args.epochs or (2 if args.quick else 5)
    setup_logging()

    steps = math.ceil(args.epochs * args.num_train / args.batch_size)
    scores: dict[str, dict[str, list[float]]] = {s: {str(r): [] for r in args.rates} for s in STRATEGIES}
    kept_rows: dict[str, dict[str, list[int]]] = {s: {str(r): [] for r in args.rates} for s in STRATEGIES}
    for seed in range(args.seed, args.seed + args.seeds):
        backbone = demo_model(backbone=args.backbone, seed=seed)
        processor = processor_for(backbone, args.image_size)
        train, test = grid_datasets(args.num_train, args.num_eval, missing_rate=0.0, seed=seed)
        train_x = frozen_features(backbone, pixel_tensor(train, processor))
        test_rows = rows("features", frozen_features(backbone, pixel_tensor(test, processor)),
                         {"present": test["present"]})
        for rate in args.rates:
            # Same images for every rate (the grid items depend on the seed only); a share `rate` of labels hidden.
            present = grid_datasets(args.num_train, 1, missing_rate=rate, seed=seed)[0]["present"]
            for strategy in STRATEGIES:
                kept, labels = apply_strategy(strategy, present)
                model = demo_model(backbone=args.backbone, pretrained=False, seed=seed)
                run = fit_and_evaluate(
                    model, rows("features", train_x[kept], {"present": labels}), test_rows, freeze_policy="heads",
                    epochs=0, min_steps=steps if kept else 0, learning_rate=3e-3, batch_size=args.batch_size,
                    seed=seed,
                )
                scores[strategy][str(rate)].append(run["metrics"][METRIC])
                kept_rows[strategy][str(rate)].append(len(kept))
    results = {
        "metric": METRIC,
        "macro_roc_auc": {s: {r: mean_std(v) for r, v in by_rate.items()} for s, by_rate in scores.items()},
        "training_rows_kept": kept_rows,
        "optimizer_steps": steps,
    }

    def plot(path: Path) -> None:
        import matplotlib.pyplot as plt

        fig, ax = plt.subplots(figsize=(6, 4))
        for strategy, color in zip(STRATEGIES, ("#5b8ff9", "#e8684a", "#888888")):
            stats = [results["macro_roc_auc"][strategy][str(r)] for r in args.rates]
            ax.errorbar([100 * r for r in args.rates], [s["mean"] for s in stats], yerr=[s["std"] for s in stats],
                        marker="o", capsize=4, label=strategy, color=color)
        ax.set_xlabel("% of training labels missing")
        ax.set_ylabel("macro ROC-AUC on test grids (mean ± sd)")
        ax.set_title(f"heads-only on frozen ImageNet EfficientNet-Lite0, {args.num_train} grids, {args.seeds} seeds",
                     fontsize=9)
        ax.legend()
        fig.tight_layout()
        fig.savefig(path, dpi=120)
        plt.close(fig)

    return write_report(NAME, QUESTION, args, results, [], plot, argv=argv)


if __name__ == "__main__":
    main()
