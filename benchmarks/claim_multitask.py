"""Question 5c: one multi-task model vs separate single-task models on the same training budget.

Three tasks on the same Fashion-MNIST 2x2 grids (30% of each task's labels missing): ``present`` (multilabel, which
classes appear), ``top_left`` (multiclass, the class of the top-left item) and ``num_classes`` (regression, how many
distinct classes; standardised targets, the library default). Every model follows the mixed-task recipe's stages
(recipes/fashion_grid_mixed_tasks.yaml) on ImageNet EfficientNet-Lite0: its heads train 10 epochs on cached backbone
features (cheap, not counted in the budget), then the top ``--top-n`` blocks fine-tune with the heads
(``--freeze-policy``, lr ``--learning-rate``, pretrained BatchNorm statistics kept with the default layer decay, 10%
warm-up) for a number of optimizer steps, the budget:

* ``multi_task``: one model with three heads, ``B`` optimizer steps;
* ``separate_same_budget``: three single-task models, ``B / 3`` steps each (the same total compute);
* ``separate_3x_budget`` (with ``--with-3x-budget``): three single-task models, ``B`` steps each (three times the
  compute, for reference);
* ``multi_task_<balancing>`` (``--balancing``): the multi-task model with another ``task_balancing``.

The same selection rule for every model, as the recipe applies it: ``--validation-split`` of the training grids is
held out, and each model ends as its fine-tuned weights only when they are at least as good as its heads-only stage on
the held-out grids on every task's main metric (``final_model: best_stage``, ``compare_stages``), else as its
heads-only stage. Scores on fully labelled test grids (``hf_mtl.metrics``): macro ROC-AUC, accuracy, MAE; the JSON
also holds every model's heads-only and unselected fine-tuned test scores and which stage it kept.

Issue 19's check of ``hf-mtl advise``: each seed also measures the task affinity advise reports
(``hf_mtl.advise.feature_task_affinity`` on the training grids' frozen features, as advise runs it); the grouping
suggested from the matrix averaged over seeds is compared, task by task, with whether the multi-task model measured at
least as good as the separate model on the same budget (a task grouped with others predicts "joint helps", a task
alone predicts "separate is better").
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
STAGES = ("selected", "heads_only", "fine_tuned")


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
    parser.add_argument("--freeze-policy", default="top_n", help="Fine-tuning stage's policy (the recipe's top_n).")
    parser.add_argument("--top-n", type=int, default=3)
    parser.add_argument("--learning-rate", type=float, default=3e-4, help="Fine-tuning LR (the recipe's).")
    parser.add_argument("--validation-split", type=float, default=0.1, help="Held out for the stage selection.")
    parser.add_argument("--balancing", nargs="*", default=[], help="Extra multi-task setups with this task_balancing.")
    args = parser.parse_args(argv)
    args.num_train = args.num_train or (48 if args.quick else 1000)
    args.num_eval = args.num_eval or (32 if args.quick else 300)
    args.seeds = args.seeds or (2 if args.quick else 3)
    setup_logging()

    setups = list(ALL_SETUPS if args.with_3x_budget else ALL_SETUPS[:2]) + [f"multi_task_{b}" for b in args.balancing]
    held = max(1, round(args.num_train * args.validation_split))
    budget = math.ceil(args.epochs * (args.num_train - held) / args.batch_size)
    scores = {stage: {s: {t["name"]: [] for t in TASKS} for s in setups} for stage in STAGES}
    kept = {s: [] for s in setups}
    seconds = {s: [] for s in setups}
    affinities: list[dict] = []

    def report(seeds_done: int) -> dict:
        """The JSON and plot of the seeds done so far (a long run leaves partial results)."""
        results = {
            "metrics": {t: {"key": k, "name": n, "better": b} for t, (k, n, b) in METRICS.items()},
            "scores": {s: {t: mean_std(v) for t, v in by_task.items()} for s, by_task in scores["selected"].items()},
            "by_stage": {stage: {s: {t: mean_std(v) for t, v in by_task.items()} for s, by_task in per.items()}
                         for stage, per in scores.items()},
            "kept": kept,
            "validation_grids": held,
            "train_seconds": {s: mean_std(v) for s, v in seconds.items()},
            "seeds_completed": seeds_done,
            "optimizer_steps": {**{setup: budget for setup in setups if setup.startswith("multi_task")},
                                "separate_same_budget": max(1, budget // len(TASKS)) * len(TASKS),
                                "separate_3x_budget": budget * len(TASKS) if args.with_3x_budget else None},
            "affinity": affinity_agreement(affinities, scores["selected"]) if affinities else None,
        }

        def plot(path: Path) -> None:
            import matplotlib.pyplot as plt

            fig, axes = plt.subplots(1, len(TASKS), figsize=(12, 3.8))
            for ax, task in zip(axes, TASKS):
                key, label, better = METRICS[task["name"]]
                s = [results["scores"][setup][task["name"]] for setup in setups]
                ax.bar(range(len(setups)), [x["mean"] for x in s], yerr=[x["std"] for x in s], capsize=5,
                       color=["#5b8ff9", "#e8684a", "#bbbbbb", "#61ddaa", "#f6bd16"][: len(setups)])
                names = {"multi_task": "1 multi-task", "separate_same_budget": "3 single\n(same budget)",
                         "separate_3x_budget": "3 single\n(3x budget)"}
                ax.set_xticks(range(len(setups)), [names.get(x, x.replace("multi_task_", "1 multi-task\n")) for x in setups],
                              fontsize=8)
                ax.set_title(f"{task['name']}: {label} ({better} is better)", fontsize=9)
                lo = min(x["mean"] - x["std"] for x in s)
                hi = max(x["mean"] + x["std"] for x in s)
                ax.set_ylim(max(0.0, lo - 0.3 * (hi - lo)), hi + 0.15 * (hi - lo))
            fig.suptitle(f"EfficientNet-Lite0 (ImageNet), heads-only then {args.freeze_policy} fine-tuning, best stage kept, "
                         f"{args.num_train} grids {args.image_size}px, budget {budget} steps, {seeds_done} seeds",
                         fontsize=9)
            fig.tight_layout()
            fig.savefig(path, dpi=120)
            plt.close(fig)

        name = f"{NAME}_{args.tag}" if args.tag else NAME
        return write_report(name, QUESTION, args, results, [], plot, argv=argv, script=NAME)

    for seed in range(args.seed, args.seed + args.seeds):
        pretrained = demo_model(TASKS, backbone=args.backbone, seed=seed)
        state = {k: v.clone() for k, v in pretrained.state_dict().items() if k.startswith("backbone.")}
        processor = processor_for(pretrained, args.image_size)
        train, test = grid_datasets(args.num_train, args.num_eval, missing_rate=args.missing_rate, seed=seed)
        names = [t["name"] for t in TASKS]
        train_pixels, test_pixels = pixel_tensor(train, processor), pixel_tensor(test, processor)
        fit, val = slice(0, args.num_train - held), slice(args.num_train - held, args.num_train)
        train_labels, test_labels = {n: train[n] for n in names}, {n: test[n] for n in names}
        fit_labels = {n: v[fit] for n, v in train_labels.items()}
        val_labels = {n: v[val] for n, v in train_labels.items()}
        train_features = frozen_features(pretrained, train_pixels)
        affinities.append(measure_affinity(train_features[fit], fit_labels, seed))
        data = {
            "fit": rows("pixel_values", train_pixels[fit], fit_labels),
            "val": rows("pixel_values", train_pixels[val], val_labels),
            "test": rows("pixel_values", test_pixels, test_labels),
            "fit_features": rows("features", train_features[fit], fit_labels),
            "val_features": rows("features", train_features[val], val_labels),
        }

        def run(tasks, steps, seed=seed, state=state, data=data, **settings):
            """The recipe's two stages, then its ``best_stage`` selection on the held-out grids; returns the test
            metrics of the heads-only stage, of the fine-tuned model and of the kept one."""
            from hf_mtl.scripts.train import compare_stages

            model = demo_model(tasks, backbone=args.backbone, pretrained=False, seed=seed)
            model.load_state_dict(state, strict=False)  # ImageNet backbone, fresh seeded heads
            heads_val = fit_and_evaluate(model, data["fit_features"], data["val_features"], freeze_policy="heads",
                                         epochs=args.heads_epochs, min_steps=0, learning_rate=3e-3,
                                         batch_size=args.batch_size, seed=seed, **settings)
            heads_test = evaluate(model, data["test"])
            tuned = fit_and_evaluate(model, data["fit"], data["val"], freeze_policy=args.freeze_policy,
                                     freeze_top_n=args.top_n, epochs=0, min_steps=steps,
                                     learning_rate=args.learning_rate, batch_size=args.batch_size, seed=seed, **settings)
            tuned_test = evaluate(model, data["test"])
            keep, _, _ = compare_stages(heads_val["metrics"], tuned["metrics"], model.task_specs)
            return {"heads_only": heads_test, "fine_tuned": tuned_test,
                    "selected": tuned_test if keep else heads_test, "kept": "fine-tuned" if keep else "heads-only",
                    "train_seconds": tuned["train_seconds"]}

        def record(setup: str, task: str, result: dict) -> None:
            for stage in STAGES:
                scores[stage][setup][task].append(result[stage][METRICS[task][0]])

        for setup in setups:
            if not setup.startswith("multi_task"):
                continue
            balancing = setup[len("multi_task_"):] or None
            multi = run(TASKS, budget, **({"task_balancing": balancing} if balancing else {}))
            seconds[setup].append(multi["train_seconds"])
            kept[setup].append(multi["kept"])
            for task in TASKS:
                record(setup, task["name"], multi)
        for setup, steps in (("separate_same_budget", max(1, budget // len(TASKS))), ("separate_3x_budget", budget)):
            if setup not in setups:
                continue
            total = 0.0
            for task in TASKS:
                single = run([task], steps)
                total += single["train_seconds"]
                kept[setup].append(f"{task['name']}: {single['kept']}")
                record(setup, task["name"], single)
            seconds[setup].append(total)
        print(f"seed {seed}: " + "; ".join(f"{setup} " + ", ".join(f"{t} {scores['selected'][setup][t][-1]:.4f}"
                                                                   for t in scores["selected"][setup])
                                            for setup in setups), flush=True)

        report(seed - args.seed + 1)
    return report(args.seeds)


def measure_affinity(features, labels: dict[str, list], seed: int) -> dict:
    """The task affinity ``hf-mtl advise`` reports, on these training grids' frozen features."""
    from hf_mtl.advise import feature_task_affinity
    from hf_mtl.data import encode_labels
    from hf_mtl.tasks import TaskSpec

    specs = [TaskSpec.from_dict(t) for t in TASKS]
    names = [s.name for s in specs]
    encoded = encode_labels(specs, [dict(zip(names, values)) for values in zip(*(labels[n] for n in names))])
    return {"seed": seed, **feature_task_affinity(features, encoded, specs, seed=seed).to_dict()}


def affinity_agreement(affinities: list[dict], selected: dict) -> dict:
    """The grouping suggested from the seeds' mean affinity matrix vs the measured multi-task vs separate result."""
    import numpy as np

    from hf_mtl.advise import suggest_grouping

    tasks = affinities[0]["tasks"]
    matrix = np.mean([a["matrix"] for a in affinities], axis=0)
    groups, _ = suggest_grouping(matrix, tasks)
    per_task = {}
    for task in tasks:
        sign = 1 if METRICS[task][2] == "higher" else -1
        joint = mean_std(selected["multi_task"][task])["mean"]
        alone = mean_std(selected["separate_same_budget"][task])["mean"]
        predicted = any(task in g and len(g) > 1 for g in groups)
        measured = sign * (joint - alone) >= 0
        per_task[task] = {"predicted_joint_helps": predicted, "measured_joint_at_least_as_good": measured,
                          "agree": predicted == measured}
    return {"mean_matrix": matrix.round(6).tolist(), "tasks": tasks, "suggested_groups": groups,
            "per_seed_groups": [a["groups"] for a in affinities], "per_seed": affinities, "per_task": per_task,
            "agreeing_tasks": sum(v["agree"] for v in per_task.values())}


def evaluate(model, eval_rows) -> dict:
    """The model's test metrics as it is now (no training)."""
    return fit_and_evaluate(model, [], eval_rows, freeze_policy="heads")["metrics"]


if __name__ == "__main__":
    main()
