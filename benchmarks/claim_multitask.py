"""Question 5c: one multi-task model vs separate single-task models on the same training budget.

Three tasks on the same Fashion-MNIST 2x2 grids (30% of each task's labels missing): ``present`` (multilabel, which
classes appear), ``top_left`` (multiclass, the class of the top-left item) and ``num_classes`` (regression, how many
distinct classes). Every model follows the default demo's two stages on ImageNet EfficientNet-Lite0: its heads train
10 epochs on cached backbone features (cheap, not counted in the budget), then everything fine-tunes
(``freeze_policy="full"``) for a number of optimizer steps, the budget:

* ``multi_task``: one model with three heads, ``B`` optimizer steps;
* ``separate_same_budget``: three single-task models, ``B / 3`` steps each (the same total compute);
* ``separate_3x_budget`` (with ``--with-3x-budget``): three single-task models, ``B`` steps each (three times the
  compute, for reference).

Scores on fully labelled test grids (``hf_mtl.metrics``): macro ROC-AUC, accuracy, MAE; 3 seeds.
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
    PRESENT_TASK,
    demo_model,
    fit_and_evaluate,
    frozen_features,
    grid_datasets,
    pixel_tensor,
    processor_for,
    rows,
)
from hf_mtl.scripts.demo_data import FASHION_MNIST_CLASSES  # noqa: E402

NAME = "claim_multitask"
QUESTION = "One multi-task model vs separate single-task models on the same budget"
TASKS = [
    PRESENT_TASK,
    {"name": "top_left", "type": "multiclass", "labels": list(FASHION_MNIST_CLASSES)},
    {"name": "num_classes", "type": "regression"},
]
METRICS = {"present": ("eval_present_macro_roc_auc", "macro ROC-AUC", "higher"),
           "top_left": ("eval_top_left_accuracy", "accuracy", "higher"),
           "num_classes": ("eval_num_classes_mae", "MAE", "lower")}
ALL_SETUPS = ("multi_task", "separate_same_budget", "separate_3x_budget")


def main(argv: list[str] | None = None) -> dict:
    parser = base_parser(__doc__.splitlines()[0])
    parser.add_argument("--backbone", default=DEMO_BACKBONE)
    parser.add_argument("--image-size", type=int, default=56, help="56: the grids' own size.")
    parser.add_argument("--num-train", type=int, default=None)
    parser.add_argument("--num-eval", type=int, default=None)
    parser.add_argument("--seeds", type=int, default=None)
    parser.add_argument("--epochs", type=float, default=2.0, help="Epochs of the multi-task model: the budget B.")
    parser.add_argument("--missing-rate", type=float, default=0.3)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--with-3x-budget", action="store_true", help="Also train separate models with B steps each.")
    parser.add_argument("--heads-epochs", type=float, default=10.0,
                        help="Heads-only epochs on cached features before fine-tuning (0: fine-tune fresh heads).")
    parser.add_argument("--tag", default="", help="Suffix of the output name (claim_multitask_<tag>.json).")
    args = parser.parse_args(argv)
    args.num_train = args.num_train or (48 if args.quick else 600)
    args.num_eval = args.num_eval or (32 if args.quick else 300)
    args.seeds = args.seeds or (2 if args.quick else 3)
    setup_logging()

    setups = ALL_SETUPS if args.with_3x_budget else ALL_SETUPS[:2]
    budget = math.ceil(args.epochs * args.num_train / args.batch_size)
    scores = {s: {t["name"]: [] for t in TASKS} for s in setups}
    seconds = {s: [] for s in setups}
    for seed in range(args.seed, args.seed + args.seeds):
        pretrained = demo_model(TASKS, backbone=args.backbone, seed=seed)
        state = {k: v.clone() for k, v in pretrained.state_dict().items() if k.startswith("backbone.")}
        processor = processor_for(pretrained, args.image_size)
        train, test = grid_datasets(args.num_train, args.num_eval, missing_rate=args.missing_rate, seed=seed)
        names = [t["name"] for t in TASKS]
        train_pixels, test_pixels = pixel_tensor(train, processor), pixel_tensor(test, processor)
        train_labels, test_labels = {n: train[n] for n in names}, {n: test[n] for n in names}
        train_rows, eval_rows = rows("pixel_values", train_pixels, train_labels), rows("pixel_values", test_pixels,
                                                                                         test_labels)
        feature_rows = rows("features", frozen_features(pretrained, train_pixels), train_labels)
        eval_feature_rows = rows("features", frozen_features(pretrained, test_pixels), test_labels)

        def run(tasks, steps, seed=seed, state=state, train_rows=train_rows, eval_rows=eval_rows,
                feature_rows=feature_rows, eval_feature_rows=eval_feature_rows):
            """The demo's two stages: heads-only on cached features, then everything fine-tunes for `steps`."""
            model = demo_model(tasks, backbone=args.backbone, pretrained=False, seed=seed)
            model.load_state_dict(state, strict=False)  # ImageNet backbone, fresh seeded heads
            if args.heads_epochs:
                fit_and_evaluate(model, feature_rows, eval_feature_rows, freeze_policy="heads",
                                 epochs=args.heads_epochs, min_steps=0, learning_rate=3e-3,
                                 batch_size=args.batch_size, seed=seed)
            return fit_and_evaluate(model, train_rows, eval_rows, freeze_policy="full", epochs=0, min_steps=steps,
                                    learning_rate=1e-3, batch_size=args.batch_size, seed=seed)

        multi = run(TASKS, budget)
        seconds["multi_task"].append(multi["train_seconds"])
        for task in TASKS:
            scores["multi_task"][task["name"]].append(multi["metrics"][METRICS[task["name"]][0]])
        for setup, steps in (("separate_same_budget", max(1, budget // len(TASKS))), ("separate_3x_budget", budget)):
            if setup not in setups:
                continue
            total = 0.0
            for task in TASKS:
                single = run([task], steps)
                total += single["train_seconds"]
                scores[setup][task["name"]].append(single["metrics"][METRICS[task["name"]][0]])
            seconds[setup].append(total)

    results = {
        "metrics": {t: {"key": k, "name": n, "better": b} for t, (k, n, b) in METRICS.items()},
        "scores": {s: {t: mean_std(v) for t, v in by_task.items()} for s, by_task in scores.items()},
        "train_seconds": {s: mean_std(v) for s, v in seconds.items()},
        "optimizer_steps": {"multi_task": budget, "separate_same_budget": max(1, budget // len(TASKS)) * len(TASKS),
                            "separate_3x_budget": budget * len(TASKS) if args.with_3x_budget else None},
    }

    def plot(path: Path) -> None:
        import matplotlib.pyplot as plt

        fig, axes = plt.subplots(1, len(TASKS), figsize=(12, 3.8))
        for ax, task in zip(axes, TASKS):
            key, label, better = METRICS[task["name"]]
            s = [results["scores"][setup][task["name"]] for setup in setups]
            ax.bar(range(len(setups)), [x["mean"] for x in s], yerr=[x["std"] for x in s], capsize=5,
                   color=["#5b8ff9", "#e8684a", "#bbbbbb"][: len(setups)])
            ax.set_xticks(range(len(setups)),
                          ["1 multi-task", "3 single\n(same budget)", "3 single\n(3x budget)"][: len(setups)], fontsize=8)
            ax.set_title(f"{task['name']}: {label} ({better} is better)", fontsize=9)
            lo = min(x["mean"] - x["std"] for x in s)
            hi = max(x["mean"] + x["std"] for x in s)
            ax.set_ylim(max(0.0, lo - 0.3 * (hi - lo)), hi + 0.15 * (hi - lo))
        fig.suptitle(f"EfficientNet-Lite0 (ImageNet) fine-tuned, {args.num_train} grids {args.image_size}px, budget "
                     f"{budget} steps, mean ± sd over {args.seeds} seeds", fontsize=9)
        fig.tight_layout()
        fig.savefig(path, dpi=120)
        plt.close(fig)

    name = f"{NAME}_{args.tag}" if args.tag else NAME
    return write_report(name, QUESTION, args, results, [], plot, argv=argv, script=NAME)


if __name__ == "__main__":
    main()
