"""Questions 5b and 5d: pretrained transfer vs training from scratch vs heads-only as the training set grows, and the
measured ``auto`` freeze policy vs the best fixed policy at each size.

Fashion-MNIST 2x2 grids (30% of training labels missing), macro ROC-AUC on fully labelled test grids. Each policy is
the default recipe's stages (recipes/fashion_grid_efficientnet.yaml), run with ``MultiTaskTrainer``:

* ``heads``: ImageNet EfficientNet-Lite0 frozen, heads trained 10 epochs (lr 3e-3) on features computed once;
* ``top_n``: then the top ``--top-n`` backbone blocks and the heads train (lr 1e-3, ``--epochs``), from the heads-only
  model, with the library's defaults for a pretrained CNN: pretrained BatchNorm statistics kept
  (``norm_statistics="auto"``) and, with them, ``layer_decay`` 0.5 (unset), 10% warm-up;
* ``full``: the same with every block trainable;
* ``scratch``: everything trains from a random initialisation with the same budget (its fresh BatchNorm statistics
  train, so no layer decay by default);
* ``auto``: ``freeze_policy: auto`` as a recipe measures it (``hf_mtl.scripts.train.measure_freeze_policy``): on the
  training grids less a held-out ``--validation-split`` (the recipe's carve-out), a heads-only stage, then
  ``--auto-trial-steps`` of ``top_n`` and ``full`` from it, compared on the held-out grids' ``main_score`` to choose
  how much trains; that policy then trains with the recipe's schedule and ``final_model: best_stage`` weighs it
  against the heads-only stage on the held-out grids. Its score is the test score of the fixed policy it ends with,
  trained on all the grids (the decision is what is measured); its decision tables are in the JSON. Each fixed
  policy is also put through the same rule (trained on the same 90%, kept only when the held-out grids say it is at
  least as good as the heads-only stage): ``same_rule_fixed``, the baseline a recipe user who fixes the policy gets.

Fine-tuning recipes train ``--epochs`` epochs but at least ``--min-steps`` steps. Unlike the recipe, no policy here
selects its epoch on an evaluation set (there is only the test set), so every score is the last step's.
``--seeds-in-parallel`` runs seeds as separate processes (one torch thread each) and merges them.
"""

from __future__ import annotations

import json
import subprocess
import sys
import tempfile
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

NAME = "claim_data_size"
QUESTION = "Pretrained transfer vs scratch vs heads-only as training data grows; measured auto freeze policy vs best fixed"
FIXED = ("heads", "top_n", "full")
CURVES = ("heads", "top_n", "full", "scratch", "auto")
METRIC = "eval_present_macro_roc_auc"


def parse(argv: list[str] | None):
    parser = base_parser(__doc__.splitlines()[0])
    parser.add_argument("--backbone", default=DEMO_BACKBONE)
    parser.add_argument("--image-size", type=int, default=56, help="56: the grids' own size.")
    parser.add_argument("--sizes", type=int, nargs="+", default=None, help="Training-set sizes (grids).")
    parser.add_argument("--num-eval", type=int, default=None)
    parser.add_argument("--seeds", type=int, default=None)
    parser.add_argument("--epochs", type=float, default=2.0, help="Epochs of the fine-tuning recipes (the recipe's 2).")
    parser.add_argument("--min-steps", type=int, default=50)
    parser.add_argument("--heads-epochs", type=float, default=10.0)
    parser.add_argument("--top-n", type=int, default=3, help="Backbone blocks top_n trains (the recipe's 3).")
    parser.add_argument("--missing-rate", type=float, default=0.3)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--validation-split", type=float, default=0.1, help="auto's held-out share (the recipe's).")
    parser.add_argument("--auto-trial-steps", type=int, default=50, help="auto's trial length (the recipe's).")
    parser.add_argument("--seeds-in-parallel", action="store_true", help="One process per seed, merged at the end.")
    parser.add_argument("--merge", nargs="+", default=None, help="Per-seed JSONs to merge (no training).")
    parser.add_argument("--reuse-fixed", default=None,
                        help="A folder of per-seed runs (seed<k>/claim_data_size.json) or a merged claim_data_size.json: "
                             "their fixed-policy and scratch scores are reused and only `auto` is measured again (after "
                             "a change to auto alone).")
    args = parser.parse_args(argv)
    args.sizes = args.sizes or ([16, 32] if args.quick else [300, 1000, 3000])
    args.num_eval = args.num_eval or (32 if args.quick else 300)
    args.seeds = args.seeds or (2 if args.quick else 3)
    if args.quick:
        args.min_steps, args.auto_trial_steps = min(args.min_steps, 2), min(args.auto_trial_steps, 2)
    return args


def report(args, raw: dict, seeds_done: int, argv: list[str] | None) -> dict:
    """Write the JSON and plot of the seeds done so far (a long run leaves partial results)."""
    scores, auto_tables, train_seconds = raw["scores"], raw["auto_tables"], raw["train_seconds"]
    sizes = [n for n in map(str, args.sizes) if all(scores[c][n] for c in CURVES)]
    stats = {c: {n: mean_std(scores[c][n]) for n in sizes} for c in CURVES}
    by_size = {}
    for n in sizes:
        best = max(FIXED, key=lambda c: stats[c][n]["mean"])
        tuned = max(("top_n", "full"), key=lambda c: stats[c][n]["mean"])
        margin = stats[tuned][n]["mean"] - stats["heads"][n]["mean"]
        by_size[n] = {
            "best_fixed_policy": best, "best_fixed_mean": stats[best][n]["mean"],
            "auto_minus_best": stats["auto"][n]["mean"] - stats[best][n]["mean"],
            "auto_within_0.005": stats["auto"][n]["mean"] >= stats[best][n]["mean"] - 0.005,
            "best_fine_tuning_policy": tuned, "fine_tuning_minus_heads": margin,
            "summed_sd": stats[tuned][n]["std"] + stats["heads"][n]["std"],
            "fine_tuning_beats_heads_by_more_than_summed_sd": margin > stats[tuned][n]["std"] + stats["heads"][n]["std"],
            "pretrained_minus_scratch": max(stats[c][n]["mean"] for c in ("top_n", "full"))
            - stats["scratch"][n]["mean"],
            "auto_picks": [table["policy"] for table in auto_tables[n]],
        }
        if all("same_rule" in table for table in auto_tables[n]):  # each fixed policy under the recipe's final rule
            rule = {c: mean_std([scores[table["same_rule"][c]["kept"]][n][i] for i, table in enumerate(auto_tables[n])])
                    for c in FIXED}
            best_rule = max(FIXED, key=lambda c: rule[c]["mean"])
            by_size[n].update({
                "same_rule_fixed": rule, "same_rule_best_policy": best_rule,
                "auto_minus_same_rule_best": stats["auto"][n]["mean"] - rule[best_rule]["mean"],
                "auto_within_0.005_of_same_rule_best": stats["auto"][n]["mean"] >= rule[best_rule]["mean"] - 0.005,
            })
    results = {
        "seeds_completed": seeds_done,
        "metric": METRIC,
        "macro_roc_auc": stats,
        "by_size": by_size,
        "auto_decision_tables": {n: auto_tables[n] for n in sizes},
        "train_seconds": {c: {n: mean_std(train_seconds[c][n]) for n in sizes} for c in CURVES},
        "raw": raw,
    }

    def plot(path: Path) -> None:
        import matplotlib.pyplot as plt

        xs = [int(n) for n in sizes]
        colors = {"heads": "#5b8ff9", "top_n": "#61ddaa", "full": "#e8684a", "scratch": "#888888", "auto": "#000000"}
        fig, axes = plt.subplots(1, 2, figsize=(11, 4), sharey=True)
        for ax, curves in zip(axes, (("heads", "full", "scratch", "top_n"), ("auto", "heads", "top_n", "full"))):
            for c in curves:
                s = [stats[c][n] for n in sizes]
                ax.errorbar(xs, [x["mean"] for x in s], yerr=[x["std"] for x in s], marker="o", capsize=3,
                            label=c, color=colors[c], lw=2.5 if c in ("auto", "full") else 1.2)
            ax.set_xscale("log")
            ax.set_xlabel("training grids")
            ax.legend(fontsize=8)
        for n in sizes:
            picks = sorted(set(by_size[n]["auto_picks"]))
            axes[1].annotate("/".join(picks), (int(n), stats["auto"][n]["mean"]), fontsize=7,
                             textcoords="offset points", xytext=(0, -14), ha="center")
        axes[0].set_ylabel("macro ROC-AUC on test grids (mean ± sd)")
        axes[0].set_title("ImageNet transfer vs scratch vs heads-only", fontsize=9)
        axes[1].set_title("measured auto freeze policy (its picks annotated) vs fixed policies", fontsize=9)
        fig.suptitle(f"EfficientNet-Lite0, Fashion-MNIST grids {args.image_size}px, {seeds_done} seeds", fontsize=9)
        fig.tight_layout()
        fig.savefig(path, dpi=120)
        plt.close(fig)

    return write_report(NAME, QUESTION, args, results, [], plot if sizes else None, argv=argv)


def empty_raw(sizes: list[int]) -> dict:
    return {"scores": {c: {str(n): [] for n in sizes} for c in CURVES},
            "train_seconds": {c: {str(n): [] for n in sizes} for c in CURVES},
            "auto_tables": {str(n): [] for n in sizes}}


def measured_auto(model, train_pixels, train_features, labels, args, seed: int) -> dict:
    """``freeze_policy: auto`` as the recipe runs it, on the training grids less a held-out share: heads-only stage,
    the library's measured trials (``measure_freeze_policy``), then each fine-tuning policy trained with the recipe's
    schedule and weighed against the heads-only stage by ``compare_stages`` (the recipe's ``final_model:
    best_stage``); returns auto's decision, the trials' table and what the rule keeps for each policy."""
    from hf_mtl import MultiTaskTrainingArguments
    from hf_mtl.metrics import build_compute_metrics
    from hf_mtl.scripts.arguments import ScriptArguments
    from hf_mtl.scripts.train import compare_stages, measure_freeze_policy

    n = len(train_pixels)
    held = max(1, round(n * args.validation_split))
    fit, val = slice(0, n - held), slice(n - held, n)
    part = {k: v[fit] for k, v in labels.items()}
    out = {k: v[val] for k, v in labels.items()}
    heads = fit_and_evaluate(model, rows("features", train_features[fit], part), rows("features", train_features[val], out),
                             freeze_policy="heads", epochs=args.heads_epochs, min_steps=args.min_steps,
                             learning_rate=3e-3, batch_size=args.batch_size, seed=seed)
    script_args = ScriptArguments(auto_trial_steps=args.auto_trial_steps)
    fit_pixels, val_pixels = rows("pixel_values", train_pixels[fit], part), rows("pixel_values", train_pixels[val], out)
    with tempfile.TemporaryDirectory(prefix="hf_mtl_bench_auto_") as tmp:
        training_args = MultiTaskTrainingArguments(
            output_dir=tmp, freeze_policy="auto", freeze_top_n=args.top_n, per_device_train_batch_size=args.batch_size,
            per_device_eval_batch_size=128, learning_rate=1e-3, warmup_steps=0.1, weight_decay=0.01,
            save_strategy="no", report_to="none", disable_tqdm=True, dataloader_pin_memory=False, use_cpu=True,
            seed=seed, logging_steps=50,
        )
        trial_policy, table = measure_freeze_policy(model, training_args, script_args, fit_pixels, val_pixels,
                                                    heads["metrics"], {"compute_metrics": build_compute_metrics(model)})
    # Every fine-tuning policy trained with the recipe's schedule and weighed against the heads-only stage by the
    # recipe's `final_model` rule: auto keeps what the rule keeps for its trial winner, and each fixed policy under the
    # same rule is the baseline a recipe user gets (its test score: the fixed run of the stage the rule keeps).
    start = {k: v.detach().clone() for k, v in model.state_dict().items()}
    same_rule = {"heads": {"kept": "heads"}}
    for policy in FIXED[1:]:
        model.load_state_dict(start)
        tuned = fit_and_evaluate(model, fit_pixels, val_pixels, freeze_policy=policy, freeze_top_n=args.top_n,
                                 epochs=args.epochs, min_steps=args.min_steps, learning_rate=1e-3,
                                 batch_size=args.batch_size, seed=seed)
        keep, reason, _ = compare_stages(heads["metrics"], tuned["metrics"], model.task_specs, script_args.final_model)
        same_rule[policy] = {"kept": policy if keep else "heads", "reason": reason,
                             "validation": {"heads": heads["metrics"].get(METRIC), policy: tuned["metrics"].get(METRIC)}}
    return {"policy": same_rule[trial_policy]["kept"], "trial_policy": trial_policy, "validation_grids": held, "trial_steps": args.auto_trial_steps,
            "table": table, "same_rule": same_rule}


def load_reused(path: str, seed: int) -> dict:
    """This seed's raw fixed-policy results: from a per-seed folder (``seed<k>/claim_data_size.json``) or a merged
    JSON (lists in seed order from its ``settings.seed``)."""
    source = Path(path)
    if source.is_dir():
        return json.loads((source / f"seed{seed}" / f"{NAME}.json").read_text())["results"]["raw"]
    merged = json.loads(source.read_text())
    index = seed - merged["settings"]["seed"]
    raw = merged["results"]["raw"]
    pick = {key: {c: {n: values[index:index + 1] for n, values in per_size.items()} for c, per_size in raw[key].items()}
            for key in ("scores", "train_seconds")}
    if not all(len(v) == 1 for c in pick["scores"].values() for v in c.values()):
        raise ValueError(f"{path}: no results for seed {seed}")
    return pick


def run_seed(args, seed: int, raw: dict, on_size_done) -> None:
    pretrained = demo_model(backbone=args.backbone, seed=seed)
    processor = processor_for(pretrained, args.image_size)
    train_all, test = grid_datasets(max(args.sizes), args.num_eval, missing_rate=args.missing_rate, seed=seed)
    pixels_all, test_pixels = pixel_tensor(train_all, processor), pixel_tensor(test, processor)
    features_all = frozen_features(pretrained, pixels_all)
    test_labels = {"present": test["present"]}
    eval_pixels = rows("pixel_values", test_pixels, test_labels)
    eval_features = rows("features", frozen_features(pretrained, test_pixels), test_labels)
    imagenet = {k: v.clone() for k, v in pretrained.state_dict().items() if k.startswith("backbone.")}

    def model(start: dict | None = None):
        """This seed's fresh heads on a random backbone, or the weights ``start`` (ImageNet backbone)."""
        fresh = demo_model(backbone=args.backbone, pretrained=False, seed=seed)
        if start is not None:
            fresh.load_state_dict(start, strict=False)
        return fresh

    reused = None
    if args.reuse_fixed:
        reused = load_reused(args.reuse_fixed, seed)

    def fixed_runs(n: int, labels: dict) -> dict:
        """The fixed policies and scratch at ``n`` grids: trained here, or this seed's scores from ``--reuse-fixed``."""
        if reused is not None:
            return {c: {"metrics": {METRIC: reused["scores"][c][str(n)][0]},
                        "train_seconds": reused["train_seconds"][c][str(n)][0]} for c in ("heads", *FIXED[1:], "scratch")}
        heads_model = model(imagenet)
        heads_run = fit_and_evaluate(heads_model, rows("features", features_all[:n], labels), eval_features,
                                     freeze_policy="heads", epochs=args.heads_epochs, min_steps=args.min_steps,
                                     learning_rate=3e-3, batch_size=args.batch_size, seed=seed)
        warm = {k: v.clone() for k, v in heads_model.state_dict().items()}  # fine-tuning starts from stage 1
        fine_tune = dict(epochs=args.epochs, min_steps=args.min_steps, learning_rate=1e-3,
                         batch_size=args.batch_size, seed=seed)
        train_pixels = rows("pixel_values", pixels_all[:n], labels)
        return {
            "heads": heads_run,
            "top_n": fit_and_evaluate(model(warm), train_pixels, eval_pixels, freeze_policy="top_n",
                                      freeze_top_n=args.top_n, **fine_tune),
            "full": fit_and_evaluate(model(warm), train_pixels, eval_pixels, freeze_policy="full", **fine_tune),
            "scratch": fit_and_evaluate(model(), train_pixels, eval_pixels, freeze_policy="full", **fine_tune),
        }

    for n in args.sizes:
        labels = {"present": train_all["present"][:n]}  # nested subsets: a bigger set holds the smaller ones
        runs = fixed_runs(n, labels)
        decision = measured_auto(model(imagenet), pixels_all[:n], features_all[:n], labels, args, seed)
        decision["seed"] = seed
        runs["auto"] = runs[decision["policy"]]
        raw["auto_tables"][str(n)].append(decision)
        for curve, run in runs.items():
            raw["scores"][curve][str(n)].append(run["metrics"][METRIC])
            raw["train_seconds"][curve][str(n)].append(run["train_seconds"])
        print(f"seed {seed} n {n}: " + ", ".join(f"{c} {r['metrics'][METRIC]:.4f} ({r['train_seconds']:.0f}s)"
                                                  for c, r in runs.items()) + f"; auto picked {decision['policy']}"
              + (" (fixed policies reused)" if reused is not None else ""), flush=True)
        on_size_done()


def merge(args, paths: list[str], argv) -> dict:
    raw = empty_raw(args.sizes)
    done = 0
    for path in paths:
        part = json.loads(Path(path).read_text())["results"]["raw"]
        done += 1
        for key in ("scores", "train_seconds"):
            for c in CURVES:
                for n in map(str, args.sizes):
                    raw[key][c][n] += part[key][c].get(n, [])
        for n in map(str, args.sizes):
            raw["auto_tables"][n] += part["auto_tables"].get(n, [])
    return report(args, raw, done, argv)


def main(argv: list[str] | None = None) -> dict:
    args = parse(argv)
    setup_logging()
    if args.merge:
        return merge(args, args.merge, argv)
    if args.seeds_in_parallel and args.seeds > 1:
        out = Path(tempfile.gettempdir()) / f"hf_mtl_{NAME}_seeds"  # per-seed JSONs (partial results while running)
        out.mkdir(parents=True, exist_ok=True)
        base = [a for a in (sys.argv[1:] if argv is None else argv) if a != "--seeds-in-parallel"]
        skip = {"--seed", "--seeds", "--output-dir"}
        keep = []
        it = iter(base)
        for a in it:
            if a in skip:
                next(it, None)
            else:
                keep.append(a)
        procs, paths = [], []
        for seed in range(args.seed, args.seed + args.seeds):
            folder = out / f"seed{seed}"
            paths.append(str(folder / f"{NAME}.json"))
            procs.append(subprocess.Popen([sys.executable, __file__, *keep, "--seed", str(seed), "--seeds", "1",
                                           "--output-dir", str(folder)]))
        failed = [p.args for p in procs if p.wait() != 0]
        if failed:
            raise RuntimeError(f"seed runs failed: {failed}")
        return merge(args, paths, argv)
    raw = empty_raw(args.sizes)
    for index, seed in enumerate(range(args.seed, args.seed + args.seeds)):
        run_seed(args, seed, raw, lambda done=index: report(args, raw, done, argv))
    return report(args, raw, args.seeds, argv)


if __name__ == "__main__":
    main()
