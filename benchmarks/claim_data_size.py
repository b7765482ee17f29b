"""Questions 5b and 5d: pretrained transfer vs training from scratch vs heads-only as the training set grows, and the
``auto`` freeze policy vs the best fixed policy at each size.

Fashion-MNIST 2x2 grids (30% of training labels missing), macro ROC-AUC on fully labelled test grids, 3 seeds. Each
policy is a recipe, as a user would run it with ``MultiTaskTrainer``:

* ``heads``: ImageNet EfficientNet-Lite0 frozen, heads trained 10 epochs (lr 3e-3) on features computed once;
* ``top_n``: then the top ``--top-n`` backbone blocks and the heads train (lr 1e-3), from the heads-only model;
* ``full``: then everything trains (lr 1e-3), from the heads-only model (the default demo's two stages);
* ``scratch``: everything trains from a random initialisation (lr 1e-3, the fine-tuning budget);
* ``auto``: ``freeze_policy="auto"``; it picks heads / top_n / full from the data and backbone size, and its score
  is the score of that recipe (the same run when it picks exactly a fixed policy, otherwise a run of its own).

Fine-tuning recipes train ``--epochs`` epochs but at least ``--min-steps`` steps (tiny sets get enough updates).
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
from hf_mtl.transfer import backbone_blocks, choose_freeze_policy  # noqa: E402

NAME = "claim_data_size"
QUESTION = "Pretrained transfer vs scratch vs heads-only as training data grows; auto freeze policy vs best fixed"
FIXED = ("heads", "top_n", "full")
CURVES = ("heads", "top_n", "full", "scratch", "auto")
METRIC = "eval_present_macro_roc_auc"


def main(argv: list[str] | None = None) -> dict:
    parser = base_parser(__doc__.splitlines()[0])
    parser.add_argument("--backbone", default=DEMO_BACKBONE)
    parser.add_argument("--image-size", type=int, default=56, help="56: the grids' own size.")
    parser.add_argument("--sizes", type=int, nargs="+", default=None, help="Training-set sizes (grids).")
    parser.add_argument("--num-eval", type=int, default=None)
    parser.add_argument("--seeds", type=int, default=None)
    parser.add_argument("--epochs", type=float, default=1.0, help="Epochs of the fine-tuning recipes.")
    parser.add_argument("--min-steps", type=int, default=20)
    parser.add_argument("--heads-epochs", type=float, default=10.0)
    parser.add_argument("--top-n", type=int, default=2, help="Backbone blocks the fixed top_n recipe trains.")
    parser.add_argument("--missing-rate", type=float, default=0.3)
    parser.add_argument("--batch-size", type=int, default=32)
    args = parser.parse_args(argv)
    args.sizes = args.sizes or ([16, 32] if args.quick else [100, 300, 1000, 3000])
    args.num_eval = args.num_eval or (32 if args.quick else 300)
    args.seeds = args.seeds or (2 if args.quick else 3)
    if args.quick:
        args.min_steps = min(args.min_steps, 2)
    setup_logging()

    scores = {c: {str(n): [] for n in args.sizes} for c in CURVES}
    auto_choices: dict[str, list] = {str(n): [] for n in args.sizes}
    train_seconds = {c: {str(n): [] for n in args.sizes} for c in CURVES}
    def report(seeds_done: int) -> dict:
        """Write the JSON and plot of the seeds done so far (a long run leaves partial results)."""
        stats = {c: {n: mean_std(v) for n, v in by_size.items()} for c, by_size in scores.items()}
        best_fixed = {}
        for n in map(str, args.sizes):
            best = max(FIXED, key=lambda c: stats[c][n]["mean"])
            best_fixed[n] = {"policy": best, "mean": stats[best][n]["mean"], "std": stats[best][n]["std"],
                             "auto_minus_best": stats["auto"][n]["mean"] - stats[best][n]["mean"]}
        results = {
            "seeds_completed": seeds_done,
            "metric": METRIC,
            "macro_roc_auc": stats,
            "best_fixed_policy": best_fixed,
            "auto_choices": auto_choices,
            "train_seconds": {c: {n: mean_std(v) for n, v in by_size.items()} for c, by_size in train_seconds.items()},
        }

        def plot(path: Path) -> None:
            import matplotlib.pyplot as plt

            colors = {"heads": "#5b8ff9", "top_n": "#61ddaa", "full": "#e8684a", "scratch": "#888888", "auto": "#000000"}
            fig, axes = plt.subplots(1, 2, figsize=(11, 4), sharey=True)
            for ax, curves in zip(axes, (("heads", "full", "scratch", "top_n"), ("auto", "heads", "top_n", "full"))):
                for c in curves:
                    s = [stats[c][str(n)] for n in args.sizes]
                    ax.errorbar(args.sizes, [x["mean"] for x in s], yerr=[x["std"] for x in s], marker="o", capsize=3,
                                label=c, color=colors[c], lw=2.5 if c in ("auto", "full") else 1.2)
                ax.set_xscale("log")
                ax.set_xlabel("training grids")
                ax.legend(fontsize=8)
            for n in args.sizes:
                picks = {c["policy"] + (f"({c['trainable_blocks']})" if c["policy"] == "top_n" else "")
                         for c in auto_choices[str(n)]}
                axes[1].annotate("/".join(sorted(picks)), (n, stats["auto"][str(n)]["mean"]), fontsize=7,
                                 textcoords="offset points", xytext=(0, -14), ha="center")
            axes[0].set_ylabel("macro ROC-AUC on test grids (mean ± sd)")
            axes[0].set_title("ImageNet transfer vs scratch vs heads-only", fontsize=9)
            axes[1].set_title("auto freeze policy (its pick annotated) vs fixed policies", fontsize=9)
            fig.suptitle(f"EfficientNet-Lite0, Fashion-MNIST grids {args.image_size}px, {args.seeds} seeds", fontsize=9)
            fig.tight_layout()
            fig.savefig(path, dpi=120)
            plt.close(fig)

        return write_report(NAME, QUESTION, args, results, [], plot, argv=argv)

    for seed in range(args.seed, args.seed + args.seeds):
        pretrained = demo_model(backbone=args.backbone, seed=seed)
        processor = processor_for(pretrained, args.image_size)
        train_all, test = grid_datasets(max(args.sizes), args.num_eval, missing_rate=args.missing_rate, seed=seed)
        pixels_all, test_pixels = pixel_tensor(train_all, processor), pixel_tensor(test, processor)
        features_all = frozen_features(pretrained, pixels_all)
        test_labels = {"present": test["present"]}
        eval_pixels = rows("pixel_values", test_pixels, test_labels)
        eval_features = rows("features", frozen_features(pretrained, test_pixels), test_labels)
        state = {k: v.clone() for k, v in pretrained.state_dict().items()}
        num_blocks = len(backbone_blocks(pretrained))
        backbone_params = sum(p.numel() for p in pretrained.backbone.parameters())
        num_labels = sum(spec.output_size for spec in pretrained.task_specs)
        for n in args.sizes:
            labels = {"present": train_all["present"][:n]}  # nested subsets: a bigger set holds the smaller ones

            def model(start: dict | None = None, seed=seed):
                """This seed's fresh heads on a random backbone, or the weights ``start`` (ImageNet backbone)."""
                fresh = demo_model(backbone=args.backbone, pretrained=False, seed=seed)
                if start is not None:
                    fresh.load_state_dict(start, strict=False)
                return fresh

            imagenet = {k: v for k, v in state.items() if k.startswith("backbone.")}
            heads_model = model(imagenet)
            heads_run = fit_and_evaluate(heads_model, rows("features", features_all[:n], labels), eval_features,
                                         freeze_policy="heads", epochs=args.heads_epochs, min_steps=args.min_steps,
                                         learning_rate=3e-3, batch_size=args.batch_size, seed=seed)
            # Fine-tuning recipes start where the heads-only stage ended (the demo's two stages).
            warm = {k: v.clone() for k, v in heads_model.state_dict().items()}

            fine_tune = dict(epochs=args.epochs, min_steps=args.min_steps, learning_rate=1e-3,
                             batch_size=args.batch_size, seed=seed)
            runs = {
                "heads": heads_run,
                "top_n": fit_and_evaluate(model(warm), rows("pixel_values", pixels_all[:n], labels), eval_pixels,
                                          freeze_policy="top_n", freeze_top_n=args.top_n, **fine_tune),
                "full": fit_and_evaluate(model(warm), rows("pixel_values", pixels_all[:n], labels), eval_pixels,
                                         freeze_policy="full", **fine_tune),
                "scratch": fit_and_evaluate(model(), rows("pixel_values", pixels_all[:n], labels),
                                            eval_pixels, freeze_policy="full", **fine_tune),
            }
            choice = choose_freeze_policy(n, num_labels, backbone_params, num_blocks)
            same = {"heads": "heads", "full": "full"}.get(choice.policy)
            if choice.policy == "top_n" and choice.trainable_blocks == args.top_n:
                same = "top_n"
            if same is not None:
                runs["auto"] = runs[same]
            else:
                runs["auto"] = fit_and_evaluate(model(warm), rows("pixel_values", pixels_all[:n], labels), eval_pixels,
                                                freeze_policy="auto", **fine_tune)
            auto_choices[str(n)].append({"policy": choice.policy, "trainable_blocks": choice.trainable_blocks,
                                         "num_blocks": choice.num_blocks, "reused_run_of": same})
            for curve, run in runs.items():
                scores[curve][str(n)].append(run["metrics"][METRIC])
                train_seconds[curve][str(n)].append(run["train_seconds"])
        if seed < args.seed + args.seeds - 1:
            report(seed - args.seed + 1)

    return report(args.seeds)


if __name__ == "__main__":
    main()
