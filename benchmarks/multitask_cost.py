"""Question 3: what does one 4-task model cost compared with one single-task model, and with 4 single-task models?

The 4-task model shares one backbone between 4 heads; the alternative is one model per task, each with its own copy of
the same backbone. Measured in the same run, interleaved: training step time (forward, masked loss, backward, AdamW),
batched inference time, and parameter count.
Target: the 4-task model costs at most 1.3x one single-task model (training step, inference, parameters).
"""

from __future__ import annotations

import sys
from pathlib import Path

if __package__ in (None, ""):
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import torch  # noqa: E402

from benchmarks.common import (  # noqa: E402
    StepClock,
    add_model_args,
    base_parser,
    compare,
    interleaved,
    setup_logging,
    summarize,
    target,
    write_report,
)
from benchmarks.workloads import build_model, multilabel_tasks, random_images, random_multilabel  # noqa: E402

NAME = "multitask_cost"
QUESTION = "One 4-task model vs 4 single-task models with the same backbone: train time, parameters, inference time"


def main(argv: list[str] | None = None) -> dict:
    parser = add_model_args(base_parser(__doc__.splitlines()[0]))
    parser.add_argument("--num-tasks", type=int, default=4)
    parser.add_argument("--num-labels", type=int, default=10, help="Labels per (multilabel) task.")
    parser.add_argument("--steps", type=int, default=None, help="Timed steps per repetition.")
    parser.add_argument("--repeats", type=int, default=None)
    parser.add_argument("--threads", type=int, default=1, help="torch threads (1: CPU time of one thread is the work).")
    args = parser.parse_args(argv)
    args.steps = args.steps or 3
    args.repeats = args.repeats or (3 if args.quick else 5)
    setup_logging()
    torch.set_num_threads(args.threads)

    tasks = multilabel_tasks(args.num_tasks, args.num_labels)
    x = random_images(args.batch_size, args.image_size, seed=args.seed)
    labels = {t["name"]: random_multilabel(args.batch_size, args.num_labels, seed=args.seed + i) for i, t in enumerate(tasks)}
    models = {"multi_task": build_model(args.backbone, tasks, seed=args.seed)}
    for task in tasks:
        models[f"single_{task['name']}"] = build_model(args.backbone, [task], seed=args.seed)
    optimizers = {name: torch.optim.AdamW(m.parameters(), lr=1e-3, weight_decay=0.0) for name, m in models.items()}
    warmup = 2

    cpu = {"train": {n: [] for n in models}, "inference": {n: [] for n in models}}

    def train_step_time(name: str):
        model, optimizer = models[name].train(), optimizers[name]
        batch_labels = {task: labels[task] for task in model.config.task_names}

        def run() -> float:
            clock = StepClock()
            clock.reset()
            for _ in range(warmup + args.steps):
                model(pixel_values=x, labels=batch_labels).loss.backward()
                optimizer.step()
                optimizer.zero_grad()
                clock.tick()
            wall, cpu_seconds = clock.steady(warmup)
            cpu["train"][name].append(cpu_seconds)
            return wall

        return run

    def inference_time(name: str):
        model = models[name]

        def run() -> float:
            model.eval()
            clock = StepClock()
            clock.reset()
            with torch.no_grad():
                for _ in range(warmup + args.steps):
                    model(pixel_values=x)
                    clock.tick()
            wall, cpu_seconds = clock.steady(warmup)
            cpu["inference"][name].append(cpu_seconds)
            return wall

        return run

    first_single = f"single_{tasks[0]['name']}"
    train = interleaved({n: train_step_time(n) for n in models}, args.repeats, baseline=first_single)
    infer = interleaved({n: inference_time(n) for n in models}, args.repeats, baseline=first_single)
    train_cpu = compare(cpu["train"], baseline=first_single)
    infer_cpu = compare(cpu["inference"], baseline=first_single)
    singles = [n for n in models if n.startswith("single_")]

    def all_singles(timing: dict) -> dict:
        """N single-task models, per repetition: the sum of their times, over the first single model's time."""
        reps = range(timing["repeats"])
        sums = [sum(timing["variants"][n]["samples"][r] for n in singles) for r in reps]
        base = timing["variants"][first_single]["samples"]
        multi = timing["variants"]["multi_task"]["samples"]
        return {
            "summary": summarize(sums),
            "ratio_to_baseline": summarize([s / b for s, b in zip(sums, base)]),
            "multi_task_speedup": summarize([s / m for s, m in zip(sums, multi)]),
        }

    params = {n: sum(p.numel() for p in m.parameters()) for n, m in models.items()}
    params[f"{len(singles)}_single_models"] = sum(params[n] for n in singles)
    results = {
        "num_tasks": args.num_tasks,
        "train_step_cpu_s": train_cpu,
        "inference_cpu_s": infer_cpu,
        "train_step_cpu_all_singles": all_singles(train_cpu),
        "inference_cpu_all_singles": all_singles(infer_cpu),
        "train_step_time_s": train,
        "inference_time_s": infer,
        "train_step_time_all_singles": all_singles(train),
        "inference_time_all_singles": all_singles(infer),
        "parameters": params,
        "parameter_ratio_multi_to_single": params["multi_task"] / params[first_single],
    }
    targets = [
        target("train_step_multi_vs_single_cpu", train_cpu["variants"]["multi_task"]["ratio_to_baseline"]["median"],
               1.3, "<=", "training step CPU time of the 4-task model / one single-task model (median of interleaved "
               "repetitions)"),
        target("inference_multi_vs_single_cpu", infer_cpu["variants"]["multi_task"]["ratio_to_baseline"]["median"],
               1.3, "<=", "batched inference CPU time of the 4-task model / one single-task model"),
        target("train_step_multi_vs_single_wall", train["variants"]["multi_task"]["ratio_to_baseline"]["median"], 1.3,
               "<=", "the same in wall-clock time (noisy when the machine is oversubscribed)"),
        target("inference_multi_vs_single_wall", infer["variants"]["multi_task"]["ratio_to_baseline"]["median"], 1.3,
               "<=", "the same in wall-clock time"),
        target("parameters_multi_vs_single", results["parameter_ratio_multi_to_single"], 1.3, "<=",
               "parameters of the 4-task model / one single-task model"),
    ]

    def plot(path: Path) -> None:
        import matplotlib.pyplot as plt

        labels_ = ["1 single-task", f"{args.num_tasks}-task (shared)", f"{args.num_tasks} single-task"]
        panels = [
            ("train step CPU time (x one single)", train_cpu, results["train_step_cpu_all_singles"]),
            ("inference CPU time (x one single)", infer_cpu, results["inference_cpu_all_singles"]),
        ]
        fig, axes = plt.subplots(1, 3, figsize=(11, 3.5))
        for ax, (title, timing, singles_) in zip(axes, panels):
            rows = [timing["variants"][first_single]["ratio_to_baseline"],
                    timing["variants"]["multi_task"]["ratio_to_baseline"], singles_["ratio_to_baseline"]]
            med = [r["median"] for r in rows]
            err = [[m - r["min"] for m, r in zip(med, rows)], [r["max"] - m for m, r in zip(med, rows)]]
            ax.bar(labels_, med, yerr=err, capsize=5, color=["#888888", "#5b8ff9", "#e8684a"])
            ax.axhline(1.3, ls="--", c="k", lw=0.8)
            ax.set_title(title)
            for i, m in enumerate(med):
                ax.text(i, m / 2, f"{m:.2f}x", ha="center")
        p = [params[first_single], params["multi_task"], params[f"{len(singles)}_single_models"]]
        axes[2].bar(labels_, [v / 1e6 for v in p], color=["#888888", "#5b8ff9", "#e8684a"])
        axes[2].set_title("parameters (millions)")
        for ax in axes:
            ax.tick_params(axis="x", labelsize=7)
        fig.suptitle(f"{args.backbone} {args.image_size}px, batch {args.batch_size}; dashed: 1.3x target", fontsize=9)
        fig.tight_layout()
        fig.savefig(path, dpi=120)
        plt.close(fig)

    return write_report(NAME, QUESTION, args, results, targets, plot, argv=argv)


if __name__ == "__main__":
    main()
